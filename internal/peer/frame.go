package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Wire format (docs/format/peer.md). After the handshake, each direction
// of a connection is a sequence of frames:
//
//	length  uint32   bytes after this field (kind, crc and payload)
//	kind    uint8    1 = messages, 2 = snapshot (snapframe.go)
//	crc     uint32   CRC-32C of the payload
//	payload          messages: uvarint count, then count × (uvarint group, uvarint size, size bytes of a raftpb.Message)
//
// Every length is checked against what remains (and the frame length
// against MaxFrameBytes) before anything is allocated.

const (
	frameMessages = 1
	frameHeader   = 4 + 1 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Envelope is a raft message for one group.
type Envelope struct {
	Group uint64
	Msg   *raftpb.Message
}

// appendFrame encodes envs as one messages frame onto dst.
func appendFrame(dst []byte, envs []Envelope) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, frameMessages, 0, 0, 0, 0)
	payload := len(dst)
	dst = binary.AppendUvarint(dst, uint64(len(envs)))
	opts := proto.MarshalOptions{}
	for _, e := range envs {
		dst = binary.AppendUvarint(dst, e.Group)
		size := opts.Size(e.Msg)
		dst = binary.AppendUvarint(dst, uint64(size))
		var err error
		if dst, err = opts.MarshalAppend(dst, e.Msg); err != nil {
			return dst[:start], fmt.Errorf("peer: encode message for group %d: %w", e.Group, err)
		}
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	binary.BigEndian.PutUint32(dst[start+5:], crc32c(dst[payload:]))
	return dst, nil
}

// errFrame reports a frame that does not follow the format.
var errFrame = errors.New("peer: malformed frame")

// readFrame reads one frame into buf (grown as needed, up to max bytes)
// and returns its kind and checked payload (aliasing buf).
func readFrame(r io.Reader, buf []byte, max int) (byte, []byte, []byte, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return 0, nil, buf, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:4]))
	if n < frameHeader-4 || n > max {
		return 0, nil, buf, fmt.Errorf("%w: length %d outside [%d, %d]", errFrame, n, frameHeader-4, max)
	}
	if _, err := io.ReadFull(r, hdr[4:]); err != nil {
		return 0, nil, buf, err
	}
	size := n - (frameHeader - 4)
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, buf, err
	}
	if k := hdr[4]; k != frameMessages && k != frameSnapshot {
		return 0, nil, buf, fmt.Errorf("%w: unknown kind %d", errFrame, k)
	}
	if crc32c(buf) != binary.BigEndian.Uint32(hdr[5:]) {
		return 0, nil, buf, fmt.Errorf("%w: checksum mismatch", errFrame)
	}
	return hdr[4], buf, buf, nil
}

// decodeMessages decodes a messages payload. The messages do not alias p.
func decodeMessages(p []byte) ([]Envelope, error) {
	count, k := binary.Uvarint(p)
	if k <= 0 {
		return nil, fmt.Errorf("%w: bad count", errFrame)
	}
	p = p[k:]
	// Each envelope takes at least three bytes: bound the count by what
	// is left before allocating for it.
	if count > uint64(len(p)/3)+1 {
		return nil, fmt.Errorf("%w: %d messages in %d bytes", errFrame, count, len(p))
	}
	envs := make([]Envelope, 0, count)
	for i := uint64(0); i < count; i++ {
		group, k := binary.Uvarint(p)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad group", errFrame)
		}
		p = p[k:]
		size, k := binary.Uvarint(p)
		if k <= 0 || size > uint64(len(p)-k) {
			return nil, fmt.Errorf("%w: message size beyond the frame", errFrame)
		}
		p = p[k:]
		m := new(raftpb.Message)
		if err := proto.Unmarshal(p[:size], m); err != nil {
			return nil, fmt.Errorf("%w: message for group %d: %v", errFrame, group, err)
		}
		p = p[size:]
		envs = append(envs, Envelope{Group: group, Msg: m})
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the messages", errFrame, len(p))
	}
	return envs, nil
}

func crc32c(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

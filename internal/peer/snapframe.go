package peer

import (
	"encoding/binary"
	"fmt"
	"math"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Snapshot frames (kind 2) carry a raft group's snapshot data apart from
// its messages: a transfer is a begin frame (the manifest of the files),
// data frames (the files' bytes back to back, in order) and an end frame
// (raft's MsgSnap, which names the transfer); the receiver answers with an
// ack frame once it has checked the snapshot and handed it to raft, or
// with an abort frame when it cannot take it. Payload:
//
//	kind     uint8    1 begin, 2 data, 3 end, 4 abort, 5 ack
//	group    uvarint
//	transfer uint64   (big-endian)
//	seq      uvarint  0 for begin, then 1, 2, … for data and end
//	body     begin: index uvarint, term uvarint, start uvarint, count uvarint
//	                (at most MaxSnapSegments), count × (base uvarint, size uvarint)
//	         data:  1 … MaxSnapChunk bytes
//	         end:   a protobuf-encoded raftpb.Message (MsgSnap)
//	         abort: reason, at most 256 bytes of text
//	         ack:   nothing
//
// Every count and length is bounded by the bytes present before anything
// is allocated for it (docs/format/peer.md).
const frameSnapshot = 2

// MaxSnapChunk bounds a data frame's bytes.
const MaxSnapChunk = 4 << 20

// MaxSnapSegments bounds a manifest's segments (a partition of 128 TiB in
// segments of the default 128 MiB).
const MaxSnapSegments = 1 << 20

const maxAbortReason = 256

// SnapKind is the kind of a snapshot frame.
type SnapKind uint8

// Snapshot frame kinds.
const (
	SnapBegin SnapKind = 1
	SnapData  SnapKind = 2
	SnapEnd   SnapKind = 3
	SnapAbort SnapKind = 4
	SnapAck   SnapKind = 5
)

func (k SnapKind) String() string {
	switch k {
	case SnapBegin:
		return "begin"
	case SnapData:
		return "data"
	case SnapEnd:
		return "end"
	case SnapAbort:
		return "abort"
	case SnapAck:
		return "ack"
	}
	return fmt.Sprintf("SnapKind(%d)", uint8(k))
}

// SnapChunk is one snapshot frame.
type SnapChunk struct {
	Kind     SnapKind
	Group    uint64
	Transfer uint64
	Seq      uint64
	Manifest SnapManifest    // SnapBegin
	Data     []byte          // SnapData; a received one aliases the frame until the handler returns
	Msg      *raftpb.Message // SnapEnd
	Reason   string          // SnapAbort
}

// SnapManifest lists a snapshot's files: what the begin frame announces.
type SnapManifest struct {
	Index, Term uint64 // the snapshot's last entry and its term
	Start       int64  // the log start offset
	Segments    []SnapSegment
}

// SnapSegment is one file of a snapshot: a segment's base offset and the
// bytes of it the snapshot holds.
type SnapSegment struct {
	Base, Size int64
}

// appendSnapFrame encodes c as one snapshot frame onto dst.
func appendSnapFrame(dst []byte, c *SnapChunk) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, frameSnapshot, 0, 0, 0, 0)
	payload := len(dst)
	dst = append(dst, byte(c.Kind))
	dst = binary.AppendUvarint(dst, c.Group)
	dst = binary.BigEndian.AppendUint64(dst, c.Transfer)
	dst = binary.AppendUvarint(dst, c.Seq)
	switch c.Kind {
	case SnapBegin:
		m := &c.Manifest
		if m.Start < 0 {
			return dst[:start], fmt.Errorf("peer: snapshot manifest starts at %d", m.Start)
		}
		dst = binary.AppendUvarint(dst, m.Index)
		dst = binary.AppendUvarint(dst, m.Term)
		dst = binary.AppendUvarint(dst, uint64(m.Start))
		dst = binary.AppendUvarint(dst, uint64(len(m.Segments)))
		for _, s := range m.Segments {
			if s.Base < 0 || s.Size < 0 {
				return dst[:start], fmt.Errorf("peer: snapshot segment %d of %d bytes", s.Base, s.Size)
			}
			dst = binary.AppendUvarint(dst, uint64(s.Base))
			dst = binary.AppendUvarint(dst, uint64(s.Size))
		}
	case SnapData:
		if len(c.Data) == 0 || len(c.Data) > MaxSnapChunk {
			return dst[:start], fmt.Errorf("peer: snapshot data chunk of %d bytes", len(c.Data))
		}
		dst = append(dst, c.Data...)
	case SnapEnd:
		if c.Msg == nil {
			return dst[:start], fmt.Errorf("peer: snapshot end without its message")
		}
		var err error
		if dst, err = (proto.MarshalOptions{}).MarshalAppend(dst, c.Msg); err != nil {
			return dst[:start], fmt.Errorf("peer: encode the snapshot message of group %d: %w", c.Group, err)
		}
	case SnapAbort:
		reason := c.Reason
		if len(reason) > maxAbortReason {
			reason = reason[:maxAbortReason]
		}
		dst = append(dst, reason...)
	case SnapAck:
	default:
		return dst[:start], fmt.Errorf("peer: unknown snapshot frame kind %d", c.Kind)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	binary.BigEndian.PutUint32(dst[start+5:], crc32c(dst[payload:]))
	return dst, nil
}

// decodeSnapChunk decodes a snapshot frame's payload. Data aliases p.
func decodeSnapChunk(p []byte) (*SnapChunk, error) {
	if len(p) < 1 {
		return nil, fmt.Errorf("%w: empty snapshot frame", errFrame)
	}
	c := &SnapChunk{Kind: SnapKind(p[0])}
	p = p[1:]
	var ok bool
	if c.Group, p, ok = uvarint(p); !ok {
		return nil, fmt.Errorf("%w: snapshot frame: bad group", errFrame)
	}
	if len(p) < 8 {
		return nil, fmt.Errorf("%w: snapshot frame: no transfer id", errFrame)
	}
	c.Transfer, p = binary.BigEndian.Uint64(p), p[8:]
	if c.Seq, p, ok = uvarint(p); !ok {
		return nil, fmt.Errorf("%w: snapshot frame: bad sequence number", errFrame)
	}
	switch c.Kind {
	case SnapBegin:
		m := &c.Manifest
		var start, count uint64
		for _, f := range []*uint64{&m.Index, &m.Term, &start, &count} {
			if *f, p, ok = uvarint(p); !ok {
				return nil, fmt.Errorf("%w: snapshot manifest cut short", errFrame)
			}
		}
		// Each segment takes at least two bytes: bound the count by what
		// is left before allocating for it.
		if start > math.MaxInt64 || count > uint64(len(p)/2) || count > MaxSnapSegments {
			return nil, fmt.Errorf("%w: snapshot manifest of %d segments in %d bytes", errFrame, count, len(p))
		}
		m.Start = int64(start)
		m.Segments = make([]SnapSegment, count)
		for k := range m.Segments {
			var base, size uint64
			if base, p, ok = uvarint(p); !ok || base > math.MaxInt64 {
				return nil, fmt.Errorf("%w: snapshot manifest: bad segment base", errFrame)
			}
			if size, p, ok = uvarint(p); !ok || size > math.MaxInt64 {
				return nil, fmt.Errorf("%w: snapshot manifest: bad segment size", errFrame)
			}
			m.Segments[k] = SnapSegment{Base: int64(base), Size: int64(size)}
		}
		if len(p) != 0 {
			return nil, fmt.Errorf("%w: %d bytes after the snapshot manifest", errFrame, len(p))
		}
	case SnapData:
		if len(p) == 0 || len(p) > MaxSnapChunk {
			return nil, fmt.Errorf("%w: snapshot data chunk of %d bytes", errFrame, len(p))
		}
		c.Data = p
	case SnapEnd:
		c.Msg = new(raftpb.Message)
		if err := proto.Unmarshal(p, c.Msg); err != nil {
			return nil, fmt.Errorf("%w: snapshot message of group %d: %v", errFrame, c.Group, err)
		}
	case SnapAbort:
		if len(p) > maxAbortReason {
			return nil, fmt.Errorf("%w: snapshot abort reason of %d bytes", errFrame, len(p))
		}
		c.Reason = string(p)
	case SnapAck:
		if len(p) != 0 {
			return nil, fmt.Errorf("%w: %d bytes in a snapshot ack", errFrame, len(p))
		}
	default:
		return nil, fmt.Errorf("%w: unknown snapshot frame kind %d", errFrame, c.Kind)
	}
	return c, nil
}

// uvarint reads a uvarint off the front of p.
func uvarint(p []byte) (uint64, []byte, bool) {
	v, k := binary.Uvarint(p)
	if k <= 0 {
		return 0, p, false
	}
	return v, p[k:], true
}

package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The handshake opens every connection (docs/format/peer.md). The dialler
// sends:
//
//	magic    "SPOOLPR\x00" (8 bytes)
//	version  uint16 (1)
//	cluster  16 bytes
//	from     uint64  the dialler's node id
//	to       uint64  the node id it means to reach
//
// and the listener answers with its own version (uint16), a status byte,
// and, when the status is not 0, a uint16-prefixed reason (at most 256
// bytes) before it closes the connection.

const (
	magic            = "SPOOLPR\x00"
	version   uint16 = 1
	helloSize        = 8 + 2 + 16 + 8 + 8
)

// Handshake statuses.
const (
	statusOK byte = iota
	statusVersion
	statusCluster
	statusNode
	statusUnknownPeer
)

// ClusterID names a cluster; nodes of different clusters refuse each
// other.
type ClusterID [16]byte

type hello struct {
	version  uint16
	cluster  ClusterID
	from, to uint64
}

func appendHello(dst []byte, h hello) []byte {
	dst = append(dst, magic...)
	dst = binary.BigEndian.AppendUint16(dst, h.version)
	dst = append(dst, h.cluster[:]...)
	dst = binary.BigEndian.AppendUint64(dst, h.from)
	return binary.BigEndian.AppendUint64(dst, h.to)
}

func readHello(r io.Reader) (hello, error) {
	var b [helloSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return hello{}, err
	}
	if string(b[:8]) != magic {
		return hello{}, errors.New("peer: not a Spool cluster connection (bad magic)")
	}
	var h hello
	h.version = binary.BigEndian.Uint16(b[8:])
	copy(h.cluster[:], b[10:26])
	h.from = binary.BigEndian.Uint64(b[26:])
	h.to = binary.BigEndian.Uint64(b[34:])
	return h, nil
}

func appendAnswer(dst []byte, status byte, reason string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, version)
	dst = append(dst, status)
	if status != statusOK {
		if len(reason) > 256 {
			reason = reason[:256]
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(reason)))
		dst = append(dst, reason...)
	}
	return dst
}

// readAnswer reads the listener's answer; an error carries its reason.
func readAnswer(r io.Reader) error {
	var b [3]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	if b[2] == statusOK {
		return nil
	}
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return fmt.Errorf("peer: refused (status %d)", b[2])
	}
	n := min(int(binary.BigEndian.Uint16(l[:])), 256)
	reason := make([]byte, n)
	if _, err := io.ReadFull(r, reason); err != nil {
		return fmt.Errorf("peer: refused (status %d)", b[2])
	}
	return fmt.Errorf("peer: refused by version %d: %s", binary.BigEndian.Uint16(b[:]), reason)
}

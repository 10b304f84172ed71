package kgroup

// Kafka commit metadata: what Kafka's OffsetCommit carries besides the
// offset, for one partition of the stream subscription that is the
// consumer group, kept with the subscription in the Kafka front end's
// space (docs/format/state.md):
//
//	k/<topic>\x00<group>\x00<partition:4 BE>
//
// Version 1 (the only one; release 7e44b4f wrote it too), big-endian:
//
//	01 | subscription created (Unix ns, 8) | offset (8) | leader epoch (4) | flags (1) | metadata
//
// There is no version 0: the record never was JSON.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/spoolmq/spool/internal/state"
)

const (
	metaVersion = 1
	metaUnset   = 1 // flag: Kafka has no offset for this partition
	metaHeader  = 8 + 8 + 4 + 1
)

// commitMeta is one partition's commit metadata.
type commitMeta struct {
	created int64  // the subscription's creation (Unix ns) when written
	offset  int64  // the committed offset it belongs to
	epoch   int32  // leader epoch; -1: none
	flags   byte   // metaUnset
	meta    string // the commit's metadata string
}

// metaKey is the record's key below the subscription: the partition.
func metaKey(p int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(p)) }

// metaPartition decodes a record key.
func metaPartition(k []byte) (int32, error) {
	if len(k) != 4 {
		return 0, fmt.Errorf("key of %d bytes after the subscription, not 4", len(k))
	}
	return int32(binary.BigEndian.Uint32(k)), nil
}

func (m commitMeta) encode() []byte {
	b := make([]byte, 0, 1+metaHeader+len(m.meta))
	b = append(b, metaVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(m.created))
	b = binary.BigEndian.AppendUint64(b, uint64(m.offset))
	b = binary.BigEndian.AppendUint32(b, uint32(m.epoch))
	b = append(b, m.flags)
	return append(b, m.meta...)
}

var errMetaFlags = errors.New("unknown flags")

func decodeCommitMeta(v []byte) (commitMeta, error) {
	_, p, err := state.Version(v, metaVersion, false)
	if err != nil {
		return commitMeta{}, err
	}
	if len(p) < metaHeader {
		return commitMeta{}, fmt.Errorf("truncated: %d bytes where at least %d are needed", len(p), metaHeader)
	}
	m := commitMeta{
		created: int64(binary.BigEndian.Uint64(p)),
		offset:  int64(binary.BigEndian.Uint64(p[8:])),
		epoch:   int32(binary.BigEndian.Uint32(p[16:])),
		flags:   p[20],
		meta:    string(p[metaHeader:]),
	}
	if m.flags&^metaUnset != 0 {
		return commitMeta{}, fmt.Errorf("%w 0x%02x", errMetaFlags, m.flags)
	}
	return m, nil
}

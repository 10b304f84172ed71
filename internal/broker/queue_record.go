package broker

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/state"
)

// The records of queue subscriptions in the state store
// (docs/format/state.md): partition snapshots (q/), parked messages (w/)
// and the park index (x/). This file is their only encoder and decoder;
// queue.Snapshot and queue.Parked are the core's in-memory form and may
// change freely, the layouts below may not.
//
// Snapshots and parked messages are version 1, binary, integers
// big-endian, times in milliseconds since the Unix epoch:
//
//	snapshot  0x01, floor int64, done count uint32, that many ranges
//	          (from int64, to int64: [from, to) finished), count count
//	          uint32, that many entries by ascending offset (offset int64,
//	          deliveries int64, first delivered ms int64, last error
//	          length uint32, last error bytes)
//	parked    0x01, offset int64, due ms int64, deliveries int64, first
//	          delivered ms int64, key hash uint64, flags uint8 (bit 0: has
//	          a key; the others zero), expires ms int64 (0: never), last
//	          error length uint32, last error bytes
//
// A snapshot is written for every changed partition every 50 ms, so the
// layout is binary and encoded without reflection into a reused buffer.
// Records written before versions existed are JSON of the structs with
// their Go field names: version 0, still read. Park index entries are a
// version-less fixed layout (version 0): the due time, 8 bytes.

const queueRecordVersion = 1

const (
	snapshotHeader = 1 + 8 + 4 + 4   // version, floor, range count, entry count
	snapshotRange  = 8 + 8           // from, to
	snapshotEntry  = 8 + 8 + 8 + 4   // offset, deliveries, first delivered, error length
	parkedSize     = 1 + 6*8 + 1 + 4 // without the error text
	parkedHasKey   = 1
)

// appendSnapshot appends the snapshot record of snap to dst.
func appendSnapshot(dst []byte, snap queue.Snapshot) ([]byte, error) {
	if len(snap.Done) > math.MaxUint32 || len(snap.Counts) > math.MaxUint32 {
		return nil, fmt.Errorf("queue snapshot of %d ranges and %d counts is too large", len(snap.Done), len(snap.Counts))
	}
	offs := make([]int64, 0, len(snap.Counts))
	size := snapshotHeader + snapshotRange*len(snap.Done)
	for off, c := range snap.Counts {
		if len(c.LastError) > math.MaxUint32 {
			return nil, fmt.Errorf("queue snapshot: error text of offset %d is %d bytes long", off, len(c.LastError))
		}
		offs = append(offs, off)
		size += snapshotEntry + len(c.LastError)
	}
	slices.Sort(offs)
	dst = slices.Grow(dst, size)
	dst = append(dst, queueRecordVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(snap.Floor))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(snap.Done)))
	for _, r := range snap.Done {
		dst = binary.BigEndian.AppendUint64(dst, uint64(r[0]))
		dst = binary.BigEndian.AppendUint64(dst, uint64(r[1]))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(offs)))
	for _, off := range offs {
		c := snap.Counts[off]
		dst = binary.BigEndian.AppendUint64(dst, uint64(off))
		dst = binary.BigEndian.AppendUint64(dst, uint64(c.Deliveries))
		dst = binary.BigEndian.AppendUint64(dst, uint64(c.FirstDeliveredAt))
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.LastError)))
		dst = append(dst, c.LastError...)
	}
	return dst, nil
}

// decodeSnapshot decodes the snapshot record stored under key.
func decodeSnapshot(key, v []byte) (queue.Snapshot, error) {
	snap, err := decodeSnapshotRecord(v)
	if err != nil {
		return queue.Snapshot{}, &state.RecordError{Kind: "queue snapshot", Key: key, Err: err}
	}
	return snap, nil
}

func decodeSnapshotRecord(v []byte) (queue.Snapshot, error) {
	ver, payload, err := state.Version(v, queueRecordVersion, true)
	if err != nil {
		return queue.Snapshot{}, err
	}
	if ver == 0 {
		return decodeSnapshotV0(payload)
	}
	r := state.NewReader(payload)
	snap := queue.Snapshot{Floor: r.I64()}
	if n := r.Count(snapshotRange); n > 0 {
		snap.Done = make([][2]int64, n)
		for i := range snap.Done {
			snap.Done[i] = [2]int64{r.I64(), r.I64()}
		}
	}
	if n := r.Count(snapshotEntry); n > 0 {
		var prev int64
		snap.Counts = make(map[int64]queue.Count, n)
		for i := range n {
			off := r.I64()
			c := queue.Count{Deliveries: int(r.I64()), FirstDeliveredAt: r.I64()}
			c.LastError = r.Str()
			if i > 0 && off <= prev {
				r.Fail("counts out of order: offset %d after %d", off, prev)
			}
			prev = off
			snap.Counts[off] = c
		}
	}
	return snap, r.Done()
}

// appendParked appends the parked-message record of p to dst.
func appendParked(dst []byte, p queue.Parked) ([]byte, error) {
	if len(p.LastError) > math.MaxUint32 {
		return nil, fmt.Errorf("parked message %d: error text is %d bytes long", p.Offset, len(p.LastError))
	}
	dst = slices.Grow(dst, parkedSize+len(p.LastError))
	dst = append(dst, queueRecordVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.Offset))
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.Due))
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.DeliveryCount))
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.FirstDeliveredAt))
	dst = binary.BigEndian.AppendUint64(dst, p.KeyHash)
	var flags byte
	if p.HasKey {
		flags |= parkedHasKey
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.ExpiresAt))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(p.LastError)))
	return append(dst, p.LastError...), nil
}

// decodeParked decodes the parked-message record stored under key.
func decodeParked(key, v []byte) (queue.Parked, error) {
	p, err := decodeParkedRecord(v)
	if err != nil {
		return queue.Parked{}, &state.RecordError{Kind: "parked message", Key: key, Err: err}
	}
	return p, nil
}

func decodeParkedRecord(v []byte) (queue.Parked, error) {
	ver, payload, err := state.Version(v, queueRecordVersion, true)
	if err != nil {
		return queue.Parked{}, err
	}
	if ver == 0 {
		return decodeParkedV0(payload)
	}
	r := state.NewReader(payload)
	p := queue.Parked{Offset: r.I64(), Due: r.I64(), DeliveryCount: int(r.I64()), FirstDeliveredAt: r.I64(), KeyHash: r.U64()}
	flags := r.U8()
	if flags&^parkedHasKey != 0 {
		r.Fail("unknown flags 0x%02x", flags)
	}
	p.HasKey = flags&parkedHasKey != 0
	p.ExpiresAt = r.I64()
	p.LastError = r.Str()
	return p, r.Done()
}

// encodeParkIndex encodes a park index entry: the due time.
func encodeParkIndex(due int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(due)) }

// decodeParkIndex decodes the park index entry stored under key.
func decodeParkIndex(key, v []byte) (int64, error) {
	if err := state.Fixed(v, 8); err != nil {
		return 0, &state.RecordError{Kind: "park index", Key: key, Err: err}
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

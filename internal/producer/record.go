package producer

// The producer table's records in the state store (docs/format/state.md),
// in the space it is given: the server gives it the Kafka front end's space
// (prefix "kafka-"), where these records were kept before the core was
// shared with the native API, so existing data directories keep their ids
// and snapshots. Keys below the space's prefix:
//
//   - "pid/next": the producer id high-water mark, the first id not yet
//     handed out. A fixed layout, version 0: 8 bytes, int64 big-endian.
//     Each block reservation is a synced write.
//   - "ps/<topic id>\x00<partition:4 BE>": a partition's producer-state
//     snapshot, written unsynced (the log is the truth; a lost snapshot
//     costs a longer scan). Version 1 is binary (below); version 0, written
//     up to release 7e44b4f, is JSON: {"v":1,"end":…,"producers":[{"id":…,
//     "epoch":…,"seen":…,"batches":[[first,last,base],…]}]}.
//
// A snapshot this server cannot read is not used (the log is scanned
// instead) and logged with its key; a high-water mark it cannot read fails
// the reservation.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

var (
	producerIDKey  = []byte("pid/next")
	snapshotPrefix = []byte("ps/")
)

// reserveIDs reserves n producer ids and returns the first: ids first …
// first+n−1 are the caller's and are never returned again, even after a
// crash. The reservation is durable when it returns.
func (pt *Table) reserveIDs(n int64) (int64, error) {
	var next int64
	err := pt.sp.Update(producerIDKey, true, func(old []byte, ok bool) ([]byte, error) {
		if ok {
			var err error
			if next, err = decodeProducerIDs(old); err != nil {
				rerr := &state.RecordError{Kind: "Kafka producer id high-water mark", Key: pt.sp.Key(producerIDKey), Err: err}
				return nil, errs.Wrap(errs.CorruptData, rerr, "reserve producer ids")
			}
		}
		return binary.BigEndian.AppendUint64(nil, uint64(next+n)), nil
	})
	if err != nil {
		return 0, err
	}
	return next, nil
}

// decodeProducerIDs decodes the high-water mark.
func decodeProducerIDs(v []byte) (int64, error) {
	if err := state.Fixed(v, 8); err != nil {
		return 0, err
	}
	next := int64(binary.BigEndian.Uint64(v))
	if next < 0 || next > 1<<62 {
		return 0, fmt.Errorf("producer id %d is out of range", next)
	}
	return next, nil
}

// snapshotKey is a partition's snapshot key.
func snapshotKey(k partKey) []byte {
	b := append(bytes.Clone(snapshotPrefix), k.topicID...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint32(b, uint32(k.partition))
}

// snapshotKeyParts splits a snapshot key.
func snapshotKeyParts(k []byte) (topicID string, p int32, ok bool) {
	rest, found := bytes.CutPrefix(k, snapshotPrefix)
	if !found || len(rest) < 5 || rest[len(rest)-5] != 0 {
		return "", 0, false
	}
	return string(rest[:len(rest)-5]), int32(binary.BigEndian.Uint32(rest[len(rest)-4:])), true
}

// producerSnapshot is a partition's producer states as stored.
type producerSnapshot struct {
	end       int64 // the log's end when taken: the scan resumes here
	producers []snapshotProducer
}

type snapshotProducer struct {
	id       int64
	epoch    int16
	lastSeen int64           // Unix ms of its last batch
	batches  []snapshotBatch // oldest first, at most seqWindow
}

type snapshotBatch struct {
	first, last int32 // sequences
	base        int64 // offset
}

// loadSnapshot reads a partition's snapshot; ok is false if there is none
// or it cannot be read (logged).
func (pt *Table) loadSnapshot(k partKey) (producerSnapshot, bool, error) {
	key := snapshotKey(k)
	v, ok, err := pt.sp.Get(key)
	if err != nil || !ok {
		return producerSnapshot{}, false, err
	}
	snap, err := decodeSnapshot(v)
	if err != nil {
		rerr := &state.RecordError{Kind: "Kafka producer snapshot", Key: pt.sp.Key(key), Err: err}
		pt.logger.Warn("producer snapshot not used: the partition's log is scanned instead", "err", rerr)
		return producerSnapshot{}, false, nil
	}
	return snap, true, nil
}

// states turns a snapshot into producer states.
func (snap producerSnapshot) states() map[int64]*producerState {
	out := make(map[int64]*producerState, len(snap.producers))
	for _, sp := range snap.producers {
		st := &producerState{epoch: sp.epoch, lastSeen: sp.lastSeen}
		for _, b := range sp.batches {
			st.push(sp.epoch, seqBatch{first: b.first, last: b.last, base: b.base})
		}
		if st.n > 0 {
			out[sp.id] = st
		}
	}
	return out
}

// Version 1, big-endian:
//
//	01 | end int64 | n uint32 | n × producer
//	producer: id int64 | epoch int16 | last seen int64 (ms) | k uint8 (1–5) | k × (first int32 | last int32 | base int64)
//
// Producers by strictly ascending id.
const (
	snapshotVersion     = 1
	snapshotProducerLen = 8 + 2 + 8 + 1
	snapshotBatchLen    = 4 + 4 + 8
)

// encode encodes the snapshot as version 1, producers sorted by id.
func (snap producerSnapshot) encode() []byte {
	ps := snap.producers
	slices.SortFunc(ps, func(a, b snapshotProducer) int { return cmp.Compare(a.id, b.id) })
	n := 1 + 8 + 4
	for _, p := range ps {
		n += snapshotProducerLen + len(p.batches)*snapshotBatchLen
	}
	b := make([]byte, 0, n)
	b = append(b, snapshotVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(snap.end))
	b = binary.BigEndian.AppendUint32(b, uint32(len(ps)))
	for _, p := range ps {
		b = binary.BigEndian.AppendUint64(b, uint64(p.id))
		b = binary.BigEndian.AppendUint16(b, uint16(p.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(p.lastSeen))
		b = append(b, byte(len(p.batches)))
		for _, sb := range p.batches {
			b = binary.BigEndian.AppendUint32(b, uint32(sb.first))
			b = binary.BigEndian.AppendUint32(b, uint32(sb.last))
			b = binary.BigEndian.AppendUint64(b, uint64(sb.base))
		}
	}
	return b
}

// decodeSnapshot decodes a snapshot of version 0 or 1.
func decodeSnapshot(v []byte) (producerSnapshot, error) {
	version, p, err := state.Version(v, snapshotVersion, true)
	if err != nil {
		return producerSnapshot{}, err
	}
	if version == 0 {
		return decodeSnapshotV0(p)
	}
	r := state.NewReader(p)
	snap := producerSnapshot{end: r.I64()}
	n := r.U32()
	if r.Err == nil && uint64(n) > uint64(r.Left())/snapshotProducerLen {
		return producerSnapshot{}, fmt.Errorf("%d producers in %d bytes", n, r.Left())
	}
	if r.Err == nil && n > 0 {
		snap.producers = make([]snapshotProducer, 0, n)
	}
	for i := uint32(0); i < n && r.Err == nil; i++ {
		sp := snapshotProducer{id: r.I64(), epoch: int16(r.U16()), lastSeen: r.I64()}
		k := int(r.U8())
		if r.Err == nil && (k == 0 || k > seqWindow) {
			return producerSnapshot{}, fmt.Errorf("producer %d with %d batches, not 1 to %d", sp.id, k, seqWindow)
		}
		if i > 0 && r.Err == nil && sp.id <= snap.producers[i-1].id {
			return producerSnapshot{}, fmt.Errorf("producer %d after %d: not in ascending order", sp.id, snap.producers[i-1].id)
		}
		for range k {
			sp.batches = append(sp.batches, snapshotBatch{first: int32(r.U32()), last: int32(r.U32()), base: r.I64()})
		}
		snap.producers = append(snap.producers, sp)
	}
	switch {
	case r.Err != nil:
		return producerSnapshot{}, r.Err
	case r.Left() > 0:
		return producerSnapshot{}, fmt.Errorf("%d bytes after the snapshot", r.Left())
	case snap.end < 0:
		return producerSnapshot{}, fmt.Errorf("log end %d", snap.end)
	}
	return snap, nil
}

// snapshotV0 is version 0, JSON (up to release 7e44b4f).
type snapshotV0 struct {
	V         int                  `json:"v"`
	End       int64                `json:"end"`
	Producers []snapshotProducerV0 `json:"producers"`
}

type snapshotProducerV0 struct {
	ID       int64      `json:"id"`
	Epoch    int16      `json:"epoch"`
	LastSeen int64      `json:"seen"`
	Batches  [][3]int64 `json:"batches"` // first sequence, last sequence, base offset; oldest first
}

func decodeSnapshotV0(p []byte) (producerSnapshot, error) {
	var w snapshotV0
	if err := state.DecodeJSON(p, &w, true); err != nil {
		return producerSnapshot{}, err
	}
	if w.V != 1 || w.End < 0 {
		return producerSnapshot{}, fmt.Errorf("version-0 snapshot with v %d, end %d", w.V, w.End)
	}
	snap := producerSnapshot{end: w.End}
	for _, sp := range w.Producers {
		if len(sp.Batches) == 0 {
			continue // remembers nothing (states drops it)
		}
		if len(sp.Batches) > seqWindow {
			return producerSnapshot{}, fmt.Errorf("producer %d with %d batches, not 1 to %d", sp.ID, len(sp.Batches), seqWindow)
		}
		out := snapshotProducer{id: sp.ID, epoch: sp.Epoch, lastSeen: sp.LastSeen}
		for _, b := range sp.Batches {
			if b[0] < 0 || b[0] > math.MaxInt32 || b[1] < 0 || b[1] > math.MaxInt32 {
				return producerSnapshot{}, fmt.Errorf("producer %d: sequences %d–%d out of range", sp.ID, b[0], b[1])
			}
			out.batches = append(out.batches, snapshotBatch{first: int32(b[0]), last: int32(b[1]), base: b[2]})
		}
		snap.producers = append(snap.producers, out)
	}
	// As version 1 holds them: by id, each once.
	slices.SortFunc(snap.producers, func(a, b snapshotProducer) int { return cmp.Compare(a.id, b.id) })
	for i := 1; i < len(snap.producers); i++ {
		if snap.producers[i].id == snap.producers[i-1].id {
			return producerSnapshot{}, fmt.Errorf("producer %d twice", snap.producers[i].id)
		}
	}
	return snap, nil
}

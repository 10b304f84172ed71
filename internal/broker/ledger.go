package broker

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/state"
)

// The processed-key ledger of a queue subscription (idempotent consumer,
// docs/idempotent-consumer.md). With the subscription's processed key set,
// every message a member acknowledges leaves its key in the ledger for the
// processed TTL, and a message whose key is in the ledger is acknowledged
// by the broker when it is about to be delivered, instead of delivered.
//
// The ledger is consumer state: its records (l/ the key's hash → expiry,
// e/ expiry ‖ hash → nothing, the expiry index) are written in the same
// subWrite as the queue snapshot that records the acknowledgements, so a
// crash keeps both or neither, and a cluster replicates them through its
// metadata group with the snapshots. What memory holds, under
// subscription.mu: the keys of leased messages (queuePart.ledKeys, offset →
// hash, pruned below the floor) and the keys acknowledged since the last
// snapshot write (ledger.pending, at most maxLedgerPending: deliveries wait
// while it is full). Everything else is read from the state store.

// ledgerHash identifies a processed key: the first 16 bytes of the SHA-256
// of the key's kind and value.
type ledgerHash = [16]byte

const (
	// maxLedgerPending bounds the keys acknowledged and not yet written;
	// deliveries wait while it is reached (a snapshot write empties it).
	maxLedgerPending = 1 << 18
	// ledgerPurgeBatch bounds the expired keys one purge deletes (whole
	// expiry index records: up to ledgerChunk more).
	ledgerPurgeBatch = 4096
	// ledgerChunk bounds the keys of one expiry index record.
	ledgerChunk     = 4096
	ledgerEntrySize = 8 + 16 // expiry, key hash
	// ledgerPurgeEvery is how often a subscription looks for expired keys
	// when the last purge found fewer than a batch.
	ledgerPurgeEvery = time.Second
	// ledKeysPrune: a partition's leased keys are pruned below its floor
	// once it holds more than this.
	ledKeysPrune = 1024
)

// ledger is the in-memory part of a subscription's processed-key ledger.
// Guarded by subscription.mu, except purgeAt (the queue loop's, under
// queueState.ioMu).
type ledger struct {
	kind   catalog.ProcessedKind
	header string
	tag    string // hashed before the value: the setting, so that keys of one kind never match another's
	ttl    time.Duration

	pending map[ledgerHash]int64 // acknowledged, not yet written: hash → expiry (ms)
	// filter: every key recorded and not expired may be in it
	// (ledger_filter.go). Guarded by fmu (taken after subscription.mu when
	// both are), so that deliveries ask it without holding mu.
	filter *ledgerFilter
	fmu    sync.Mutex

	purgeAt time.Time
}

// newLedger returns the in-memory part of a subscription's ledger, its
// filter loaded from the ledger's expiry index (whatever the processed
// key is now: keys recorded before it was turned off stay until they
// expire, and count again if it is turned on).
func (s *subscription) newLedger(qc catalog.QueueConfig, now time.Time) (*ledger, error) {
	l := &ledger{pending: map[ledgerHash]int64{}}
	l.configure(qc)
	l.filter = newLedgerFilter(l.ttl.Milliseconds(), ledgerFilterBytes)
	prefix := state.LedgerExpiryPrefix(s.meta.Topic, s.meta.Name)
	nowMs := now.UnixMilli()
	err := s.t.b.cfg.State.ScanRange(state.LedgerExpiryKey(s.meta.Topic, s.meta.Name, nowMs+1, ledgerHash{}), append(bytes.Clone(prefix), 0xff),
		func(k, v []byte) error {
			return eachExpiryEntry(k, v, func(h ledgerHash, exp int64) error {
				if exp > nowMs {
					l.filter.add(h, exp)
				}
				return nil
			})
		})
	return l, err
}

// configure applies a (validated) queue config's ledger settings.
func (l *ledger) configure(qc catalog.QueueConfig) {
	kind, header, err := catalog.ParseProcessedKey(qc.ProcessedKey)
	if err != nil {
		kind = catalog.ProcessedOff
	}
	l.kind, l.header, l.tag, l.ttl = kind, header, qc.ProcessedKey, qc.ProcessedTTLOrDefault()
}

// on reports whether the ledger records and skips keys.
func (l *ledger) on() bool { return l != nil && l.kind != catalog.ProcessedOff }

// identity returns the hash of a message's processed key, or false when it
// has none (no key, or no such header): such a message is neither skipped
// nor recorded.
//
// By id, a message's identity is, in this order: its spool.original-id (a
// redriven dead letter: the id of the message it copies, which redrive
// sets to the original's position when it had no id), its spool.id, or
// its position "spool:<topic>/<partition>/<offset>".
func (l *ledger) identity(topic string, d *Delivered) (ledgerHash, bool) {
	var v []byte
	switch l.kind {
	case catalog.ProcessedByID:
		if orig := headerValue(d.Headers, HeaderOriginalID); orig != nil {
			v = orig
		} else if d.ID != "" {
			v = []byte(d.ID)
		} else {
			v = positionID(topic, d.Partition, d.Offset)
		}
	case catalog.ProcessedByKey:
		if len(d.Key) == 0 {
			return ledgerHash{}, false
		}
		v = d.Key
	case catalog.ProcessedByHeader:
		if v = headerValue(d.Headers, l.header); v == nil {
			return ledgerHash{}, false
		}
	default:
		return ledgerHash{}, false
	}
	var buf [256]byte
	in := append(append(append(buf[:0], l.tag...), 0), v...) // on the stack unless long
	sum := sha256.Sum256(in)
	var out ledgerHash
	copy(out[:], sum[:])
	return out, true
}

// positionID is the id by position of a message without one.
func positionID(topic string, p int32, off int64) []byte {
	b := append([]byte("spool:"), topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(p), 10)
	b = append(b, '/')
	return strconv.AppendInt(b, off, 10)
}

// decodeLedgerExpiry decodes the ledger record stored under key: the
// expiry, 8 bytes big-endian (a fixed layout, version 0; written by
// addLedger).
func decodeLedgerExpiry(key, v []byte) (int64, error) {
	if err := state.Fixed(v, 8); err != nil {
		return 0, &state.RecordError{Kind: "processed key", Key: key, Err: err}
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// skipProcessed takes out of a member's deliveries the messages whose
// processed key is in the ledger, acknowledging them for the member (they
// count as idempotent skips), and remembers the keys of the others for
// their acks. It returns the deliveries left.
func (sess *Session) skipProcessed(out []Delivered) []Delivered {
	s := sess.sub
	t := s.t
	s.mu.Lock()
	l := s.q.ledger
	if !l.on() {
		s.mu.Unlock()
		return out
	}
	lc := ledger{kind: l.kind, header: l.header, tag: l.tag}
	s.mu.Unlock()

	now := t.b.clock.Now()
	nowMs := now.UnixMilli()
	type look struct {
		h       ledgerHash
		has     bool
		skipped bool
		maybe   bool // the filter may have it: ask the store
	}
	looks := make([]look, len(out))
	for i := range out {
		if h, ok := lc.identity(s.meta.Topic, &out[i]); ok {
			looks[i] = look{h: h, has: true}
		}
	}
	// The filter, then the store for its maybes, then (below, under mu)
	// the keys acknowledged and not written yet. A key acknowledged after
	// the filter was asked belongs to a message in flight beside this one:
	// duplicates in flight at once are not caught (documented).
	asks := 0
	l.fmu.Lock()
	for i := range looks {
		if lk := &looks[i]; lk.has && l.filter.mayHave(lk.h, nowMs) {
			lk.maybe = true
			asks++
		}
	}
	l.fmu.Unlock()
	st := t.b.cfg.State
	for i := range looks {
		lk := &looks[i]
		if !lk.maybe {
			continue
		}
		key := state.LedgerKey(s.meta.Topic, s.meta.Name, lk.h)
		v, err := st.Get(key)
		if err != nil {
			if !errors.Is(err, state.ErrNotFound) {
				t.b.logger.Error("reading the processed-key ledger failed; delivering", "topic", s.meta.Topic, "subscription", s.meta.Name, "err", err)
			}
			continue
		}
		if exp, err := decodeLedgerExpiry(key, v); err == nil && exp > nowMs {
			lk.skipped = true
		}
	}
	if asks > 0 {
		s.stats.ledgerReads.Add(uint64(asks))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.closed || s.q.ledger != l {
		return out
	}
	kept := out[:0]
	skipped := 0
	for i := range out {
		d, lk := out[i], looks[i]
		if lk.has && !lk.skipped {
			// Acknowledged and not written yet.
			if exp, ok := l.pending[lk.h]; ok && exp > nowMs {
				lk.skipped = true
			}
		}
		if int(d.Partition) >= len(s.q.parts) {
			kept = append(kept, d)
			continue
		}
		qp := s.q.parts[d.Partition]
		if !lk.skipped {
			if lk.has {
				if qp.ledKeys == nil {
					qp.ledKeys = map[int64]ledgerHash{}
				}
				qp.ledKeys[d.Offset] = lk.h
			} else {
				delete(qp.ledKeys, d.Offset)
			}
			kept = append(kept, d)
			continue
		}
		delete(qp.ledKeys, d.Offset)
		stale, eff := qp.core.Ack(now, sess.id, []int64{d.Offset})
		s.applyQueueLocked(qp, eff)
		if len(stale) > 0 {
			continue // the lease ended meanwhile (a reset): nothing to acknowledge
		}
		s.releaseSlotLocked(sess.id, 1)
		s.finishedLocked(qp, []int64{d.Offset})
		skipped++
	}
	if skipped > 0 {
		s.stats.idempotentSkips.Add(uint64(skipped))
		// The skipped messages used credits the member never sees; give
		// them back.
		sess.credits = min(sess.credits+skipped, maxCredits)
	}
	return kept
}

// recordProcessedLocked moves the keys of acknowledged offsets of qp from
// the leased keys to the ledger's pending keys. Called with s.mu held.
func (s *subscription) recordProcessedLocked(qp *queuePart, acked []int64, now time.Time) {
	l := s.q.ledger
	if !l.on() || len(qp.ledKeys) == 0 {
		return
	}
	exp := now.Add(l.ttl).UnixMilli()
	for _, off := range acked {
		if h, ok := qp.ledKeys[off]; ok {
			delete(qp.ledKeys, off)
			l.pending[h] = exp
			l.fmu.Lock()
			l.filter.add(h, exp)
			l.fmu.Unlock()
		}
	}
}

// forgetLeasedKeyLocked drops the leased key of an offset whose lease ended
// without an ack. Called with s.mu held.
func (qp *queuePart) forgetLeasedKeyLocked(off int64) {
	if qp.ledKeys != nil {
		delete(qp.ledKeys, off)
	}
}

// pruneLedKeysLocked drops leased keys below the partition's floor (their
// messages are finished) once there are many. Called with s.mu held.
func (qp *queuePart) pruneLedKeysLocked() {
	if len(qp.ledKeys) <= ledKeysPrune {
		return
	}
	_, floor := qp.core.Limited()
	for off := range qp.ledKeys {
		if off < floor {
			delete(qp.ledKeys, off)
		}
	}
}

// ledgerFull reports whether deliveries must wait for the pending keys to
// be written. Called with s.mu held.
func (q *queueState) ledgerFull() bool {
	return q.ledger.on() && len(q.ledger.pending) >= maxLedgerPending
}

// pendingLedgerLocked returns the pending keys to write with a snapshot.
// Called with s.mu held.
func (q *queueState) pendingLedgerLocked() map[ledgerHash]int64 {
	if q.ledger == nil || len(q.ledger.pending) == 0 {
		return nil
	}
	out := make(map[ledgerHash]int64, len(q.ledger.pending))
	for h, exp := range q.ledger.pending {
		out[h] = exp
	}
	return out
}

// addLedger adds the writes of pending keys to w: a ledger record per key
// (in key order, which Pebble's memtable inserts fastest), and the expiry
// index in records of up to ledgerChunk keys by expiry, each keyed by the
// latest expiry it holds.
func (s *subscription) addLedger(w *subWrite, keys map[ledgerHash]int64) {
	if len(keys) == 0 {
		return
	}
	type entry struct {
		h   ledgerHash
		exp int64
	}
	es := make([]entry, 0, len(keys))
	for h, exp := range keys {
		es = append(es, entry{h, exp})
	}
	slices.SortFunc(es, func(a, b entry) int { return bytes.Compare(a.h[:], b.h[:]) })
	// One buffer for every key and value.
	prefix := state.LedgerPrefix(s.meta.Topic, s.meta.Name)
	klen := len(prefix) + len(ledgerHash{})
	arena := make([]byte, 0, len(es)*(klen+8))
	for _, e := range es {
		arena = append(append(arena, prefix...), e.h[:]...)
		k := arena[len(arena)-klen : len(arena) : len(arena)]
		arena = binary.BigEndian.AppendUint64(arena, uint64(e.exp))
		w.set(k, arena[len(arena)-8:len(arena):len(arena)])
	}
	slices.SortFunc(es, func(a, b entry) int {
		if c := cmp.Compare(a.exp, b.exp); c != 0 {
			return c
		}
		return bytes.Compare(a.h[:], b.h[:])
	})
	for len(es) > 0 {
		chunk := es[:min(len(es), ledgerChunk)]
		es = es[len(chunk):]
		v := make([]byte, 0, len(chunk)*ledgerEntrySize)
		for _, e := range chunk {
			v = binary.BigEndian.AppendUint64(v, uint64(e.exp))
			v = append(v, e.h[:]...)
		}
		w.set(state.LedgerExpiryKey(s.meta.Topic, s.meta.Name, chunk[len(chunk)-1].exp, chunk[0].h), v)
	}
}

// eachExpiryEntry calls fn with each key and expiry of an expiry index
// record (exp ‖ hash, 24 bytes each).
func eachExpiryEntry(key, v []byte, fn func(h ledgerHash, exp int64) error) error {
	if len(v) == 0 || len(v)%ledgerEntrySize != 0 {
		return &state.RecordError{Kind: "processed-key expiry index", Key: key, Err: fmt.Errorf("%d bytes, not a multiple of %d", len(v), ledgerEntrySize)}
	}
	for ; len(v) > 0; v = v[ledgerEntrySize:] {
		var h ledgerHash
		copy(h[:], v[8:ledgerEntrySize])
		if err := fn(h, int64(binary.BigEndian.Uint64(v))); err != nil {
			return err
		}
	}
	return nil
}

// ledgerWritten forgets the pending keys that were written (unless they
// were acknowledged again meanwhile, with a later expiry), and wakes the
// members if deliveries were waiting. Called without s.mu.
func (s *subscription) ledgerWritten(keys map[ledgerHash]int64) {
	if len(keys) == 0 {
		return
	}
	s.mu.Lock()
	l := s.q.ledger
	full := len(l.pending) >= maxLedgerPending
	for h, exp := range keys {
		if l.pending[h] == exp {
			delete(l.pending, h)
		}
	}
	s.mu.Unlock()
	if full {
		s.wakeSessions()
	}
}

// errStopScan ends a scan early.
var errStopScan = errors.New("stop")

// purgeLedger deletes the expired keys of up to ledgerPurgeBatch keys'
// worth of expiry index records (whole records, whose keys all expired):
// the records, and the ledger records of their keys unless a later ack
// renewed them. It runs every ledgerPurgeEvery, or on every tick while it
// finds more. Called by the queue loop with ioMu held.
func (s *subscription) purgeLedger(now time.Time) {
	l := s.q.ledger
	if l == nil || now.Before(l.purgeAt) {
		return
	}
	topic, sub := s.meta.Topic, s.meta.Name
	st := s.t.b.cfg.State
	prefix := state.LedgerExpiryPrefix(topic, sub)
	until := state.LedgerExpiryKey(topic, sub, now.UnixMilli()+1, ledgerHash{})
	w := s.newWrite()
	n, purged := 0, 0
	err := st.ScanRange(prefix, until, func(k, v []byte) error {
		if n >= ledgerPurgeBatch {
			return errStopScan
		}
		w.del(bytes.Clone(k))
		return eachExpiryEntry(k, v, func(h ledgerHash, exp int64) error {
			n++
			key := state.LedgerKey(topic, sub, h)
			cur, err := st.Get(key)
			if errors.Is(err, state.ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			if e, err := decodeLedgerExpiry(key, cur); err != nil || e == exp {
				w.del(key)
				purged++
			}
			return nil
		})
	})
	if err != nil && !errors.Is(err, errStopScan) {
		s.t.b.logger.Error("purging the processed-key ledger failed", "topic", topic, "subscription", sub, "err", err)
		l.purgeAt = now.Add(ledgerPurgeEvery)
		return
	}
	if err == nil {
		l.purgeAt = now.Add(ledgerPurgeEvery) // nothing more is due
	}
	if err := s.t.b.writeSub(w); err != nil {
		s.t.b.logger.Error("purging the processed-key ledger failed", "topic", topic, "subscription", sub, "err", err)
		l.purgeAt = now.Add(ledgerPurgeEvery)
		return
	}
	s.stats.ledgerPurged.Add(uint64(purged))
}

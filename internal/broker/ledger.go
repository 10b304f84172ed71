package broker

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strconv"
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
	// ledgerPurgeBatch bounds the expired keys one purge deletes.
	ledgerPurgeBatch = 1024
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

	purgeAt time.Time
}

// newLedger returns the ledger of a queue config (its in-memory part).
func newLedger(qc catalog.QueueConfig) *ledger {
	l := &ledger{pending: map[ledgerHash]int64{}}
	l.configure(qc)
	return l
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
	h := sha256.New()
	h.Write([]byte(l.tag))
	h.Write([]byte{0})
	h.Write(v)
	var sum [sha256.Size]byte
	var out ledgerHash
	copy(out[:], h.Sum(sum[:0]))
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

// encodeLedgerExpiry encodes a ledger record: the expiry, 8 bytes (a fixed
// layout, version 0).
func encodeLedgerExpiry(ms int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(ms)) }

// decodeLedgerExpiry decodes the ledger record stored under key.
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
	}
	looks := make([]look, len(out))
	st := t.b.cfg.State
	for i := range out {
		h, ok := lc.identity(s.meta.Topic, &out[i])
		if !ok {
			continue
		}
		looks[i] = look{h: h, has: true}
		key := state.LedgerKey(s.meta.Topic, s.meta.Name, h)
		v, err := st.Get(key)
		if err != nil {
			if !errors.Is(err, state.ErrNotFound) {
				t.b.logger.Error("reading the processed-key ledger failed; delivering", "topic", s.meta.Topic, "subscription", s.meta.Name, "err", err)
			}
			continue
		}
		if exp, err := decodeLedgerExpiry(key, v); err == nil && exp > nowMs {
			looks[i].skipped = true
		}
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

// addLedger adds the writes of pending keys to w.
func (s *subscription) addLedger(w *subWrite, keys map[ledgerHash]int64) {
	for h, exp := range keys {
		w.set(state.LedgerKey(s.meta.Topic, s.meta.Name, h), encodeLedgerExpiry(exp))
		w.set(state.LedgerExpiryKey(s.meta.Topic, s.meta.Name, exp, h), nil)
	}
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

// purgeLedger deletes up to a batch of expired keys: their expiry index
// entries, and their ledger records unless a later ack renewed them. It
// runs every ledgerPurgeEvery, or on every tick while it finds full
// batches. Called by the queue loop with ioMu held.
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
	n := 0
	err := st.ScanRange(prefix, until, func(k, _ []byte) error {
		if n >= ledgerPurgeBatch {
			return errStopScan
		}
		n++
		w.del(bytes.Clone(k))
		if len(k) != len(prefix)+8+16 {
			return nil
		}
		exp := int64(binary.BigEndian.Uint64(k[len(prefix):]))
		var h ledgerHash
		copy(h[:], k[len(prefix)+8:])
		key := state.LedgerKey(topic, sub, h)
		v, err := st.Get(key)
		if err != nil {
			if errors.Is(err, state.ErrNotFound) {
				return nil
			}
			return err
		}
		if cur, err := decodeLedgerExpiry(key, v); err != nil || cur == exp {
			w.del(key)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		s.t.b.logger.Error("scanning the processed-key ledger failed", "topic", topic, "subscription", sub, "err", err)
		l.purgeAt = now.Add(ledgerPurgeEvery)
		return
	}
	if n < ledgerPurgeBatch {
		l.purgeAt = now.Add(ledgerPurgeEvery)
	}
	if err := s.t.b.writeSub(w); err != nil {
		s.t.b.logger.Error("purging the processed-key ledger failed", "topic", topic, "subscription", sub, "err", err)
		l.purgeAt = now.Add(ledgerPurgeEvery)
		return
	}
	s.stats.ledgerPurged.Add(uint64(n))
}

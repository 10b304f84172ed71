package broker

import (
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
)

// dedup remembers, per topic, the message ids published within the topic's
// de-duplication window and where each landed. Ids are kept as 128-bit
// keyed hashes (two maphash seeds, random per process): fixed-size keys make
// the map several times cheaper than string keys, and an accidental
// collision (which would drop a message as a duplicate) has probability
// about n²/2¹²⁹ — for a million ids, below 10⁻²⁶.
//
// Entries live in a ring in reservation order, and the map only points into
// it: recording where a message landed writes its slot directly, and expiry
// pops the ring's head, so each message costs three map operations (look
// up, insert, delete) and the map never accumulates deletions of entries
// that are still referenced.
//
// It is derived state: the log is the source of truth, and at start-up the
// broker rebuilds it by replaying each partition from the first message
// younger than the window (see replayDedup). Nothing is written on the
// publish path for it. Memory is bounded by maxEntries; when full, the
// oldest ids are forgotten early and evicted counts it.
type dedup struct {
	mu         sync.Mutex
	window     time.Duration
	maxEntries int
	index      map[idKey]uint64 // id -> sequence number of its slot; guarded by mu
	ring       []dedupSlot      // slot of sequence n at ring[n % len(ring)]; guarded by mu
	head, tail uint64           // live slots are [head, tail); guarded by mu
	evicted    int64            // ids forgotten before their window ended
	hits       int64            // messages answered as duplicates
}

// idKey is the 128-bit hash of a message id.
type idKey [2]uint64

var idSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func keyOf(id string) idKey {
	return idKey{maphash.String(idSeeds[0], id), maphash.String(idSeeds[1], id)}
}

// dedupSlot is one reserved or recorded id.
type dedupSlot struct {
	id        idKey
	partition int32
	offset    int64
	at        int64 // Unix ms the id was recorded; pendingAt or deadAt
}

// Special values of dedupSlot.at.
const (
	pendingAt = -1 << 63 // publish in progress
	deadAt    = pendingAt + 1
)

// dedupEntry is where an id landed.
type dedupEntry struct {
	partition int32
	offset    int64
}

func newDedup(window time.Duration, maxEntries int) *dedup {
	return &dedup{
		window:     window,
		maxEntries: maxEntries,
		index:      map[idKey]uint64{},
		ring:       make([]dedupSlot, 1024),
	}
}

func (d *dedup) slot(seq uint64) *dedupSlot { return &d.ring[seq%uint64(len(d.ring))] }

// expireLocked pops slots older than the window, and the oldest ones beyond
// maxEntries; a pending slot at the head stops it (it is recorded soon).
func (d *dedup) expireLocked(nowMs int64) {
	cutoff := nowMs - d.window.Milliseconds()
	for d.head < d.tail {
		sl := d.slot(d.head)
		over := d.tail-d.head > uint64(d.maxEntries)
		if sl.at == pendingAt || (sl.at > cutoff && !over) {
			break
		}
		if sl.at != deadAt {
			delete(d.index, sl.id)
			if sl.at > cutoff {
				d.evicted++
			}
		}
		*sl = dedupSlot{}
		d.head++
	}
}

// dedupStatus is what reserve says about one id.
type dedupStatus int

const (
	dedupNew        dedupStatus = iota // reserved: publish it, then record or release
	dedupDuplicate                     // seen within the window
	dedupInProgress                    // being published by another request right now
)

// reserveLocked looks id up; a new id gets a pending slot, whose sequence
// number it returns, until record or release.
func (d *dedup) reserveLocked(id idKey, nowMs int64) (dedupStatus, dedupEntry, uint64) {
	if seq, ok := d.index[id]; ok {
		sl := d.slot(seq)
		switch {
		case sl.at == pendingAt:
			return dedupInProgress, dedupEntry{}, 0
		case sl.at > nowMs-d.window.Milliseconds():
			return dedupDuplicate, dedupEntry{partition: sl.partition, offset: sl.offset}, 0
		}
		sl.at = deadAt // expired but not yet popped: the new slot replaces it
	}
	if d.tail-d.head == uint64(len(d.ring)) {
		d.grow()
	}
	seq := d.tail
	d.tail++
	*d.slot(seq) = dedupSlot{id: id, at: pendingAt}
	d.index[id] = seq
	return dedupNew, dedupEntry{}, seq
}

// grow doubles the ring, keeping sequence numbers.
func (d *dedup) grow() {
	ring := make([]dedupSlot, 2*len(d.ring))
	for seq := d.head; seq < d.tail; seq++ {
		ring[seq%uint64(len(ring))] = *d.slot(seq)
	}
	d.ring = ring
}

// recordLocked stores where the reserved slot seq landed.
func (d *dedup) recordLocked(seq uint64, partition int32, offset, atMs int64) {
	sl := d.slot(seq)
	sl.partition, sl.offset, sl.at = partition, offset, atMs
}

// releaseLocked forgets a reservation whose publish failed.
func (d *dedup) releaseLocked(seq uint64) {
	sl := d.slot(seq)
	if cur, ok := d.index[sl.id]; ok && cur == seq {
		delete(d.index, sl.id)
	}
	sl.at = deadAt
}

// add reserves and records an id at once (replay), then expires what is
// older than the window at nowMs.
func (d *dedup) add(id idKey, partition int32, offset, atMs, nowMs int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st, _, seq := d.reserveLocked(id, atMs); st == dedupNew {
		d.recordLocked(seq, partition, offset, atMs)
	}
	d.expireLocked(nowMs)
}

// setWindow changes how long ids are remembered. A shorter window forgets
// older ids at the next publish; a longer one keeps the ids still
// remembered for longer.
func (d *dedup) setWindow(w time.Duration) {
	d.mu.Lock()
	d.window = w
	d.mu.Unlock()
}

// reservation is what reserve decided for one publish request: the ids it
// holds for the request's new messages until settle, and the messages
// repeating an id earlier in the request.
type reservation struct {
	d     *dedup
	idx   []int       // the messages whose ids are held, in request order
	slots []uint64    // the slot of each, parallel to idx
	dupOf map[int]int // message index -> earlier index with the same id in the request
}

// reserve looks up the ids of a publish request's messages (those that have
// one) at now. A new id is held for its message, which must be stored and
// then settled. An id recorded within the window makes its message a
// duplicate: its result is where the id landed, with Duplicate set; an id
// already seen earlier in the request makes its message a duplicate of that
// one (dupOf). Neither duplicate is stored (store[i] = false). An id that
// another request holds at this moment releases every id held here and
// fails the request with the retriable duplicate_in_progress. It returns
// nil when no message has an id.
func (d *dedup) reserve(msgs []Message, now time.Time, results []Result, store []bool) (*reservation, error) {
	if !hasIDs(msgs) {
		return nil, nil
	}
	nowMs := now.UnixMilli()
	keys := make([]idKey, len(msgs)) // hashed outside the lock
	for i := range msgs {
		if msgs[i].ID != "" {
			keys[i] = keyOf(msgs[i].ID)
		}
	}
	r := &reservation{d: d, idx: make([]int, 0, len(msgs)), slots: make([]uint64, 0, len(msgs))}
	seen := make(map[idKey]int, len(msgs))
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expireLocked(nowMs)
	for i := range msgs {
		if msgs[i].ID == "" {
			continue
		}
		id := keys[i]
		if j, ok := seen[id]; ok {
			if r.dupOf == nil {
				r.dupOf = map[int]int{}
			}
			r.dupOf[i] = j
			store[i] = false
			d.hits++
			continue
		}
		st, e, seq := d.reserveLocked(id, nowMs)
		switch st {
		case dedupDuplicate:
			results[i] = Result{Partition: e.partition, Offset: e.offset, Duplicate: true}
			store[i] = false
			d.hits++
		case dedupInProgress:
			for _, seq := range r.slots {
				d.releaseLocked(seq)
			}
			err := errs.New(errs.DuplicateInProgress, "message %d: id %q is being published by another request", i, msgs[i].ID)
			err.RetryAfter = 10 * time.Millisecond
			return nil, err
		default:
			seen[id] = i
			r.idx = append(r.idx, i)
			r.slots = append(r.slots, seq)
		}
	}
	return r, nil
}

// settle ends the reservation once the request's appends completed: the id
// of every message stored records where it landed (results), at now; the
// id of every message that was not (its append failed) is released, so a
// retry can publish it. A nil reservation settles nothing.
func (r *reservation) settle(results []Result, now time.Time) {
	if r == nil || len(r.idx) == 0 {
		return
	}
	nowMs := now.UnixMilli()
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	for k, i := range r.idx {
		if res := results[i]; res.stored {
			r.d.recordLocked(r.slots[k], res.Partition, res.Offset, nowMs)
		} else {
			r.d.releaseLocked(r.slots[k])
		}
	}
}

// duplicates returns, for every message repeating an id earlier in the
// request, the index of that earlier message.
func (r *reservation) duplicates() map[int]int {
	if r == nil {
		return nil
	}
	return r.dupOf
}

func hasIDs(msgs []Message) bool {
	for i := range msgs {
		if msgs[i].ID != "" {
			return true
		}
	}
	return false
}

// len returns the number of remembered ids.
func (d *dedup) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.index)
}

// replayDedup rebuilds the de-duplication window from the logs: every
// message with an id and a timestamp inside the window is remembered again.
func (t *topic) replayDedup() error {
	n := 0
	for p, l := range t.logs() {
		k, err := t.replayIDs(int32(p), l)
		if err != nil {
			return err
		}
		n += k
	}
	if n > 0 {
		t.b.logger.Info("rebuilt de-duplication window", "topic", t.meta.Name, "ids", t.dedup.len(), "window", t.meta.Config.DedupWindow)
	}
	return nil
}

// replayIDs adds the ids of partition p's messages inside the window to
// the de-duplication window (those it holds already stay as they are),
// and returns how many it read.
func (t *topic) replayIDs(p int32, l *seglog.Log) (int, error) {
	now := t.b.clock.Now()
	from := now.Add(-t.meta.Config.DedupWindow).UnixMilli()
	d := t.dedup
	off, ok, err := l.OffsetForTime(from)
	if err != nil {
		return 0, fmt.Errorf("broker: replay ids of %s/%d: %w", t.meta.Name, p, err)
	}
	if !ok {
		return 0, nil
	}
	n := 0
	err = t.eachRecord(l, off, func(o int64, ts time.Time, r batch.Record) bool {
		if id, _ := attrs(r.Headers); id != "" && ts.UnixMilli() >= from {
			d.add(keyOf(id), p, o, ts.UnixMilli(), now.UnixMilli())
			n++
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("broker: replay ids of %s/%d: %w", t.meta.Name, p, err)
	}
	return n, nil
}

// catchUpIDs prepares a cluster's publish of messages with ids: in every
// partition this node leads that a message with an id goes to (partOf),
// the window must hold the ids other leaders stored. A node keeps the ids
// of its own publishes, so the partition's log is read again only when its
// leadership term changed (this node was a follower, or another node led
// in between), once per term, after its predecessor's entries committed
// (replica.ready). Partitions led elsewhere refuse the publish anyway.
func (t *topic) catchUpIDs(rs []*replica, msgs []Message, partOf func(*Message) int32) error {
	var done []int32
	for i := range msgs {
		if msgs[i].ID == "" {
			continue
		}
		p := partOf(&msgs[i])
		if slices.Contains(done, p) {
			continue
		}
		done = append(done, p)
		r := rs[p]
		_, term, self := r.g.Leader()
		if !self || r.idsTerm.Load() == term || !r.ready(term) {
			continue
		}
		r.idsMu.Lock()
		if r.idsTerm.Load() != term {
			n, err := t.replayIDs(p, t.logs()[p])
			if err != nil {
				r.idsMu.Unlock()
				return errs.Wrap(errs.Unavailable, err, "partition %s/%d", t.meta.Name, p)
			}
			r.idsTerm.Store(term)
			t.b.logger.Debug("de-duplication window caught up with a new leadership", "topic", t.meta.Name, "partition", p, "term", term, "ids", n)
		}
		r.idsMu.Unlock()
	}
	return nil
}

package broker

import (
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/batch"
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

// addLocked reserves and records an id at once (replay).
func (d *dedup) addLocked(id idKey, partition int32, offset, atMs int64) {
	if st, _, seq := d.reserveLocked(id, atMs); st == dedupNew {
		d.recordLocked(seq, partition, offset, atMs)
	}
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
	now := t.b.clock.Now()
	from := now.Add(-t.meta.Config.DedupWindow).UnixMilli()
	d := t.dedup
	maxDec := t.b.cfg.Log.Limits.MaxDecompressedBytes
	n := 0
	for p, l := range t.logs() {
		off, ok, err := l.OffsetForTime(from)
		if err != nil {
			return fmt.Errorf("broker: replay ids of %s/%d: %w", t.meta.Name, p, err)
		}
		if !ok {
			continue
		}
		for off < l.EndOffset() {
			data, err := l.Read(off, 1<<20)
			if err != nil {
				return fmt.Errorf("broker: replay ids of %s/%d at %d: %w", t.meta.Name, p, off, err)
			}
			if len(data) == 0 {
				break
			}
			for len(data) > 0 {
				one, rest, err := batch.Next(data)
				if err != nil {
					return err
				}
				data = rest
				h, err := batch.ParseHeader(one)
				if err != nil {
					return err
				}
				off = h.LastOffset() + 1
				err = batch.ForEachRecord(one, maxDec, func(r batch.Record) error {
					id, _ := attrs(r.Headers)
					ts := h.BaseTimestamp + r.TimestampDelta
					if id != "" && ts >= from {
						d.mu.Lock()
						d.addLocked(keyOf(id), int32(p), h.BaseOffset+int64(r.OffsetDelta), ts)
						d.expireLocked(now.UnixMilli())
						d.mu.Unlock()
						n++
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("broker: replay ids of %s/%d: %w", t.meta.Name, p, err)
				}
			}
		}
	}
	if n > 0 {
		t.b.logger.Info("rebuilt de-duplication window", "topic", t.meta.Name, "ids", d.len(), "window", t.meta.Config.DedupWindow)
	}
	return nil
}

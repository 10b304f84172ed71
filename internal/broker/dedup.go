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
// It is derived state: the log is the source of truth, and at start-up the
// broker rebuilds it by replaying each partition from the first message
// younger than the window (see replayDedup). Nothing is written on the
// publish path for it. Memory is bounded by maxEntries; when full, the
// oldest ids are forgotten early and evicted counts it.
type dedup struct {
	mu         sync.Mutex
	window     time.Duration
	maxEntries int
	entries    map[idKey]dedupEntry // recorded and pending ids; guarded by mu
	order      []dedupOrder         // insertion order, for expiry; guarded by mu
	head       int                  // first live element of order
	evicted    int64                // ids forgotten before their window ended
}

// idKey is the 128-bit hash of a message id.
type idKey [2]uint64

var idSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func keyOf(id string) idKey {
	return idKey{maphash.String(idSeeds[0], id), maphash.String(idSeeds[1], id)}
}

type dedupEntry struct {
	partition int32
	offset    int64
	at        int64 // Unix ms the id was recorded; pendingAt while being published
}

// pendingAt marks an entry whose publish is in progress; expiry skips it.
const pendingAt = -1 << 63

type dedupOrder struct {
	id idKey
	at int64
}

func newDedup(window time.Duration, maxEntries int) *dedup {
	return &dedup{
		window:     window,
		maxEntries: maxEntries,
		entries:    map[idKey]dedupEntry{},
	}
}

// expireLocked drops entries older than the window, and the oldest ones
// beyond maxEntries.
func (d *dedup) expireLocked(nowMs int64) {
	cutoff := nowMs - d.window.Milliseconds()
	for d.head < len(d.order) {
		o := d.order[d.head]
		over := len(d.entries) > d.maxEntries
		if o.at > cutoff && !over {
			break
		}
		if e, ok := d.entries[o.id]; ok && e.at == o.at {
			delete(d.entries, o.id)
			if over && o.at > cutoff {
				d.evicted++
			}
		}
		d.order[d.head] = dedupOrder{}
		d.head++
	}
	if d.head > 1024 && d.head*2 > len(d.order) {
		d.order = append(d.order[:0:0], d.order[d.head:]...)
		d.head = 0
	}
}

// dedupStatus is what reserve says about one id.
type dedupStatus int

const (
	dedupNew        dedupStatus = iota // reserved: publish it, then record or release
	dedupDuplicate                     // seen within the window
	dedupInProgress                    // being published by another request right now
)

// reserve looks id up; a new id is reserved (a pending entry) until record
// or release.
func (d *dedup) reserveLocked(id idKey, nowMs int64) (dedupStatus, dedupEntry) {
	if e, ok := d.entries[id]; ok {
		if e.at == pendingAt {
			return dedupInProgress, dedupEntry{}
		}
		if e.at > nowMs-d.window.Milliseconds() {
			return dedupDuplicate, e
		}
	}
	d.entries[id] = dedupEntry{at: pendingAt}
	return dedupNew, dedupEntry{}
}

// recordLocked stores where a reserved (or replayed) id landed.
func (d *dedup) recordLocked(id idKey, partition int32, offset, atMs int64) {
	d.entries[id] = dedupEntry{partition: partition, offset: offset, at: atMs}
	d.order = append(d.order, dedupOrder{id: id, at: atMs})
}

// releaseLocked forgets a reservation whose publish failed.
func (d *dedup) releaseLocked(id idKey) {
	if e, ok := d.entries[id]; ok && e.at == pendingAt {
		delete(d.entries, id)
	}
}

// len returns the number of remembered ids.
func (d *dedup) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// replayDedup rebuilds the de-duplication window from the logs: every
// message with an id and a timestamp inside the window is remembered again.
func (t *topic) replayDedup() error {
	now := t.b.clock.Now()
	from := now.Add(-t.meta.Config.DedupWindow).UnixMilli()
	d := t.dedup
	maxDec := t.b.cfg.Log.Limits.MaxDecompressedBytes
	if maxDec <= 0 {
		maxDec = batch.DefaultLimits().MaxDecompressedBytes
	}
	n := 0
	for p, l := range t.parts {
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
						d.recordLocked(keyOf(id), int32(p), h.BaseOffset+int64(r.OffsetDelta), ts)
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

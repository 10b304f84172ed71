package broker

import (
	"fmt"
	"testing"
	"time"
)

func TestDedupRing(t *testing.T) {
	d := newDedup(time.Second, 3000)
	now := int64(1_000_000)
	var seqs []uint64
	for i := range 5000 {
		st, _, seq := d.reserveLocked(keyOf(fmt.Sprint(i)), now)
		if st != dedupNew {
			t.Fatalf("id %d: status %d", i, st)
		}
		seqs = append(seqs, seq)
	}
	// All pending: a second reservation is in progress, nothing expires.
	if st, _, _ := d.reserveLocked(keyOf("7"), now); st != dedupInProgress {
		t.Fatalf("pending id: %d", st)
	}
	d.expireLocked(now)
	if len(d.index) != 5000 {
		t.Fatalf("pending entries expired: %d left", len(d.index))
	}
	for i, seq := range seqs {
		if i == 42 {
			d.releaseLocked(seq) // its publish failed
			continue
		}
		d.recordLocked(seq, 1, int64(i), now)
	}
	if st, _, _ := d.reserveLocked(keyOf("42"), now); st != dedupNew {
		t.Fatal("a released id must be publishable again")
	}
	st, e, _ := d.reserveLocked(keyOf("4999"), now)
	if st != dedupDuplicate || e.offset != 4999 {
		t.Fatalf("recorded id: %d %+v", st, e)
	}
	// Over the bound: the oldest are forgotten first.
	d.expireLocked(now)
	if got := len(d.index); got > 3001 {
		t.Fatalf("%d ids kept, bound 3000", got)
	}
	if st, _, _ := d.reserveLocked(keyOf("0"), now); st != dedupNew {
		t.Fatal("oldest id not evicted")
	}
	if d.evicted == 0 {
		t.Fatal("evictions not counted")
	}
	// After the window everything expires.
	d.expireLocked(now + 2000)
	if len(d.index) > 2 { // the two pending re-reservations above
		t.Fatalf("%d ids after the window", len(d.index))
	}
}

package broker

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/errs"
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

// TestDedupReservation: one publish request's reservation from reserve to
// settle, with a concurrent request meeting its ids.
func TestDedupReservation(t *testing.T) {
	d := newDedup(time.Minute, 1000)
	now := time.UnixMilli(1_000_000)
	request := func(ids ...string) ([]Message, []Result, []bool) {
		msgs := make([]Message, len(ids))
		store := make([]bool, len(ids))
		for i, id := range ids {
			msgs[i].ID = id
			store[i] = true
		}
		return msgs, make([]Result, len(ids)), store
	}

	msgs, resA, storeA := request("a", "b", "a", "")
	a, err := d.reserve(msgs, now, resA, storeA)
	if err != nil || a == nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, true}; !slices.Equal(storeA, want) {
		t.Fatalf("store %v, want %v", storeA, want)
	}
	if dups := a.duplicates(); len(dups) != 1 || dups[2] != 0 {
		t.Fatalf("duplicates in the request: %v", dups)
	}

	// Another request meeting "a" while it is held fails and holds nothing.
	msgs, res, store := request("c", "a")
	_, err = d.reserve(msgs, now, res, store)
	if !errs.Is(err, errs.DuplicateInProgress) {
		t.Fatalf("held id: %v", err)
	}
	msgs, res, store = request("c")
	if c, err := d.reserve(msgs, now, res, store); err != nil || !store[0] {
		t.Fatalf("an id released by a failed request: %v, store %v", err, store)
	} else {
		c.settle(res, now) // not stored: released
	}

	// "a" landed, "b" did not (its append failed).
	resA[0] = Result{Partition: 2, Offset: 5, stored: true}
	a.settle(resA, now)
	msgs, res, store = request("a", "b")
	b, err := d.reserve(msgs, now, res, store)
	if err != nil {
		t.Fatal(err)
	}
	if store[0] || !res[0].Duplicate || res[0].Partition != 2 || res[0].Offset != 5 {
		t.Fatalf("a landed id: store %v, result %+v", store[0], res[0])
	}
	if !store[1] || b.duplicates() != nil {
		t.Fatalf("a released id: store %v", store[1])
	}

	// Without ids there is no reservation, and settling it does nothing.
	msgs, res, store = request("", "")
	if r, err := d.reserve(msgs, now, res, store); r != nil || err != nil {
		t.Fatalf("no ids: %v, %v", r, err)
	} else {
		r.settle(res, now)
	}
}

package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/spoolmq/spool/internal/seglog"
)

// fakeReplica builds a replica holding ids at offsets 0, 1, 2, … of
// partition 0, one raft entry each, in term 1.
func fakeReplica(node int, ids ...string) *replica {
	r := &replica{node: node}
	for i, id := range ids {
		r.entries = append(r.entries, seglog.Entry{Index: uint64(i + 1), Term: 1, Data: []byte(id)})
		r.records = append(r.records, logRecord{offset: int64(i), id: id, index: uint64(i + 1), term: 1})
	}
	return r
}

// TestLedgerCatches feeds the checker histories with one fault each and
// checks that it counts it, and that a clean history passes.
func TestLedgerCatches(t *testing.T) {
	a, b, c := msgID("P", 0, 0), msgID("P", 0, 1), msgID("P", 0, 2)
	ledgerWith := func(acks map[string]int64) *ledger {
		l := newLedger()
		for i, id := range []string{a, b, c} {
			op := l.send("P", 0, i)
			if off, ok := acks[id]; ok {
				l.sent(op, off, nil)
			} else {
				l.sent(op, 0, errors.New("timed out"))
			}
		}
		return l
	}
	all := map[string]int64{a: 0, b: 1, c: 2}
	cases := []struct {
		name  string
		l     *ledger
		reps  []*replica
		count func(*ledgerReport) int
	}{
		{"clean", ledgerWith(all), []*replica{fakeReplica(1, a, b, c), fakeReplica(2, a, b, c)}, func(r *ledgerReport) int {
			if !r.ok() {
				return 1
			}
			return 0
		}},
		{"lost on one replica", ledgerWith(all), []*replica{fakeReplica(1, a, b, c), fakeReplica(2, a, b)}, func(r *ledgerReport) int { return r.Lost }},
		{"an offset with two messages", ledgerWith(map[string]int64{a: 0}), []*replica{fakeReplica(1, a, b), fakeReplica(2, a, c)}, func(r *ledgerReport) int { return r.Divergent }},
		{"stored twice", ledgerWith(all), []*replica{fakeReplica(1, a, b, b, c)}, func(r *ledgerReport) int { return r.Duplicates }},
		{"out of order", ledgerWith(map[string]int64{a: 0, c: 1}), []*replica{fakeReplica(1, a, c, b)}, func(r *ledgerReport) int { return r.Reordered }},
	}
	for _, tc := range cases {
		r := tc.l.check(map[int32][]*replica{0: tc.reps}, false)
		want := 1
		if tc.name == "clean" {
			want = 0
		}
		if got := tc.count(r); (got > 0) != (want > 0) {
			t.Errorf("%s: counted %d\n%s", tc.name, got, r)
		}
	}

	// Deliveries: one not in the log, one going backwards.
	l := ledgerWith(all)
	l.delivered("C", 1, 0, 0, a)
	l.delivered("C", 1, 0, 1, c)
	l.delivered("C", 1, 0, 0, a)
	r := l.check(map[int32][]*replica{0: {fakeReplica(1, a, b, c)}}, true)
	if r.BadDeliveries != 1 || r.NonMonotonic != 1 || r.Undelivered != 1 {
		t.Errorf("deliveries: %s", r)
	}

	// Committed offsets: a read after a commit of 5 that sees 3 moved
	// backwards, and is not linearizable; the same read concurrent with
	// the commit is both fine.
	for _, overlap := range []bool{false, true} {
		l := newLedger()
		w := l.offsetCall("g", 0, 0, true, 3)
		l.offsetDone(w, 0, nil, false)
		w = l.offsetCall("g", 0, 0, true, 5)
		var rd *offsetOp
		if overlap {
			rd = l.offsetCall("g", 1, 0, false, 0)
		}
		time.Sleep(time.Millisecond)
		l.offsetDone(w, 0, nil, false)
		if !overlap {
			rd = l.offsetCall("g", 1, 0, false, 0)
		}
		l.offsetDone(rd, 3, nil, false)
		r := l.check(nil, false)
		res, desc := l.checkOffsetsLinearizable("selftest")
		if overlap && (r.CommitsBack != 0 || res != porcupine.Ok) {
			t.Errorf("a read concurrent with a commit: %s; %s", r, desc)
		}
		if !overlap && (r.CommitsBack != 1 || res != porcupine.Illegal) {
			t.Errorf("a stale read: %s; %s", r, desc)
		}
	}
}

package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// leasedValues decodes the records of a Lease result that fall in its
// acquired ranges, by offset.
func leasedValues(t *testing.T, l Leased) map[int64]string {
	t.Helper()
	in := func(off int64) bool {
		for _, r := range l.Runs {
			if off >= r.First && off <= r.Last {
				return true
			}
		}
		return false
	}
	out := map[int64]string{}
	prevBase := int64(-1)
	for bt, err := range batch.Batches(l.Batches) {
		if err != nil {
			t.Fatal(err)
		}
		if bt.BaseOffset <= prevBase {
			t.Fatalf("batches out of order or repeated: base %d after %d", bt.BaseOffset, prevBase)
		}
		prevBase = bt.BaseOffset
		for r, err := range bt.Records(1 << 20) {
			if err != nil {
				t.Fatal(err)
			}
			if off := bt.RecordOffset(r); in(off) {
				out[off] = string(r.Value)
			}
		}
	}
	return out
}

func acquiredCount(l Leased) int {
	n := 0
	for _, r := range l.Runs {
		n += int(r.Last - r.First + 1)
	}
	return n
}

func TestEnsureQueueSubscription(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 2})
	e.b.Publish("jobs", msgs("early", 4))
	sub, err := e.b.EnsureQueueSubscription("jobs", "g", catalog.SubConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if sub.AckTimeout != 30*time.Second || sub.MaxDeliveries != 5 || sub.DeadLetterTopic != "dlq.jobs.g" {
		t.Fatalf("defaults %+v", sub)
	}
	if _, err := e.b.EnsureQueueSubscription("jobs", "g", catalog.SubConfig{}); err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	// Created at the earliest offset: messages published before are leased.
	total := 0
	for p := range int32(2) {
		l, err := e.b.Lease("jobs", "g", "m1", p, LeaseOptions{MaxRecords: 100, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		total += l.Leased
	}
	if total != 4 {
		t.Fatalf("leased %d of the 4 earlier messages", total)
	}
	e.b.CreateSubscription("jobs", "stream", catalog.SubConfig{})
	if _, err := e.b.EnsureQueueSubscription("jobs", "stream", catalog.SubConfig{}); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("stream subscription: %v", err)
	}
	if _, err := e.b.EnsureQueueSubscription("nope", "g", catalog.SubConfig{}); !errs.Is(err, errs.TopicNotFound) {
		t.Fatalf("unknown topic: %v", err)
	}
}

func TestLeaseBatchesAndSettle(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	// Three publishes: three stored batches.
	for i := range 3 {
		e.b.Publish("jobs", msgs(fmt.Sprintf("b%d", i), 4))
	}
	a, err := e.b.Lease("jobs", "w", "a", 0, LeaseOptions{MaxRecords: 6, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if a.Leased != 6 || len(a.Runs) != 1 || a.Runs[0] != (LeaseRun{First: 0, Last: 5, Deliveries: 1}) {
		t.Fatalf("first lease %+v", a)
	}
	if a.Lease != 10*time.Second || !a.Deadline.Equal(e.clk.Now().Add(10*time.Second)) {
		t.Fatalf("ack timeout %s deadline %s", a.Lease, a.Deadline)
	}
	got := leasedValues(t, a)
	if len(got) != 6 || got[0] != "b0-0" || got[5] != "b1-1" {
		t.Fatalf("records %v", got)
	}
	// The second member gets the rest; its batches start with the batch
	// that holds offset 6 (shared with a's leases) and nothing is leased
	// twice.
	b, _ := e.b.Lease("jobs", "w", "b", 0, LeaseOptions{MaxRecords: 100, MaxBytes: 1 << 20})
	if b.Leased != 6 || b.Runs[0].First != 6 || b.Runs[0].Last != 11 {
		t.Fatalf("second lease %+v", b)
	}
	if got := leasedValues(t, b); len(got) != 6 || got[6] != "b1-2" || got[11] != "b2-3" {
		t.Fatalf("second records %v", got)
	}
	if none, _ := e.b.Lease("jobs", "w", "c", 0, LeaseOptions{MaxRecords: 100, MaxBytes: 1 << 20}); none.Leased != 0 || len(none.Batches) != 0 {
		t.Fatalf("third member leased %+v", none)
	}

	// a: accept 0–1, release 2, reject 3, renew 4–5; acks of b's offsets
	// and of already finished ones are stale and change nothing.
	stale, err := e.b.SettleLeases("jobs", "w", "a", 0, []LeaseOp{
		{First: 0, Last: 1, Action: LeaseAck},
		{First: 2, Last: 2, Action: LeaseNack, For: -1, Reason: "released"},
		{First: 3, Last: 3, Action: LeaseReject, Reason: "unreadable"},
		{First: 4, Last: 5, Action: LeaseExtend},
		{First: 6, Last: 7, Action: LeaseAck},
	})
	if err != nil || stale != 2 {
		t.Fatalf("ack: stale %d, %v", stale, err)
	}
	if stale, _ := e.b.SettleLeases("jobs", "w", "a", 0, []LeaseOp{{First: 0, Last: 0, Action: LeaseAck}}); stale != 1 {
		t.Fatalf("double ack: stale %d", stale)
	}
	// Released: back after the backoff (1 s, no jitter), delivery count 2.
	if l, _ := e.b.Lease("jobs", "w", "c", 0, LeaseOptions{MaxRecords: 100, MaxBytes: 1 << 20}); l.Leased != 0 {
		t.Fatalf("released message redelivered before its backoff: %+v", l)
	}
	e.advance(time.Second)
	c, _ := e.b.Lease("jobs", "w", "c", 0, LeaseOptions{MaxRecords: 100, MaxBytes: 1 << 20})
	if c.Leased != 1 || c.Runs[0] != (LeaseRun{First: 2, Last: 2, Deliveries: 2}) {
		t.Fatalf("redelivery %+v", c)
	}
	// Rejected: dead-lettered.
	e.b.QueueTick()
	dls, _, err := e.b.ListDeadLetters("jobs", "w", 0, 10)
	if err != nil || len(dls) != 1 || dls[0].OriginOffset != 3 || dls[0].Reason != "rejected" || string(dls[0].Message.Value) != "b0-3" {
		t.Fatalf("dead letters %+v %v", dls, err)
	}
	// Renewed at t+1s for 10 s: b's leases (from t) expire at t+10s, a's
	// renewed ones at t+11s.
	e.advance(9500 * time.Millisecond)
	d, _ := e.b.Lease("jobs", "w", "d", 0, LeaseOptions{MaxRecords: 100, MaxBytes: 1 << 20})
	if d.Leased != 0 {
		t.Fatalf("nothing should have expired yet: %+v", d)
	}
	e.advance(time.Second) // b's expired at t+10s; redelivered after the 1 s backoff
	e.advance(time.Second)
	d, _ = e.b.Lease("jobs", "w", "d", 0, LeaseOptions{MaxRecords: 100, MaxBytes: 1 << 20})
	if d.Leased != 8 || d.Runs[0].First != 4 || d.Runs[0].Deliveries != 2 {
		t.Fatalf("after expiry %+v", d)
	}
	if stale, _ := e.b.SettleLeases("jobs", "w", "b", 0, []LeaseOp{{First: 6, Last: 11, Action: LeaseAck}}); stale != 6 {
		t.Fatalf("acks of expired leases: stale %d", stale)
	}
}

func TestSettleLeasesRefusesMalformed(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	for _, a := range []LeaseOp{
		{First: 5, Last: 4, Action: LeaseAck},
		{First: -1, Last: 4, Action: LeaseAck},
		{First: 0, Last: 0, Action: 9},
		{First: 0, Last: 0},
		{First: 0, Last: 1 << 40, Action: LeaseAck},
	} {
		if _, err := e.b.SettleLeases("jobs", "w", "a", 0, []LeaseOp{a}); !errs.Is(err, errs.InvalidArgument) {
			t.Errorf("%+v: %v", a, err)
		}
	}
	if _, err := e.b.SettleLeases("jobs", "w", "a", 3, nil); !errs.Is(err, errs.TopicNotFound) {
		t.Errorf("bad partition: %v", err)
	}
	if _, err := e.b.Lease("jobs", "w", "", 0, LeaseOptions{MaxRecords: 1, MaxBytes: 1}); !errs.Is(err, errs.InvalidArgument) {
		t.Errorf("empty member: %v", err)
	}
	e.b.CreateSubscription("jobs", "s", catalog.SubConfig{})
	if _, err := e.b.Lease("jobs", "s", "a", 0, LeaseOptions{MaxRecords: 1, MaxBytes: 1}); !errs.Is(err, errs.FailedPrecondition) {
		t.Errorf("stream subscription: %v", err)
	}
}

func TestReleaseLeasesAndChanged(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(func(q *catalog.QueueConfig) { q.MaxInFlight = 3 }))
	e.b.Publish("jobs", msgs("m", 5))
	a, _ := e.b.Lease("jobs", "w", "a", 0, LeaseOptions{MaxRecords: 100, MaxBytes: 1 << 20})
	if a.Leased != 3 {
		t.Fatalf("in-flight limit: leased %d, want 3", a.Leased)
	}
	ch := e.b.LeasesChanged("jobs", "w")
	select {
	case <-ch:
		t.Fatal("changed before anything happened")
	default:
	}
	// An ack frees a slot: waiters wake.
	e.b.SettleLeases("jobs", "w", "a", 0, []LeaseOp{{First: 0, Last: 0, Action: LeaseAck}})
	select {
	case <-ch:
	default:
		t.Fatal("an ack freeing an in-flight slot did not wake waiters")
	}
	ch = e.b.LeasesChanged("jobs", "w")
	if err := e.b.ReleaseLeases("jobs", "w", "a"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("a release did not wake waiters")
	}
	// Released leases come back after the backoff, with their count;
	// meanwhile their slots are free for others.
	b, _ := e.b.Lease("jobs", "w", "b", 0, LeaseOptions{MaxRecords: 100, MaxBytes: 1 << 20})
	if b.Leased != 2 || b.Runs[0] != (LeaseRun{First: 3, Last: 4, Deliveries: 1}) {
		t.Fatalf("after release %+v", b)
	}
	e.advance(time.Second)
	b, _ = e.b.Lease("jobs", "w", "b", 0, LeaseOptions{MaxRecords: 100, MaxBytes: 1 << 20})
	if b.Leased != 1 || b.Runs[0] != (LeaseRun{First: 1, Last: 1, Deliveries: 2}) {
		t.Fatalf("released after the backoff %+v", b)
	}
	// Lease expiry found by the queue loop wakes waiters too.
	ch = e.b.LeasesChanged("jobs", "w")
	e.clk.Advance(11 * time.Second)
	e.b.QueueTick()
	select {
	case <-ch:
	default:
		t.Fatal("lease expiry did not wake waiters")
	}
	if e.b.LeasesChanged("jobs", "nope") != nil || e.b.LeasesChanged("nope", "w") != nil {
		t.Fatal("LeasesChanged of a missing subscription is not nil")
	}
}

// A byte budget stops leasing after the round that reached it.
func TestLeaseByteBudget(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	for i := range 300 {
		e.b.Publish("jobs", msgs(fmt.Sprint(i), 1))
	}
	l, _ := e.b.Lease("jobs", "w", "a", 0, LeaseOptions{MaxRecords: 1000, MaxBytes: 1})
	if l.Leased != leaseRound || acquiredCount(l) != leaseRound {
		t.Fatalf("leased %d with a 1-byte budget, want one round of %d", l.Leased, leaseRound)
	}
	if got := leasedValues(t, l); len(got) != leaseRound {
		t.Fatalf("%d records for %d leases", len(got), leaseRound)
	}
	l, _ = e.b.Lease("jobs", "w", "a", 0, LeaseOptions{MaxRecords: 1000, MaxBytes: 1 << 20})
	if l.Leased != 300-leaseRound {
		t.Fatalf("rest: leased %d", l.Leased)
	}
}

// WholeBatch rounds the record limit up to the end of the last batch
// read; without it the limit holds.
func TestLeaseWholeBatch(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 1})
	e.b.CreateSubscription("jobs", "w", queueCfg(nil))
	for _, prefix := range []string{"a", "b", "c"} {
		if _, err := e.b.Publish("jobs", msgs(prefix, 10)); err != nil { // one batch each
			t.Fatal(err)
		}
	}
	l, err := e.b.Lease("jobs", "w", "m", 0, LeaseOptions{MaxRecords: 3, MaxBytes: 1 << 20, WholeBatch: true})
	if err != nil || l.Leased != 10 || fmt.Sprint(l.Runs) != "[{0 9 1}]" {
		t.Fatalf("whole batches: leased %d %v, %v", l.Leased, l.Runs, err)
	}
	if got := leasedValues(t, l); len(got) != 10 {
		t.Fatalf("%d records", len(got))
	}
	l, _ = e.b.Lease("jobs", "w", "m", 0, LeaseOptions{MaxRecords: 3, MaxBytes: 1 << 20})
	if l.Leased != 3 || fmt.Sprint(l.Runs) != "[{10 12 1}]" {
		t.Fatalf("record limit: leased %d %v", l.Leased, l.Runs)
	}
	// The rest of that batch, rounded again; the next batch is untouched.
	l, _ = e.b.Lease("jobs", "w", "m", 0, LeaseOptions{MaxRecords: 1, MaxBytes: 1 << 20, WholeBatch: true})
	if l.Leased != 7 || fmt.Sprint(l.Runs) != "[{13 19 1}]" {
		t.Fatalf("rest of a batch: leased %d %v", l.Leased, l.Runs)
	}
}

// Cap bounds a call, rounding to whole batches included; the in-flight
// limit holds whatever the cap.
func TestLeaseCap(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 1})
	e.b.CreateSubscription("jobs", "w", queueCfg(func(q *catalog.QueueConfig) { q.MaxInFlight = 600 }))
	if _, err := e.b.Publish("jobs", msgs("m", 1000)); err != nil { // one batch
		t.Fatal(err)
	}
	for i, c := range []struct {
		o    LeaseOptions
		want int
	}{
		{LeaseOptions{MaxRecords: 1000, Cap: 300}, 300},
		{LeaseOptions{MaxRecords: 10, WholeBatch: true, Cap: 250}, 250}, // rounding up to the batch's end, capped
		{LeaseOptions{MaxRecords: 1000}, 50},                            // the rest of the in-flight limit
		{LeaseOptions{MaxRecords: 1000, WholeBatch: true}, 0},
	} {
		c.o.MaxBytes = 8 << 20
		l, err := e.b.Lease("jobs", "w", "m", 0, c.o)
		if err != nil || l.Leased != c.want {
			t.Fatalf("call %d: leased %d, want %d (%v)", i, l.Leased, c.want, err)
		}
	}
}

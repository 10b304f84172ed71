package queue

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustNew(t testing.TB, cfg Config, snap Snapshot) *partition {
	t.Helper()
	p, err := New(cfg, snap, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return p.(*partition)
}

func offsets(from, to int64) []Msg {
	var ms []Msg
	for o := from; o < to; o++ {
		ms = append(ms, Msg{Offset: o, Timestamp: t0.UnixMilli()})
	}
	return ms
}

// Nothing panics on nonsense input, and the state stays consistent.
func TestOddInputs(t *testing.T) {
	p := mustNew(t, Config{Ordering: OrderKey}, Snapshot{})
	now := t0
	p.Offer(now, []Msg{{Offset: -5}, {Offset: 3, HasKey: true}, {Offset: 2}, {Offset: 3}, {Offset: 9, DeliverAt: math.MaxInt64, ExpiresAt: -7}})
	p.Offer(now, []Msg{{Offset: math.MaxInt64}, {Offset: math.MaxInt64 - 1, DeliverAt: -1, ExpiresAt: math.MaxInt64}})
	checkInvariants(t, p)
	if n, cur := p.Want(); cur != math.MaxInt64 || n <= 0 {
		t.Fatalf("Want %d %d", n, cur)
	}
	p.Unpark(now, Parked{Offset: -1})
	p.Unpark(now, Parked{Offset: math.MaxInt64})
	p.Unpark(now, Parked{Offset: 3}) // tracked already: ignored
	p.Unpark(now, Parked{Offset: 4, Due: math.MaxInt64, DeliveryCount: -3})
	ls, _ := p.Poll(now, "m", math.MaxInt)
	if len(ls) != 2 {
		t.Fatalf("leases %+v", ls)
	}
	p.Ack(now, "m", nil)
	p.Ack(now, "", []int64{3})
	p.Nack(now, "m", 3, time.Duration(math.MaxInt64), "")
	p.Nack(now, "m", math.MaxInt64-1, time.Duration(math.MinInt64), "")
	p.Extend(now, "x", 3, time.Hour)
	p.Reject(now, "x", 3, "")
	p.Release(now, "nobody")
	p.Tick(time.Time{})
	p.Tick(time.Unix(0, math.MaxInt64))
	p.Stats(time.Time{})
	checkInvariants(t, p)
	if _, ok := p.NextDeadline(); !ok {
		t.Fatal("no deadline with leases out")
	}
}

// The clock never goes back: an earlier now counts as the latest seen.
func TestEarlierNow(t *testing.T) {
	p := mustNew(t, Config{AckTimeout: 10 * time.Second}, Snapshot{})
	p.Offer(t0.Add(time.Minute), offsets(0, 2))
	ls, _ := p.Poll(t0, "m", 1)
	if want := t0.Add(70 * time.Second).UnixMilli(); ls[0].Deadline != want {
		t.Fatalf("deadline %d, want %d", ls[0].Deadline, want)
	}
	if l, _ := p.Extend(t0, "m", 0, time.Second); l.Deadline != t0.Add(61*time.Second).UnixMilli() {
		t.Fatalf("extended to %d", l.Deadline)
	}
}

// A floor held by one message costs memory for the tracked offsets only.
func TestHeldFloor(t *testing.T) {
	p := mustNew(t, Config{MaxInFlight: 10_000}, Snapshot{})
	now := t0
	p.Offer(now, offsets(0, 1))
	first, _ := p.Poll(now, "slow", 1)
	const n = 200_000
	for o := int64(1); o < n; o += 1000 {
		p.Offer(now, offsets(o, min(o+1000, n)))
		ls, _ := p.Poll(now, "m", 1000)
		acks := make([]int64, len(ls))
		for i, l := range ls {
			acks[i] = l.Offset
		}
		if stale, _ := p.Ack(now, "m", acks); len(stale) > 0 {
			t.Fatalf("stale %v", stale)
		}
		p.Extend(now, "slow", first[0].Offset, 0)
	}
	checkInvariants(t, p)
	if len(p.q) > 2000 {
		t.Fatalf("floor queue holds %d offsets for 1 tracked", len(p.q))
	}
	snap := p.Snapshot()
	if snap.Floor != 0 || fmt.Sprint(snap.Done) != fmt.Sprintf("[[1 %d]]", n) {
		t.Fatalf("snapshot floor %d done %v", snap.Floor, snap.Done)
	}
	p.Ack(now, "slow", []int64{0})
	if st := p.Stats(now); st.Floor != n || st.Done != 0 {
		t.Fatalf("after the last ack: %+v", st)
	}
}

// New accepts untidy snapshots and tidies them.
func TestRestoreNormalizes(t *testing.T) {
	snap := Snapshot{
		Floor: 10,
		Done:  [][2]int64{{30, 35}, {12, 14}, {5, 11}, {20, 20}, {33, 40}, {14, 15}, {50, 40}},
		Counts: map[int64]Count{
			11: {Deliveries: 2, LastError: "x"}, // above the floor: re-offered
			3:  {Deliveries: 1},                 // below: parked and unparked
			31: {Deliveries: 4},                 // inside a done range: same
			12: {Deliveries: 0},                 // nothing to keep
			13: {Deliveries: -2},
		},
	}
	p := mustNew(t, Config{MaxDeliveries: 5}, snap)
	got := p.Snapshot()
	if got.Floor != 11 || fmt.Sprint(got.Done) != "[[12 15] [30 40]]" || len(got.Counts) != 3 {
		t.Fatalf("restored %+v", got)
	}
	p.Offer(t0, offsets(11, 45))
	ls, _ := p.Poll(t0, "m", 100)
	if len(ls) != 1+15+5 || ls[0].Offset != 11 || ls[0].DeliveryCount != 3 {
		t.Fatalf("leases %+v", ls)
	}
	for _, l := range ls {
		if l.Offset >= 12 && l.Offset < 15 || l.Offset >= 30 && l.Offset < 40 {
			t.Fatalf("done offset %d delivered", l.Offset)
		}
	}
}

// A message restored with every delivery used is dead-lettered, not delivered.
func TestRestoredAtMaxDeliveries(t *testing.T) {
	p := mustNew(t, Config{MaxDeliveries: 3}, Snapshot{Counts: map[int64]Count{1: {Deliveries: 3, LastError: "crash"}}})
	p.Offer(t0, offsets(0, 3))
	ls, eff := p.Poll(t0, "m", 10)
	if len(ls) != 2 || ls[0].Offset != 0 || ls[1].Offset != 2 {
		t.Fatalf("leases %+v", ls)
	}
	if len(eff.DeadLetters) != 1 || eff.DeadLetters[0] != (DeadLetter{Offset: 1, Reason: ReasonMaxDeliveries, DeliveryCount: 3, LastError: "crash"}) {
		t.Fatalf("effects %+v", eff)
	}
}

// Restored counts of parked offsets wait a park horizon for their Unpark.
func TestParkedCountsExpire(t *testing.T) {
	snap := Snapshot{Floor: 10, Counts: map[int64]Count{4: {Deliveries: 2}, 5: {Deliveries: 1}}}
	p := mustNew(t, Config{ParkHorizon: time.Minute}, snap)
	p.Unpark(t0, Parked{Offset: 4, DeliveryCount: 1})
	ls, _ := p.Poll(t0, "m", 10)
	if len(ls) != 1 || ls[0].DeliveryCount != 3 {
		t.Fatalf("leases %+v", ls)
	}
	p.Tick(t0.Add(59 * time.Second))
	if c := p.Snapshot().Counts; len(c) != 2 {
		t.Fatalf("counts before the horizon %v", c)
	}
	p.Tick(t0.Add(time.Minute))
	if c := p.Snapshot().Counts; len(c) != 1 || c[4].Deliveries != 3 {
		t.Fatalf("counts after the horizon %v", c)
	}
}

// With key order, a delivered message keeps its key even with a deliver-at
// still ahead (after a restart with a clock behind).
func TestRestoredKeyedDelay(t *testing.T) {
	p := mustNew(t, Config{Ordering: OrderKey}, Snapshot{Counts: map[int64]Count{0: {Deliveries: 1}}})
	p.Offer(t0, []Msg{{Offset: 0, HasKey: true, DeliverAt: t0.Add(time.Hour).UnixMilli()}, {Offset: 1, HasKey: true}})
	if ls, _ := p.Poll(t0, "m", 10); len(ls) != 0 {
		t.Fatalf("leases %+v behind a waiting head", ls)
	}
	checkInvariants(t, p)
	if st := p.Stats(t0); st.Waiting != 1 || st.Blocked != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// LeaseCounts counts live and not-yet-expired leases per member, and
// nothing else.
func TestLeaseCounts(t *testing.T) {
	p := mustNew(t, Config{AckTimeout: time.Second}, Snapshot{})
	now := t0
	p.Offer(now, offsets(0, 10))
	p.Poll(now, "a", 3)
	p.Poll(now, "b", 2)
	if got := p.LeaseCounts(); got["a"] != 3 || got["b"] != 2 || len(got) != 2 {
		t.Fatalf("counts %v", got)
	}
	p.Ack(now, "a", []int64{0})
	p.Nack(now, "b", 3, 0, "x")
	if got := p.LeaseCounts(); got["a"] != 2 || got["b"] != 1 {
		t.Fatalf("counts after ack and nack %v", got)
	}
	// Past the deadline but not ticked: still counted (the broker holds
	// the slot until the expiry is reported).
	if got := p.LeaseCounts(); got["a"] != 2 {
		t.Fatalf("counts past the deadline %v", got)
	}
	p.Tick(now.Add(2 * time.Second))
	if got := p.LeaseCounts(); len(got) != 0 {
		t.Fatalf("counts after expiry %v", got)
	}
}

type recordingObserver struct {
	leased [][3]int64 // available ms, delivery, now ns
	acked  [][3]int64 // available ms, leased ns, now ns
}

func (o *recordingObserver) Leased(avail int64, delivery int, nowNs int64) {
	o.leased = append(o.leased, [3]int64{avail, int64(delivery), nowNs})
}

func (o *recordingObserver) Acked(avail, leasedNs, nowNs int64) {
	o.acked = append(o.acked, [3]int64{avail, leasedNs, nowNs})
}

// The observer hears every lease with its delivery count and every ack
// with the lease's start; a delayed message's latency counts from its
// deliver-at; stale acks are not heard.
func TestObserver(t *testing.T) {
	p := mustNew(t, Config{MaxDeliveries: 5, AckTimeout: time.Minute}, Snapshot{})
	o := &recordingObserver{}
	p.Observe(o)
	start := time.UnixMilli(1_000_000)
	p.Offer(start, []Msg{{Offset: 0, Timestamp: 999_000}, {Offset: 1, Timestamp: 999_500, DeliverAt: 1_000_200}})
	if ls, _ := p.Poll(start, "m", 10); len(ls) != 1 {
		t.Fatalf("leased %v", ls)
	}
	p.Nack(start.Add(time.Millisecond), "m", 0, 0, "again")
	t1 := start.Add(300 * time.Millisecond)
	if ls, _ := p.Poll(t1, "m", 10); len(ls) != 2 {
		t.Fatalf("leased %v", ls)
	}
	t2 := t1.Add(5 * time.Millisecond)
	if stale, _ := p.Ack(t2, "m", []int64{0, 1, 7}); len(stale) != 1 {
		t.Fatalf("stale %v", stale)
	}
	wantLeased := [][3]int64{{999_000, 1, start.UnixNano()}, {999_000, 2, t1.UnixNano()}, {1_000_200, 1, t1.UnixNano()}}
	if !slices.Equal(o.leased, wantLeased) {
		t.Fatalf("leased %v, want %v", o.leased, wantLeased)
	}
	wantAcked := [][3]int64{{999_000, t1.UnixNano(), t2.UnixNano()}, {1_000_200, t1.UnixNano(), t2.UnixNano()}}
	if !slices.Equal(o.acked, wantAcked) {
		t.Fatalf("acked %v, want %v", o.acked, wantAcked)
	}
}

// Missing finishes only a live lease of the member, and moves the floor as
// an ack does, without telling the observer.
func TestMissing(t *testing.T) {
	p := mustNew(t, Config{AckTimeout: time.Second}, Snapshot{Floor: 10})
	obs := &countObserver{}
	p.Observe(obs)
	now := t0
	p.Offer(now, offsets(10, 13))
	if p.Missing(now, "m", 10) {
		t.Fatal("Missing of a ready message")
	}
	ls, _ := p.Poll(now, "m", 2)
	if len(ls) != 2 {
		t.Fatalf("leases %+v", ls)
	}
	if p.Missing(now, "other", 10) {
		t.Fatal("Missing of another member's lease")
	}
	if !p.Missing(now, "m", 10) || p.Missing(now, "m", 10) {
		t.Fatal("Missing of a live lease: want true once")
	}
	if p.Missing(now.Add(time.Second), "m", 11) {
		t.Fatal("Missing of a lease past its deadline")
	}
	checkInvariants(t, p)
	if st := p.Stats(now); st.Floor != 11 || st.Leased != 1 || st.Ready != 1 {
		t.Fatalf("stats %+v", st)
	}
	if obs.acked != 0 {
		t.Fatalf("observer heard %d acks", obs.acked)
	}
	if snap := p.Snapshot(); snap.Floor != 11 {
		t.Fatalf("snapshot %+v", snap)
	}
}

type countObserver struct{ leased, acked int }

func (o *countObserver) Leased(int64, int, int64)  { o.leased++ }
func (o *countObserver) Acked(int64, int64, int64) { o.acked++ }

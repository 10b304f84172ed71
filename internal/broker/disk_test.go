package broker

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/recordbatch"
)

const mib = 1 << 20

// fakeDisk is a file system whose free space the test sets.
type fakeDisk struct{ free atomic.Int64 }

func (d *fakeDisk) measure() (uint64, bool) { return uint64(d.free.Load()), true }

func wantDiskFull(t *testing.T, what string, err error) {
	t.Helper()
	var ee *errs.Error
	if !errs.Is(err, errs.DiskFull) || !asErr(err, &ee) || !ee.Retriable() || ee.RetryAfter != DiskFullRetryAfter {
		t.Fatalf("%s: want a retriable disk_full with retry-after %v, got %v", what, DiskFullRetryAfter, err)
	}
}

// The gate's arithmetic: the budget between samples, the watermark and
// the resume threshold (hysteresis).
func TestDiskGateBudgetAndHysteresis(t *testing.T) {
	var d fakeDisk
	g := newDiskGate(10*mib, d.measure)
	if g.resume != 10*mib+10*mib/4 || ResumeFreeBytes(1) != 1+mib {
		t.Fatalf("resume threshold %d (and %d for a 1-byte watermark)", g.resume, ResumeFreeBytes(1))
	}
	if err := g.admit(); err != nil {
		t.Fatalf("before the first sample: %v", err)
	}
	d.free.Store(12 * mib)
	if _, full, changed := g.sample(); full || changed {
		t.Fatalf("12 MiB free of a 10 MiB watermark: full %v changed %v", full, changed)
	}
	if g.budget.Load() != 2*mib {
		t.Fatalf("budget %d, want free − watermark = 2 MiB", g.budget.Load())
	}
	g.charge(mib)
	if err := g.admit(); err != nil {
		t.Fatalf("1 MiB of budget left: %v", err)
	}
	if len(g.kick) != 0 {
		t.Fatal("asked for a sample while budget is left")
	}
	g.charge(mib) // spends it: refused until the next sample, which is asked for at once
	wantDiskFull(t, "budget spent", g.admit())
	if len(g.kick) != 1 {
		t.Fatal("the append spending the budget did not ask for a sample")
	}
	g.charge(mib) // the broker's own writes are charged, never refused
	<-g.kick
	if len(g.kick) != 0 {
		t.Fatal("asked for a sample again below zero")
	}

	// The sample finds the space the appends used: still above the
	// watermark, a new budget.
	d.free.Store(11 * mib)
	if _, full, changed := g.sample(); full || changed || g.admit() != nil || g.budget.Load() != mib {
		t.Fatalf("11 MiB free: full %v changed %v budget %d", full, changed, g.budget.Load())
	}
	// Below the watermark: closed.
	d.free.Store(9 * mib)
	if free, full, changed := g.sample(); !full || !changed || free != 9*mib {
		t.Fatalf("9 MiB free: full %v changed %v free %d", full, changed, free)
	}
	wantDiskFull(t, "below the watermark", g.admit())
	// Above the watermark but below the resume threshold: still closed.
	d.free.Store(12 * mib)
	if _, full, changed := g.sample(); !full || changed {
		t.Fatalf("12 MiB free (resume at 12.5 MiB): full %v changed %v", full, changed)
	}
	wantDiskFull(t, "between the watermark and the resume threshold", g.admit())
	// At the resume threshold: open, with the space above the watermark
	// as its budget.
	d.free.Store(g.resume)
	if _, full, changed := g.sample(); full || !changed || g.admit() != nil || g.budget.Load() != g.resume-g.min {
		t.Fatalf("at the resume threshold: full %v changed %v budget %d", full, changed, g.budget.Load())
	}
	// A file system that cannot be measured for a moment changes nothing.
	g.measure = func() (uint64, bool) { return 0, false }
	if _, full, changed := g.sample(); full || changed || g.admit() != nil {
		t.Fatalf("unmeasurable: full %v changed %v", full, changed)
	}
	var nilGate *diskGate
	nilGate.charge(1)
	nilGate.wake()
	if nilGate.admit() != nil {
		t.Fatal("no gate refuses")
	}
}

func newDiskEnv(t *testing.T, free int64, interval time.Duration) (*env, *fakeDisk) {
	d := &fakeDisk{}
	d.free.Store(free)
	e := &env{t: t, dir: t.TempDir(), clk: clock.NewFake(time.Unix(1_700_000_000, 0))}
	e.opts = func(c *Config) {
		c.MinFreeBytes, c.DiskFree, c.DiskCheckInterval = 10*mib, d.measure, interval
	}
	e.open()
	t.Cleanup(e.close)
	return e, d
}

// Below the watermark every user's write is refused — the message form,
// Kafka's raw batches, the batch form, a redrive — and counted; the
// broker's own writes (system events, dead-letter copies) and offset
// commits go on; a disk.full event and a disk.ok event mark the
// transitions; writing resumes once the space is back.
func TestDiskFullRefusesPublishes(t *testing.T) {
	e, d := newDiskEnv(t, 100*mib, time.Hour)
	b := e.b
	if _, err := b.CreateTopic("t", catalog.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription("t", "s", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	before := b.Disk().BudgetLeft
	if _, err := b.Publish("t", msgs("a", 3)); err != nil {
		t.Fatal(err)
	}
	if dk := b.Disk(); !dk.Enabled || dk.Full || dk.MinFree != 10*mib || dk.Free != 100*mib || before-dk.BudgetLeft < 3*5 {
		t.Fatalf("after a publish: %+v (budget before %d)", dk, before)
	}

	d.free.Store(5 * mib)
	b.sampleDisk()
	if dk := b.Disk(); !dk.Full || dk.Free != 5*mib {
		t.Fatalf("below the watermark: %+v", dk)
	}
	_, err := b.Publish("t", msgs("b", 2))
	wantDiskFull(t, "Publish", err)
	_, err = b.PublishAsync("t", msgs("b", 1))
	wantDiskFull(t, "PublishAsync", err)
	var bld recordbatch.Builder
	bld.Reset(0)
	bld.Add(0, nil, []byte("k"), nil)
	raw := bld.Finish(-1, -1, -1)
	_, err = b.AppendRaw("t", 0, append([]byte(nil), raw...))
	wantDiskFull(t, "AppendRaw", err)
	_, err = b.AppendBatch("t", 0, append([]byte(nil), raw...), false, false)
	wantDiskFull(t, "AppendBatch", err)
	info, err := b.DescribeTopic("t")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Stats.Rejected[RejectDiskFull]; got != 2+1+1+1 {
		t.Fatalf("disk_full refusals counted %d, want 5 messages", got)
	}
	if RejectDiskFull.String() != "disk_full" {
		t.Fatalf("reason name %q", RejectDiskFull)
	}
	// The broker's own writes are not refused: dead-letter copies (here
	// as publishOwn writes them) and system events.
	if _, err := b.publishOwn("t", []Message{{ID: "dlq:x", Value: []byte("copy"), Partition: -1}}); err != nil {
		t.Fatalf("the broker's own write: %v", err)
	}
	evs := systemEvents(t, e)
	if k := kinds(evs); k[EventDiskFull] != 1 || k[EventDiskOK] != 0 {
		t.Fatalf("events %v", k)
	}
	// Offset commits are state-store writes: consumers keep draining.
	sess, err := b.Join(JoinRequest{Topic: "t", Subscription: "s", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	gen := next(t, sess).Assignment.Generation
	if ev := next(t, sess); len(ev.Deliveries) != 4 {
		t.Fatalf("deliveries %+v", ev)
	}
	if err := sess.Commit(1, gen, map[int32]int64{0: 4}); err != nil {
		t.Fatalf("commit while the disk is full: %v", err)
	}
	sess.Leave()

	// Space returns, but not up to the resume threshold: still refused.
	d.free.Store(11 * mib)
	b.sampleDisk()
	_, err = b.Publish("t", msgs("c", 1))
	wantDiskFull(t, "between the watermark and the resume threshold", err)
	d.free.Store(50 * mib)
	b.sampleDisk()
	res, err := b.Publish("t", msgs("d", 1))
	if err != nil || res[0].Offset != 4 {
		t.Fatalf("after space returned: %v %v (want offset 4: 3 published, 1 own copy)", res, err)
	}
	if k := kinds(systemEvents(t, e)); k[EventDiskFull] != 1 || k[EventDiskOK] != 1 {
		t.Fatalf("events %v", k)
	}
}

// The watcher samples by itself: writing stops and resumes without a
// call from outside, and a broker opened on a full disk refuses at once.
func TestDiskWatcherSamples(t *testing.T) {
	e, d := newDiskEnv(t, 5*mib, 5*time.Millisecond)
	if _, err := e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := e.b.Publish("t", msgs("a", 1))
	wantDiskFull(t, "opened on a full disk", err)
	d.free.Store(100 * mib)
	waitFor(t, "publishes accepted again", func() bool { _, err := e.b.Publish("t", msgs("b", 1)); return err == nil })
	d.free.Store(mib)
	waitFor(t, "publishes refused", func() bool { _, err := e.b.Publish("t", msgs("c", 1)); return errs.Is(err, errs.DiskFull) })
}

// Without a way to measure the disk (another file system, no DiskFree)
// or with a negative watermark there is no gate, and no goroutine.
func TestNoDiskGate(t *testing.T) {
	e := newEnv(t)
	if e.b.Disk().Enabled != (e.b.cfg.DiskFree != nil) {
		t.Fatalf("gate %+v with DiskFree %v", e.b.Disk(), e.b.cfg.DiskFree != nil)
	}
	e2 := &env{t: t, dir: t.TempDir(), clk: e.clk, opts: func(c *Config) {
		c.MinFreeBytes, c.DiskFree = -1, func() (uint64, bool) { return 0, true }
	}}
	e2.open()
	defer e2.close()
	if e2.b.Disk().Enabled || e2.b.disk != nil {
		t.Fatal("a negative watermark made a gate")
	}
	if _, err := e2.b.CreateTopic("t", catalog.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.b.Publish("t", msgs("a", 1)); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

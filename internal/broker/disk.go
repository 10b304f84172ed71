package broker

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spoolmq/spool/bytesize"
	"github.com/spoolmq/spool/internal/errs"
)

// The free-space gate (DESIGN.md, "The free-space gate"): publishes are
// refused with the retriable disk_full before the data directory's file
// system runs out, so that a full disk never reaches a partition log as a
// failed write (which is fail-stop: the log refuses writes until a
// restart). A watcher samples the free space every DiskCheckInterval; the
// publish path reads one flag and one counter.

// DefaultMinFreeBytes is the default of Config.MinFreeBytes
// (storage.min-free-bytes).
const DefaultMinFreeBytes = 128 << 20

// DiskFullRetryAfter is the retry-after hint of disk_full errors.
const DiskFullRetryAfter = time.Second

// ResumeFreeBytes is the free space at which a gate closed at the
// watermark min opens again: 1.25 × min (at least min + 1 MiB), so that a
// disk hovering around the watermark does not flap between refusing and
// accepting.
func ResumeFreeBytes(min int64) int64 { return min + max(min/4, 1<<20) }

// diskGate refuses publishes below the watermark. Between two samples it
// keeps a budget: the free space above the watermark at the last sample
// minus the bytes appended since (every append is charged, the broker's
// own included), so a burst cannot use the space between two samples;
// an exhausted budget refuses and asks for a sample at once.
type diskGate struct {
	min, resume int64
	measure     func() (uint64, bool)
	full        atomic.Bool  // below the watermark at the last sample (until above resume)
	budget      atomic.Int64 // bytes that may still be appended before the next sample
	free        atomic.Int64 // at the last sample; -1: not measured
	kick        chan struct{}
	sampleMu    sync.Mutex // one sample at a time
}

func newDiskGate(min int64, measure func() (uint64, bool)) *diskGate {
	g := &diskGate{min: min, resume: ResumeFreeBytes(min), measure: measure, kick: make(chan struct{}, 1)}
	g.free.Store(-1)
	g.budget.Store(1 << 62)
	return g
}

// admit refuses a user's write while the gate is closed or its budget is
// spent: one or two atomic loads. A nil gate (no watermark, or free space
// not measurable) admits everything.
func (g *diskGate) admit() error {
	if g == nil {
		return nil
	}
	if g.full.Load() || g.budget.Load() <= 0 {
		return g.refusal()
	}
	return nil
}

func (g *diskGate) refusal() error {
	free := g.free.Load()
	e := errs.New(errs.DiskFull, "the data directory's file system is nearly full (%s free at the last check; writes are refused below storage.min-free-bytes %s and resume above %s)",
		bytesize.Size(max(free, 0)), bytesize.Size(g.min), bytesize.Size(g.resume))
	e.RetryAfter = DiskFullRetryAfter
	return e
}

// charge counts n bytes queued for a partition log against the budget;
// the append that spends it asks the watcher for a sample now.
func (g *diskGate) charge(n int) {
	if g == nil {
		return
	}
	if left := g.budget.Add(-int64(n)); left <= 0 && left+int64(n) > 0 {
		g.wake()
	}
}

// wake asks the watcher to sample now (after the budget ran out, or a
// write failed with ENOSPC).
func (g *diskGate) wake() {
	if g == nil {
		return
	}
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// sample measures the free space and updates the gate; it reports a
// change of state (changed) and the state now (full).
func (g *diskGate) sample() (free int64, full, changed bool) {
	g.sampleMu.Lock()
	defer g.sampleMu.Unlock()
	f, ok := g.measure()
	if !ok {
		// Unmeasurable now (a transient statfs failure): keep the state,
		// and do not stop writes on it.
		return g.free.Load(), g.full.Load(), false
	}
	free = int64(min(f, 1<<62))
	was := g.full.Load()
	full = was
	switch {
	case was && free >= g.resume:
		full = false
	case !was && free < g.min:
		full = true
	}
	g.free.Store(free)
	g.budget.Store(free - g.min)
	g.full.Store(full)
	return free, full, full != was
}

// Disk is the free-space gate's state: whether it is on (a watermark and
// a measurable file system), the free space at its last sample, and
// whether it refuses publishes.
type Disk struct {
	Enabled    bool
	Free       int64 // bytes, at the last sample
	MinFree    int64 // the watermark: below it publishes are refused
	ResumeFree int64 // a refusing gate accepts again at or above this
	Full       bool  // below the watermark (not yet back above ResumeFree)
	BudgetLeft int64 // bytes that may still be appended before the next sample; ≤ 0 refuses too
}

// Disk returns the free-space gate's state.
func (b *Broker) Disk() Disk {
	g := b.disk
	if g == nil {
		return Disk{}
	}
	return Disk{Enabled: true, Free: g.free.Load(), MinFree: g.min, ResumeFree: g.resume, Full: g.full.Load(),
		BudgetLeft: g.budget.Load()}
}

// watchDisk samples the free space every DiskCheckInterval and when the
// publish path asks, and reports the gate's transitions (disk.full,
// disk.ok).
func (b *Broker) watchDisk() {
	defer close(b.diskDone)
	t := time.NewTicker(b.cfg.DiskCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		case <-b.disk.kick:
		}
		b.sampleDisk()
	}
}

// sampleDisk takes one sample and reports a transition.
func (b *Broker) sampleDisk() {
	g := b.disk
	free, full, changed := g.sample()
	if !changed {
		return
	}
	if full {
		b.emit(SystemEvent{Kind: EventDiskFull, Count: free,
			Detail: "publishes are refused with disk_full until free space is back above " + bytesize.Size(g.resume).String()},
			"", slog.LevelError, "data directory nearly full: publishes refused", "free", bytesize.Size(free),
			"min_free", bytesize.Size(g.min), "resume_at", bytesize.Size(g.resume))
		return
	}
	b.emit(SystemEvent{Kind: EventDiskOK, Count: free, Detail: "publishes are accepted again"},
		"", slog.LevelInfo, "data directory has free space again: publishes accepted", "free", bytesize.Size(free),
		"min_free", bytesize.Size(g.min))
}

// noteWriteError asks for a sample at once when a log write failed for
// lack of space (the log itself is then fail-stop: seglog's sticky error).
func (b *Broker) noteWriteError(err error) {
	if err != nil && errors.Is(err, syscall.ENOSPC) {
		b.disk.wake()
	}
}

package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/spoolmq/spool/internal/vfs"
)

// Quantiles summarises one latency histogram.
type Quantiles struct {
	Count int64         `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

func (q Quantiles) String() string {
	return fmt.Sprintf("p50 %s p99 %s p999 %s max %s", us(q.P50), us(q.P99), us(q.P999), us(q.Max))
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/1e3) }

// histMax is the largest value a latency histogram resolves; larger values
// are counted at it (and still set Max).
const histMax = int64(time.Minute)

// latHist is an HDR histogram of nanoseconds (3 significant digits) that
// never drops a value. Not safe for concurrent use.
type latHist struct {
	h   *hdrhistogram.Histogram
	max int64
}

func newLatHist() *latHist { return &latHist{h: hdrhistogram.New(1, histMax, 3)} }

func (h *latHist) record(ns int64) {
	ns = max(ns, 1)
	h.max = max(h.max, ns)
	h.h.RecordValue(min(ns, histMax))
}

func (h *latHist) quantiles() Quantiles {
	if h.h.TotalCount() == 0 {
		return Quantiles{}
	}
	// A quantile is the top of its bucket, which can exceed the largest
	// value recorded.
	q := func(p float64) time.Duration { return time.Duration(min(h.h.ValueAtQuantile(p), h.max)) }
	return Quantiles{Count: h.h.TotalCount(), P50: q(50), P99: q(99), P999: q(99.9), Max: time.Duration(h.max)}
}

// clockBase is the origin of mono: records carry monotonic nanoseconds
// since it, comparable only inside this process (producer and consumer
// both run here).
var clockBase = time.Now()

func mono() int64 { return int64(time.Since(clockBase)) }

// Layout of the first bytes of every value the latency benchmark sends:
// the send time (big-endian nanoseconds of mono), the scheduled send time,
// and the sequence number (warmSeq for warm-up records).
const (
	offSent   = 0
	offDue    = 8
	offSeq    = 16
	headerLen = 24
	warmSeq   = ^uint64(0)
)

// e2eRecorder records, at the consumer, the latency of each record from
// its send time and from its scheduled time, and which sequence numbers
// arrived.
type e2eRecorder struct {
	n    uint64
	got  atomic.Int64 // distinct timed records received
	warm atomic.Int64 // warm-up records received

	mu        sync.Mutex
	lat, corr *latHist
	seen      []uint64 // bit per sequence number
	dup, bad  int64
}

func newRecorder(n int) *e2eRecorder {
	return &e2eRecorder{n: uint64(n), lat: newLatHist(), corr: newLatHist(), seen: make([]uint64, n/64+1)}
}

// record notes value v received at now (mono).
func (r *e2eRecorder) record(v []byte, now int64) {
	if len(v) < headerLen {
		r.mu.Lock()
		r.bad++
		r.mu.Unlock()
		return
	}
	seq := binary.BigEndian.Uint64(v[offSeq:])
	if seq == warmSeq {
		r.warm.Add(1)
		return
	}
	sent, due := int64(binary.BigEndian.Uint64(v[offSent:])), int64(binary.BigEndian.Uint64(v[offDue:]))
	r.mu.Lock()
	switch {
	case seq >= r.n:
		r.bad++
	case r.seen[seq/64]&(1<<(seq%64)) != 0:
		r.dup++
	default:
		r.seen[seq/64] |= 1 << (seq % 64)
		r.lat.record(now - sent)
		r.corr.record(now - due)
		r.got.Add(1)
	}
	r.mu.Unlock()
}

// valueSource hands out size-byte values carved from 1,024-value slabs
// filled from a random pool (so a compressing client finds nothing to
// squeeze): one allocation per 1,024 records. A value is never reused, as
// clients may hold it until it is acknowledged.
type valueSource struct {
	pool []byte
	off  int
	size int
	slab []byte
}

func newValueSource(pool []byte, size int) *valueSource { return &valueSource{pool: pool, size: size} }

func (s *valueSource) next() []byte {
	if len(s.slab) < s.size {
		s.slab = make([]byte, 1024*s.size)
		for n := 0; n < len(s.slab); {
			if s.off >= len(s.pool) {
				s.off = 0
			}
			k := copy(s.slab[n:], s.pool[s.off:])
			n += k
			s.off += k + 7
		}
	}
	v := s.slab[:s.size:s.size]
	s.slab = s.slab[s.size:]
	return v
}

// stamp writes the header of a timed record.
func stamp(v []byte, sent, due int64, seq uint64) {
	binary.BigEndian.PutUint64(v[offSent:], uint64(sent))
	binary.BigEndian.PutUint64(v[offDue:], uint64(due))
	binary.BigEndian.PutUint64(v[offSeq:], seq)
}

// openLoop sends n records at rate, record i being due at start + i/rate
// whatever happened to earlier ones (an open-loop schedule: a slow client
// or broker does not slow the offered load down). It returns how late each
// send was against its schedule and how many were sent (fewer only if ctx
// ended).
func openLoop(ctx context.Context, rate, n int, values *valueSource, send func([]byte)) (*latHist, int64) {
	lag := newLatHist()
	interval := float64(time.Second) / float64(rate)
	start := mono()
	for i := range n {
		due := start + int64(float64(i)*interval)
		if w := due - mono(); w > 0 {
			if ctx.Err() != nil {
				return lag, int64(i)
			}
			time.Sleep(time.Duration(w))
		} else if i%256 == 0 && ctx.Err() != nil {
			return lag, int64(i)
		}
		v := values.next()
		now := mono()
		lag.record(now - due)
		stamp(v, now, due, uint64(i))
		send(v)
	}
	return lag, int64(n)
}

// warmUp sends warm-up records every 10 ms until the consumer has received
// one (connections made, metadata loaded, the consumer attached), then
// lets things settle for 100 ms.
func warmUp(ctx context.Context, size int, rec *e2eRecorder, send func([]byte)) error {
	deadline := time.Now().Add(30 * time.Second)
	for rec.warm.Load() == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("no warm-up record arrived within 30s")
		}
		v := make([]byte, size)
		stamp(v, mono(), mono(), warmSeq)
		send(v)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(100 * time.Millisecond):
	}
	return nil
}

// syncProbe writes 4 KiB and fdatasyncs it every interval in the
// background, recording each write+fdatasync's latency: the disk's state
// while something else runs.
type syncProbe struct {
	stop chan struct{}
	done chan struct{}
	h    *latHist
	err  error
}

func startSyncProbe(dir string, interval time.Duration) (*syncProbe, error) {
	path := filepath.Join(dir, "probe.dat")
	f, err := vfs.Default.Create(path)
	if err != nil {
		return nil, err
	}
	p := &syncProbe{stop: make(chan struct{}), done: make(chan struct{}), h: newLatHist()}
	go func() {
		defer close(p.done)
		defer os.Remove(path)
		defer f.Close()
		buf := bytes.Repeat([]byte{0x5A}, 4096)
		t := time.NewTicker(interval)
		defer t.Stop()
		var pos int64
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			t0 := mono()
			if _, err := f.WriteAt(buf, pos); err != nil {
				p.err = err
				return
			}
			if err := f.Sync(); err != nil {
				p.err = err
				return
			}
			p.h.record(mono() - t0)
			if pos += int64(len(buf)); pos >= 64<<20 {
				pos = 0
			}
		}
	}()
	return p, nil
}

// finish stops the probe and returns what it measured.
func (p *syncProbe) finish() (Quantiles, error) {
	close(p.stop)
	<-p.done
	return p.h.quantiles(), p.err
}

package handle_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/handle"
)

var quiet = slog.New(slog.DiscardHandler)

func TestChainOrder(t *testing.T) {
	var got []string
	mw := func(name string) handle.Middleware {
		return func(next client.Handler) client.Handler {
			return func(ctx context.Context, m *client.Message) error {
				got = append(got, name)
				return next(ctx, m)
			}
		}
	}
	h := handle.Chain(func(context.Context, *client.Message) error { got = append(got, "h"); return nil }, mw("a"), nil, mw("b"))
	if err := h(context.Background(), &client.Message{}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a,b,h" {
		t.Fatalf("order %v", got)
	}
}

func TestDefaultClassifier(t *testing.T) {
	base := errors.New("boom")
	for _, tc := range []struct {
		err   error
		class handle.Class
		after time.Duration
	}{
		{base, handle.Retry, 0},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), handle.Retry, 0},
		{handle.Permanent(base), handle.Reject, 0},
		{fmt.Errorf("wrapped: %w", handle.Permanent(base)), handle.Reject, 0},
		{client.Reject(base), handle.Reject, 0},
		{handle.DropMessage(base), handle.Drop, 0},
		{client.RetryAfter(base, time.Second), handle.Retry, time.Second},
		{&handle.PanicError{Value: "x"}, handle.Retry, 0},
	} {
		d := handle.DefaultClassifier(tc.err)
		if d.Class != tc.class || d.After != tc.after {
			t.Errorf("%v: got %v %v, want %v %v", tc.err, d.Class, d.After, tc.class, tc.after)
		}
	}
	if !handle.IsTransient(fmt.Errorf("x: %w", context.DeadlineExceeded)) || !handle.IsTransient(syscall.ECONNRESET) ||
		!handle.IsTransient(handle.ErrTimeout) || handle.IsTransient(errors.New("bad input")) {
		t.Error("IsTransient")
	}
}

type recMetrics struct {
	mu       sync.Mutex
	outcomes []string
	states   []string
	waits    int
}

func (r *recMetrics) Outcome(_, outcome string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes = append(r.outcomes, outcome)
}

func (r *recMetrics) BreakerState(_, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, state)
}

func (r *recMetrics) Waited(string, string, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits++
}

func TestClassify(t *testing.T) {
	met := &recMetrics{}
	ret := func(err error) client.Handler {
		return func(context.Context, *client.Message) error { return err }
	}
	mw := handle.Classify(handle.WithLogger(quiet), handle.WithMetrics(met))
	ctx, m := context.Background(), &client.Message{Topic: "t"}
	if err := mw(ret(nil))(ctx, m); err != nil {
		t.Errorf("nil: %v", err)
	}
	var rej *client.RejectError
	if err := mw(ret(handle.Permanent(errors.New("bad"))))(ctx, m); !errors.As(err, &rej) || err.Error() != "bad" {
		t.Errorf("permanent: %v", err)
	}
	if err := mw(ret(handle.DropMessage(errors.New("dup"))))(ctx, m); err != nil {
		t.Errorf("drop: %v", err)
	}
	plain := errors.New("down")
	if err := mw(ret(plain))(ctx, m); err != plain {
		t.Errorf("retry: %v", err)
	}
	delayed := handle.Classify(handle.WithClassifier(func(error) handle.Decision {
		return handle.Decision{Class: handle.Retry, After: 3 * time.Second}
	}))
	var re *client.RetryError
	if err := delayed(ret(plain))(ctx, m); !errors.As(err, &re) || re.After != 3*time.Second {
		t.Errorf("retry after: %v", err)
	}
	if got := strings.Join(met.outcomes, ","); got != "ack,reject,drop,retry" {
		t.Errorf("outcomes %s", got)
	}
}

func TestRecover(t *testing.T) {
	boom := func(context.Context, *client.Message) error { panic("boom") }
	err := handle.Recover(false)(boom)(context.Background(), &client.Message{})
	var pe *handle.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 || handle.DefaultClassifier(err).Class != handle.Retry {
		t.Errorf("Recover(false): %v", err)
	}
	err = handle.Recover(true)(boom)(context.Background(), &client.Message{})
	if !errors.As(err, &pe) || handle.DefaultClassifier(err).Class != handle.Reject {
		t.Errorf("Recover(true): %v", err)
	}
}

func TestTimeout(t *testing.T) {
	exited := make(chan struct{})
	slow := func(ctx context.Context, _ *client.Message) error {
		defer close(exited)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // returns late: abandoned
		return nil
	}
	err := handle.Timeout(30*time.Millisecond)(slow)(context.Background(), &client.Message{})
	if !errors.Is(err, handle.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow: %v", err)
	}
	<-exited
	fast := func(context.Context, *client.Message) error { return errors.New("mine") }
	if err := handle.Timeout(time.Second)(fast)(context.Background(), &client.Message{}); err == nil || err.Error() != "mine" {
		t.Errorf("fast: %v", err)
	}
	panics := func(context.Context, *client.Message) error { panic("in goroutine") }
	var pe *handle.PanicError
	if err := handle.Timeout(time.Second)(panics)(context.Background(), &client.Message{}); !errors.As(err, &pe) {
		t.Errorf("panic: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	blocked := make(chan struct{})
	wait := func(ctx context.Context, _ *client.Message) error { <-ctx.Done(); close(blocked); return nil }
	if err := handle.Timeout(time.Second)(wait)(ctx, &client.Message{}); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	<-blocked
}

func TestLimiter(t *testing.T) {
	met := &recMetrics{}
	l := handle.NewLimiter("db", 2, met)
	var in, peak atomic.Int32
	release := make(chan struct{})
	h := l.Middleware()(func(context.Context, *client.Message) error {
		n := in.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		in.Add(-1)
		return nil
	})
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() { _ = h(context.Background(), &client.Message{}) })
	}
	for l.InUse() < 2 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := h(ctx, &client.Message{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call over the limit whose context ended: %v", err)
	}
	close(release)
	wg.Wait()
	if peak.Load() != 2 {
		t.Errorf("peak %d calls at once, limit 2", peak.Load())
	}
	if met.waits == 0 {
		t.Error("no wait reported")
	}
}

// TestBreakerHolds runs a breaker without a server: once it opens, calls
// wait instead of failing, a failed trial is held and run again, and every
// call succeeds once the dependency is back.
func TestBreakerHolds(t *testing.T) {
	met := &recMetrics{}
	b := handle.NewBreaker(handle.BreakerConfig{Name: "dep", Failures: 2, OpenFor: 20 * time.Millisecond, Logger: quiet, Metrics: met})
	var down atomic.Bool
	down.Store(true)
	var calls atomic.Int32
	h := b.Middleware()(func(context.Context, *client.Message) error {
		calls.Add(1)
		if down.Load() {
			return fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
		}
		return nil
	})
	ctx := context.Background()
	if err := h(ctx, &client.Message{}); err == nil {
		t.Fatal("first failure not returned")
	}
	// The second failure opens the breaker: the call is held, not returned.
	res := make(chan error, 1)
	go func() { res <- h(ctx, &client.Message{}) }()
	for b.State() != handle.StateOpen {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a trial or two fail meanwhile
	select {
	case err := <-res:
		t.Fatalf("held call returned while the dependency was down: %v", err)
	default:
	}
	down.Store(false)
	if err := <-res; err != nil {
		t.Fatalf("held call: %v", err)
	}
	if err := h(ctx, &client.Message{}); err != nil || b.State() != handle.StateClosed {
		t.Fatalf("after recovery: %v, %v", err, b.State())
	}
	// A waiting call gives up when its context ends, asking for a delay.
	down.Store(true)
	_ = h(ctx, &client.Message{})
	go func() { res <- h(ctx, &client.Message{}) }()
	for b.State() != handle.StateOpen {
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	if err := h(short, &client.Message{}); !errors.Is(err, handle.ErrOpen) {
		t.Errorf("waiting call whose context ended: %v", err)
	}
	down.Store(false)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	met.mu.Lock()
	defer met.mu.Unlock()
	if len(met.states) < 3 || met.states[0] != "open" {
		t.Errorf("states %v", met.states)
	}
}

// BenchmarkChain measures what the usual chain adds to a handler call
// that succeeds: classification, a closed breaker, a limiter, recovery.
func BenchmarkChain(b *testing.B) {
	br := handle.NewBreaker(handle.BreakerConfig{Name: "dep", Logger: quiet})
	l := handle.NewLimiter("dep", 8, nil)
	h := handle.Chain(func(context.Context, *client.Message) error { return nil },
		handle.Classify(handle.WithLogger(quiet)), br.Middleware(), l.Middleware(), handle.Recover(false))
	ctx, m := context.Background(), &client.Message{Topic: "t"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := h(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTimeout measures Timeout's goroutine and timer per call.
func BenchmarkTimeout(b *testing.B) {
	h := handle.Timeout(time.Second)(func(context.Context, *client.Message) error { return nil })
	ctx, m := context.Background(), &client.Message{}
	b.ReportAllocs()
	for b.Loop() {
		if err := h(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

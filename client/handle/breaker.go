package handle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/spoolmq/spool/client"
)

// ErrOpen is wrapped by the error of a call that gave up waiting for an
// open breaker (its context ended).
var ErrOpen = errors.New("handle: circuit breaker open")

// State is a breaker's state.
type State = gobreaker.State

// The states of a breaker.
const (
	StateClosed   = gobreaker.StateClosed
	StateHalfOpen = gobreaker.StateHalfOpen
	StateOpen     = gobreaker.StateOpen
)

// BreakerConfig configures a Breaker. The zero value is usable: it opens
// after 5 consecutive failures and stays open 10 s.
type BreakerConfig struct {
	// Name names the breaker in logs, metrics and span attributes.
	Name string
	// Failures is how many consecutive failures open the breaker;
	// default 5. ReadyToTrip, if set, decides instead.
	Failures uint32
	// ReadyToTrip, if set, is asked after every failure while the breaker
	// is closed whether to open it (gobreaker's Settings.ReadyToTrip).
	ReadyToTrip func(gobreaker.Counts) bool
	// Interval clears the counts of a closed breaker this often; default 0:
	// only a success (or a state change) clears them.
	Interval time.Duration
	// OpenFor is how long the breaker stays open before it lets trial
	// calls through (half-open); default 10 s.
	OpenFor time.Duration
	// Trials is how many calls a half-open breaker lets through at once,
	// and how many must succeed in a row to close it; default 1.
	Trials uint32
	// Classifier decides which errors are failures of the dependency:
	// those it classes Retry (a timeout, a refused connection, an unknown
	// error). Reject and Drop errors (a bad message) and context.Canceled
	// (the consumer stopping) count neither way. Default DefaultClassifier.
	Classifier Classifier
	// NackOnTrip makes a call that failed and left the breaker open (it
	// opened it, or was the failed trial of a half-open one) return its
	// error: the message is nacked (redelivered later, one delivery
	// spent). By default the message is held instead: the call waits for
	// the breaker like any other and runs again, spending no delivery.
	NackOnTrip bool
	// MaxHold bounds how long one message is held (waiting and running
	// again) in all; past it the call returns its last error, or ErrOpen,
	// and the message is nacked. Default 0: no bound but the context's.
	// Keep it below the consumer's ConsumerMaxExtension (default 12 h),
	// past which its lease expires and it is redelivered anyway.
	MaxHold time.Duration
	// OnStateChange is called at every state change, synchronously, while
	// the breaker is locked: it must not block nor run handler calls
	// through the breaker (State may be called).
	OnStateChange func(name string, from, to State)
	// Logger receives the state changes (open at warn level, others at
	// info); default slog.Default().
	Logger *slog.Logger
	// Metrics, if set, receives state changes and waits.
	Metrics Metrics
}

// Breaker is a circuit breaker (github.com/sony/gobreaker/v2) in front of
// a dependency. Its Middleware pauses consumption while the breaker is
// open: a call waits before running the handler until the breaker lets
// it through, so the message stays leased to the consumer (which extends
// its lease) and no delivery attempt is spent. One Breaker may guard the
// handlers of several consumers that call the same dependency.
type Breaker struct {
	cfg BreakerConfig
	cb  *gobreaker.TwoStepCircuitBreaker[struct{}]
	log *slog.Logger

	mu       sync.Mutex
	state    State
	openedAt time.Time
	changed  chan struct{} // closed and replaced at every state change
}

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	if cfg.Failures == 0 {
		cfg.Failures = 5
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = 10 * time.Second
	}
	if cfg.Trials == 0 {
		cfg.Trials = 1
	}
	if cfg.Classifier == nil {
		cfg.Classifier = DefaultClassifier
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Breaker{cfg: cfg, log: log.With("breaker", cfg.Name), changed: make(chan struct{})}
	trip := cfg.ReadyToTrip
	if trip == nil {
		trip = func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.Failures }
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:          cfg.Name,
		MaxRequests:   cfg.Trials,
		Interval:      cfg.Interval,
		Timeout:       cfg.OpenFor,
		ReadyToTrip:   trip,
		OnStateChange: b.onStateChange,
		IsExcluded:    b.excluded,
	})
	return b
}

// State returns the breaker's state as last seen by a call: an open
// breaker whose OpenFor has passed reads open until a call finds it
// half-open.
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// excluded reports whether err says nothing about the dependency.
func (b *Breaker) excluded(err error) bool {
	return errors.Is(err, context.Canceled) || b.cfg.Classifier(err).Class != Retry
}

// failed reports whether err is a failure of the dependency.
func (b *Breaker) failed(err error) bool { return err != nil && !b.excluded(err) }

func (b *Breaker) onStateChange(name string, from, to State) {
	b.mu.Lock()
	b.state = to
	if to == StateOpen {
		b.openedAt = time.Now()
	}
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	level := slog.LevelInfo
	if to == StateOpen {
		level = slog.LevelWarn
	}
	b.log.Log(context.Background(), level, "spool: circuit breaker state changed", "from", from.String(), "to", to.String())
	if b.cfg.Metrics != nil {
		b.cfg.Metrics.BreakerState(name, to.String())
	}
	if b.cfg.OnStateChange != nil {
		b.cfg.OnStateChange(name, from, to)
	}
}

// remainingOpen is how long the breaker stays open; 0 if it is not.
func (b *Breaker) remainingOpen() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != StateOpen {
		return 0
	}
	return max(time.Until(b.openedAt.Add(b.cfg.OpenFor)), 0)
}

// pollEvery is how often a waiting call asks a half-open breaker again
// (state changes wake it at once).
func (b *Breaker) pollEvery() time.Duration {
	return min(max(b.cfg.OpenFor/8, 5*time.Millisecond), 250*time.Millisecond)
}

// wait returns when the breaker lets a call through (with the function
// reporting its outcome), or when ctx ends (with ctx's error).
func (b *Breaker) wait(ctx context.Context) (done func(error), waited bool, err error) {
	for {
		done, err := b.cb.Allow()
		if err == nil {
			return done, waited, nil
		}
		waited = true
		b.mu.Lock()
		ch, st, opened := b.changed, b.state, b.openedAt
		b.mu.Unlock()
		d := b.pollEvery()
		if st == StateOpen {
			if left := time.Until(opened.Add(b.cfg.OpenFor)) + time.Millisecond; left > 0 {
				d = left
			}
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, true, ctx.Err()
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// Middleware runs the handler through the breaker. While the breaker is
// open, a call waits before running the handler (see Breaker); when its
// context ends first (the consumer gives up on it at shutdown) it returns
// an error wrapping ErrOpen and the context's error, asking for
// redelivery once the breaker's open time has passed (after the
// subscription's backoff if it is half-open). A call that fails
// and leaves the breaker open is held and run again (see
// BreakerConfig.NackOnTrip); other failures are returned as they are
// (nacked by the consumer with the subscription's backoff). The handler's
// span gets the breaker's name and state when the call waited, and the
// events "spool.breaker.wait" and "spool.breaker.held".
func (b *Breaker) Middleware() Middleware {
	return func(next client.Handler) client.Handler {
		return func(ctx context.Context, m *client.Message) error {
			first := time.Now()
			wctx := ctx // bounded by MaxHold
			if b.cfg.MaxHold > 0 {
				var cancel context.CancelFunc
				wctx, cancel = context.WithDeadline(ctx, first.Add(b.cfg.MaxHold))
				defer cancel()
			}
			var last error
			for {
				start := time.Now()
				done, waited, err := b.wait(wctx)
				if waited {
					d := time.Since(start)
					if b.cfg.Metrics != nil {
						b.cfg.Metrics.Waited("breaker", b.cfg.Name, d)
					}
					spanEvent(ctx, "spool.breaker.wait", AttrBreaker.String(b.cfg.Name),
						AttrState.String(b.State().String()), AttrWaited.Int64(d.Milliseconds()))
				}
				if err != nil {
					if last != nil {
						err = fmt.Errorf("%w (last failure: %w)", err, last)
					}
					err = fmt.Errorf("%w: %s: %w", ErrOpen, b.cfg.Name, err)
					if left := b.remainingOpen(); left > 0 {
						return client.RetryAfter(err, left)
					}
					return err // half-open: the subscription's backoff
				}
				err = next(ctx, m)
				done(err)
				if !b.failed(err) || b.cfg.NackOnTrip || b.State() != StateOpen || ctx.Err() != nil ||
					(b.cfg.MaxHold > 0 && time.Since(first) >= b.cfg.MaxHold) {
					return err
				}
				last = err
				b.log.Debug("spool: breaker open; message held to run again", "topic", m.Topic,
					"partition", m.Partition, "offset", m.Offset, "err", err)
				spanEvent(ctx, "spool.breaker.held", AttrBreaker.String(b.cfg.Name))
			}
		}
	}
}

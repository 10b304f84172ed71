package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/client"
)

// RelayConfig configures a Relay. Every zero field takes the default its
// comment states.
type RelayConfig struct {
	// Dialect is the database's; required.
	Dialect Dialect
	// Table is the outbox table; default DefaultTable.
	Table string
	// BatchSize is how many rows one step claims (and at most how many
	// events one step publishes); default 1,000, at most 10,000. A step
	// holds its rows in memory: BatchSize times the largest event bounds
	// it.
	BatchSize int
	// MaxRequestBytes bounds the keys, values and headers of one publish
	// request (a step's events for one topic go in as few as fit);
	// default 4 MiB (the server takes 8 MiB requests).
	MaxRequestBytes int
	// PollInterval is how often the relay looks for rows when nothing
	// woke it: on PostgreSQL with the pgx driver a LISTEN on the table's
	// channel wakes it at every insert and polling is the fallback
	// (default 1 s); elsewhere it polls (default 100 ms).
	PollInterval time.Duration
	// MaxAttempts is how many times an event the broker refuses outright
	// (missing topic, message too large, invalid message or headers,
	// schema mismatch) is tried before it is parked; default 10. Other
	// failures (the broker unreachable or restarting, a full topic, a
	// deadline, a permission denied) are retried without counting.
	MaxAttempts int
	// RetryMin and RetryMax bound the backoff between an event's
	// attempts, doubling from RetryMin; defaults 200 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// ErrorBackoffMax caps the backoff (from 50 ms, doubling, jittered)
	// after a failed step: the database or the broker unreachable;
	// default 5 s.
	ErrorBackoffMax time.Duration
	// PublishTimeout bounds one publish request, retries included; it
	// must stay well under the topics' de-duplication window (2 minutes by
	// default); default 30 s.
	PublishTimeout time.Duration
	// KeepSent keeps published rows (state 1, done_at set) instead of
	// deleting them; pruning them is then yours.
	KeepSent bool
	// LeaseTTL is, on SQLite, how long the lease a relay takes to publish
	// lasts without renewal (every step renews it); default 15 s.
	LeaseTTL time.Duration
	// Name identifies the relay in the SQLite lease; default random.
	Name string
	// OnPark is called (from the relay's goroutine, after the row is
	// marked) for every event parked after MaxAttempts refusals.
	OnPark func(Parked)
	// OnError is called with every failed step's error (the relay goes on
	// after a backoff).
	OnError func(error)
	// Logger receives the relay's warnings (failed steps, refused and
	// parked events); default slog.Default().
	Logger *slog.Logger
}

// Parked is an event the relay gave up on: its row is kept with state 2
// and the reason in last_error (Requeue makes it pending again).
type Parked struct {
	RowID    int64 // the row's id
	Event    Event
	Attempts int   // how many times it was refused
	Err      error // the last refusal
}

// Stats counts what a relay did since it was made.
type Stats struct {
	Published int64 // events published (and marked)
	Parked    int64 // events parked
	Refused   int64 // refusals of single events (each attempt counts)
	Errors    int64 // failed steps
}

// Relay publishes the outbox table's rows to Spool: it reads unsent rows in
// insertion order, publishes them with their event id as the message ID,
// and deletes them (or marks them sent) once the broker acknowledged them.
//
// Delivery: a relay that crashes, or loses its database, after the publish
// but before the rows are marked publishes them again later with the same
// IDs, and the topic's de-duplication window (2 minutes by default) stores
// them once: every committed event is stored once, provided the rows are
// published again within the window (the next step does, unless the relay
// stays down longer). The window also bounds ids per topic (200,000 by
// default), so at 20,000 events/s a topic remembers about 10 s of ids.
//
// Order: the events of one aggregate are published in the order of their
// rows' ids, each after the one before was acknowledged (several of them
// may go in one request when they share topic and key: the server stores a
// partition's messages in a request all or nothing, in order). Writers of
// one aggregate must be serialized for the id order to be the commit order
// (they are when each transaction updates the aggregate's own row first).
//
// Several relays may run at once. On PostgreSQL each step locks the rows
// it publishes (FOR UPDATE SKIP LOCKED) and publishes an aggregate's rows
// only when no earlier row of the aggregate is pending outside its set, so
// relays share the work across aggregates. On SQLite the relays take a
// lease (the <table>_lease row): one publishes, the others wait to take
// over when it lapses.
//
// Refusals: an event the broker refuses outright (an invalid message or
// headers, a schema mismatch, a message too large, a missing topic) is
// retried after a backoff, counting attempts; after MaxAttempts it is
// parked (state 2, last_error), reported to OnPark and logged, and the
// aggregate's next event goes on. Other failures (the broker unreachable
// or restarting, a full topic, a deadline, a permission denied, a storage
// error) and database errors fail the step: the relay logs them, calls
// OnError and tries again after a backoff, counting nothing against the
// events.
type Relay struct {
	db   *sql.DB
	c    *client.Client
	cfg  RelayConfig
	log  *slog.Logger
	q    queries
	wake chan struct{}

	stepMu     sync.Mutex // one step at a time; guards the fields below
	leaseUntil time.Time  // SQLite: the lease's end, by our clock
	// limit is the rows a step claims: BatchSize, halved after a publish
	// that ran out of time (PublishTimeout or the lease), doubled back
	// after one that did not.
	limit int

	published, parked, refused, errs atomic.Int64
}

// NewRelay returns a relay of db's outbox table to the server c speaks to.
func NewRelay(db *sql.DB, c *client.Client, cfg RelayConfig) (*Relay, error) {
	if db == nil || c == nil {
		return nil, errors.New("outbox: NewRelay needs a database and a client")
	}
	if err := cfg.Dialect.Check("outbox"); err != nil {
		return nil, err
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if err := checkTable(cfg.Table); err != nil {
		return nil, err
	}
	switch {
	case cfg.BatchSize < 0 || cfg.BatchSize > 10_000:
		return nil, fmt.Errorf("outbox: BatchSize %d: want 1 to 10,000", cfg.BatchSize)
	case cfg.MaxRequestBytes < 0, cfg.PollInterval < 0, cfg.MaxAttempts < 0, cfg.RetryMin < 0, cfg.RetryMax < 0,
		cfg.ErrorBackoffMax < 0, cfg.PublishTimeout < 0, cfg.LeaseTTL < 0:
		return nil, errors.New("outbox: negative RelayConfig field")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1000
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = 4 << 20
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.Dialect == Postgres {
		def(&cfg.PollInterval, time.Second)
	} else {
		def(&cfg.PollInterval, 100*time.Millisecond)
	}
	def(&cfg.RetryMin, 200*time.Millisecond)
	def(&cfg.RetryMax, 30*time.Second)
	def(&cfg.ErrorBackoffMax, 5*time.Second)
	def(&cfg.PublishTimeout, 30*time.Second)
	def(&cfg.LeaseTTL, 15*time.Second)
	if cfg.Name == "" {
		cfg.Name = newID()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Relay{
		db: db, c: c, cfg: cfg, log: log.With("outbox", cfg.Table),
		q:     newQueries(cfg.Dialect, cfg.Table),
		wake:  make(chan struct{}, 1),
		limit: cfg.BatchSize,
	}, nil
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{Published: r.published.Load(), Parked: r.parked.Load(), Refused: r.refused.Load(), Errors: r.errs.Load()}
}

// Run relays until ctx is cancelled, then returns nil. Failed steps (the
// database or the broker unreachable, a transaction cut off) are logged,
// passed to OnError and retried after a backoff: Run does not give up.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if r.cfg.Dialect == Postgres {
		wg.Go(func() { r.listen(ctx) })
	}
	defer wg.Wait()
	failures := 0
	for ctx.Err() == nil {
		res, err := r.step(ctx)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, errNotLeader) {
			r.sleep(ctx, min(r.cfg.PollInterval, r.cfg.LeaseTTL/4), false)
			continue
		}
		if err != nil {
			r.errs.Add(1)
			failures++
			r.log.Warn("outbox relay step failed; retrying", "error", err, "failures", failures)
			if r.cfg.OnError != nil {
				r.cfg.OnError(err)
			}
			r.sleep(ctx, errorBackoff(failures, r.cfg.ErrorBackoffMax), true)
			continue
		}
		failures = 0
		if res.full && res.done > 0 {
			continue // more to do
		}
		r.sleep(ctx, r.cfg.PollInterval, false)
	}
	return nil
}

// RunOnce runs one step: claims up to BatchSize rows, publishes those it
// may, and marks them; it returns how many events were published or
// parked. It is what Run repeats, for tests and for callers that schedule
// the relay themselves; steps of one Relay do not overlap. On SQLite, when
// another relay holds the lease, it returns 0 and nil.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	res, err := r.step(ctx)
	if errors.Is(err, errNotLeader) {
		err = nil
	}
	return res.done, err
}

// sleep waits d (or a wake-up, unless ignoreWake) or ctx.
func (r *Relay) sleep(ctx context.Context, d time.Duration, ignoreWake bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	wake := r.wake
	if ignoreWake {
		wake = nil
	}
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

func (r *Relay) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// errorBackoff is the wait after n consecutive failed steps: from 50 ms,
// doubling, capped, with ±25 % jitter.
func errorBackoff(n int, max time.Duration) time.Duration {
	d := 50 * time.Millisecond
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// retryDelay is the wait before an event's next attempt after n refusals.
func (r *Relay) retryDelay(n int) time.Duration {
	d := r.cfg.RetryMin
	for i := 1; i < n && d < r.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, r.cfg.RetryMax)
}

// stepResult is what one step did.
type stepResult struct {
	claimed int  // rows read
	full    bool // as many as the step could claim: more may be waiting
	done    int  // events published or parked
}

// step claims, publishes and marks one batch.
func (r *Relay) step(ctx context.Context) (stepResult, error) {
	r.stepMu.Lock()
	defer r.stepMu.Unlock()
	if r.cfg.Dialect == Postgres {
		return r.stepPostgres(ctx)
	}
	return r.stepSQLite(ctx)
}

// stepPostgres holds one transaction across the step: the claimed rows
// stay locked until they are marked (or the transaction ends with the
// relay's connection).
func (r *Relay) stepPostgres(ctx context.Context) (stepResult, error) {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return stepResult{}, fmt.Errorf("outbox: begin: %w", err)
	}
	defer tx.Rollback()
	rows, full, err := r.claim(ctx, tx)
	if err != nil || len(rows) == 0 {
		return stepResult{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	out := r.publish(pctx, rows)
	r.adapt(ctx, pctx)
	cancel()
	if err := r.mark(ctx, tx, out); err != nil {
		return stepResult{claimed: len(rows)}, err
	}
	if err := tx.Commit(); err != nil {
		return stepResult{claimed: len(rows)}, fmt.Errorf("outbox: commit the marks of %d published events (they will be published again, as duplicates the broker drops): %w", len(out.sent), err)
	}
	return r.finish(rows, full, out)
}

// stepSQLite takes or renews the lease and claims in one transaction,
// publishes outside it (SQLite has one writer: the application's writes
// do not wait for the broker) and marks in another.
func (r *Relay) stepSQLite(ctx context.Context) (stepResult, error) {
	// Nothing due: no write (an idle relay does not renew its lease; the
	// relay that finds work next takes it once it lapsed).
	var due int
	err := r.db.QueryRowContext(ctx, r.q.due, time.Now().UnixMilli()).Scan(&due)
	if errors.Is(err, sql.ErrNoRows) {
		return stepResult{}, nil
	}
	if err != nil {
		return stepResult{}, fmt.Errorf("outbox: look for pending events in %s: %w", r.cfg.Table, err)
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return stepResult{}, fmt.Errorf("outbox: begin: %w", err)
	}
	defer tx.Rollback()
	if err := r.takeLease(ctx, tx); err != nil {
		return stepResult{}, err
	}
	rows, full, err := r.claim(ctx, tx)
	if err != nil {
		return stepResult{}, err
	}
	if err := tx.Commit(); err != nil {
		return stepResult{}, fmt.Errorf("outbox: commit the lease: %w", err)
	}
	if len(rows) == 0 {
		return stepResult{}, nil
	}
	// Publish only while the lease lasts: after it another relay may
	// publish the same rows, and ours must not come after its next ones.
	deadline := time.Now().Add(r.cfg.PublishTimeout)
	if r.leaseUntil.Before(deadline) {
		deadline = r.leaseUntil
	}
	pctx, cancel := context.WithDeadline(ctx, deadline)
	out := r.publish(pctx, rows)
	r.adapt(ctx, pctx)
	cancel()
	tx2, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return stepResult{claimed: len(rows)}, fmt.Errorf("outbox: begin marking %d published events (they will be published again, as duplicates the broker drops): %w", len(out.sent), err)
	}
	defer tx2.Rollback()
	if err := r.mark(ctx, tx2, out); err != nil {
		return stepResult{claimed: len(rows)}, err
	}
	if err := tx2.Commit(); err != nil {
		return stepResult{claimed: len(rows)}, fmt.Errorf("outbox: commit the marks of %d published events (they will be published again, as duplicates the broker drops): %w", len(out.sent), err)
	}
	return r.finish(rows, full, out)
}

// adapt halves the step's limit when its publishing ran out of time (and
// ctx did not end), and doubles it back up to BatchSize otherwise: a
// relay whose batches take longer than PublishTimeout or its lease to
// publish goes on with smaller ones.
func (r *Relay) adapt(ctx, pctx context.Context) {
	if pctx.Err() != nil && ctx.Err() == nil {
		r.limit = max(1, r.limit/2)
		r.log.Warn("outbox: publishing ran out of time; smaller batches", "batch", r.limit)
		return
	}
	r.limit = min(r.cfg.BatchSize, r.limit*2)
}

// takeLease takes the relays' lease, or renews ours.
func (r *Relay) takeLease(ctx context.Context, tx *sql.Tx) error {
	now := time.Now()
	until := now.Add(r.cfg.LeaseTTL)
	res, err := tx.ExecContext(ctx, r.q.takeLease, r.cfg.Name, until.UnixMilli(), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("outbox: take the relay lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("outbox: take the relay lease: %w", err)
	} else if n == 0 {
		return errNotLeader
	}
	r.leaseUntil = until
	return nil
}

// finish counts and reports a committed step.
func (r *Relay) finish(rows []*row, full bool, out publishOutcome) (stepResult, error) {
	r.published.Add(int64(len(out.sent)))
	r.refused.Add(int64(len(out.failed)))
	done := len(out.sent)
	for _, f := range out.failed {
		if !f.park {
			r.log.Warn("outbox: event refused; it will be retried", "row", f.row.id, "topic", f.row.topic,
				"aggregate", f.row.agg, "attempts", f.row.attempts+1, "error", f.err)
			continue
		}
		done++
		r.parked.Add(1)
		r.log.Error("outbox: event parked after repeated refusals", "row", f.row.id, "topic", f.row.topic,
			"aggregate", f.row.agg, "attempts", f.row.attempts+1, "error", f.err)
		if r.cfg.OnPark != nil {
			r.cfg.OnPark(Parked{RowID: f.row.id, Event: f.row.event(), Attempts: f.row.attempts + 1, Err: f.err})
		}
	}
	return stepResult{claimed: len(rows), full: full, done: done}, out.err
}

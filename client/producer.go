package client

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// Producer publishes messages to one topic asynchronously: Send queues a
// message and returns at once (unless the buffer is full); messages are
// batched (linger, batch limits) and sent over one PublishStream with a
// bounded number of requests in flight. A partial batch does not linger
// while a Send is blocked on the full buffer, a Wait or PublishSync waits
// for an outcome, or Flush or Close runs.
//
// Delivery: the Producer builds the Kafka record batches the server stores
// (one per partition per request: the batch form of PublishRequest, see
// docs/api.md), numbered with a producer id, an epoch and sequence
// numbers from InitProducer, as Kafka's idempotent producers number
// theirs. A batch is resent with the same bytes after a broken stream or a
// retriable error (Error.Retriable, after at least Error.RetryAfter;
// capped exponential backoff with jitter) until ProducerDeliveryTimeout,
// and the server answers a repeat with the original offsets instead of
// storing it twice, so messages need no ID for that. Messages with an ID
// (the topic's de-duplication window applies to them, also across
// producers and restarts) or a Delay (relative to the broker's clock) go
// one by one in the per-message form, in order with the batches around
// them. A message the server rejects outright fails with that error
// alone: a batch rejected with ErrMessageTooLarge or ErrInvalidArgument is
// re-sent one message per batch so that only the offending message fails.
// Against a server without InitProducer the Producer publishes every
// message in the per-message form, giving each an ID at Send if it has
// none.
//
// Ordering: messages with the same key (or the same ToPartition) sent from
// one Producer are published in Send order, whatever ProducerMaxInFlight
// is: the Producer chooses partitions as the server would (murmur2 of the
// key), sends a partition's batches in sequence order and, after a failed
// one, resends the batches after it in order (a later batch never
// overtakes an earlier one that failed). Messages with no key have no
// order. Order across Producers, or between a keyed message and an explicit
// partition it hashes to, is not defined. The partition count is read when
// the Producer connects and every minute: keys move to other partitions
// after AddPartitions, as with Kafka's producers.
//
// A Producer is safe for concurrent use. Close it to flush and release its
// stream and goroutine.
type Producer struct {
	c     *Client
	topic string
	cfg   producerConfig
	log   *slog.Logger
	span  string // the name of its publish spans, with a tracer

	// mu guards the fields up to drained.
	mu         sync.Mutex
	incoming   []*record      // accepted by Send, not yet taken by the sender
	closing    bool           // Close was called: Send fails
	flushes    int            // Flush calls waiting: linger is skipped
	blocked    int            // Sends waiting for buffer space: linger is skipped
	buffered   int64          // bytes of accepted, unfinished records
	space      chan struct{}  // closed (and replaced) when buffered shrinks
	epoch      uint64         // current flush epoch
	current    int            // unfinished records of the current flush epoch
	unfinished map[uint64]int // unfinished records of earlier flush epochs
	drained    chan struct{}  // closed (and replaced) when an epoch empties

	waiters    atomic.Int64       // Future.Wait calls waiting: linger is skipped
	wake       chan struct{}      // cap 1: the sender has news
	events     chan streamEvent   // from stream receivers to the sender
	abort      chan struct{}      // closed (once, by stop) to fail everything now
	abortOnce  sync.Once          // guards closing abort
	done       chan struct{}      // closed when the sender goroutine exits
	wg         sync.WaitGroup     // every goroutine of the producer: the sender and stream receivers
	baseCtx    context.Context    // parent of the streams' contexts
	baseCancel context.CancelFunc // cancels every stream (stop, Close)
	closeOnce  sync.Once          // Close runs once; later calls wait for it
	closeErr   error              // Close's result, for later calls
}

// NewProducer returns a producer for topic; it connects lazily, with the
// first batch. Invalid options yield an error matching ErrInvalidOption;
// a closed client yields ErrClosed. The topic is not checked here: publishes
// to a missing topic fail with ErrTopicNotFound.
func (c *Client) NewProducer(topic string, opts ...ProducerOption) (*Producer, error) {
	cfg := defaultProducerConfig()
	for _, o := range opts {
		if o.apply != nil {
			o.apply(&cfg)
		}
	}
	if len(cfg.errs) > 0 {
		return nil, errors.Join(cfg.errs...)
	}
	p := &Producer{
		c:          c,
		topic:      topic,
		cfg:        cfg,
		log:        c.cfg.logger.With("topic", topic),
		space:      make(chan struct{}),
		unfinished: map[uint64]int{},
		drained:    make(chan struct{}),
		wake:       make(chan struct{}, 1),
		abort:      make(chan struct{}),
		done:       make(chan struct{}),
		events:     make(chan streamEvent, cfg.maxInFlight+1),
	}
	if c.tr.tracer != nil {
		p.span = "publish " + topic
	}
	p.baseCtx, p.baseCancel = context.WithCancel(context.Background())
	if !c.register(p) {
		return nil, ErrClosed
	}
	s := newSender(p)
	p.wg.Go(s.run)
	return p, nil
}

// Topic returns the producer's topic.
func (p *Producer) Topic() string { return p.topic }

// Future is the eventual outcome of one Send.
type Future struct {
	completed atomic.Bool                   // the outcome is known (res and err are set)
	closed    atomic.Bool                   // done was closed (by complete or Done, whichever saw both)
	done      atomic.Pointer[chan struct{}] // made when first asked for (Done, a blocking Wait)
	res       PublishResult
	err       error
	p         *Producer // told while a Wait blocks; nil once complete at Send
}

func newFuture() *Future { return &Future{} }

// complete sets the outcome. It takes no lock: complete stores completed
// and then looks for done, Done stores done and then looks at completed,
// so at least one of them sees both and closes done (closed makes it
// once).
func (f *Future) complete(res PublishResult, err error) {
	f.res, f.err = res, err
	f.completed.Store(true)
	if d := f.done.Load(); d != nil && f.closed.CompareAndSwap(false, true) {
		close(*d)
	}
}

// Done returns a channel closed once the outcome is known.
func (f *Future) Done() <-chan struct{} {
	d := f.done.Load()
	if d == nil {
		ch := make(chan struct{})
		if f.done.CompareAndSwap(nil, &ch) {
			d = &ch
		} else {
			d = f.done.Load()
		}
	}
	if f.completed.Load() && f.closed.CompareAndSwap(false, true) {
		close(*d)
	}
	return *d
}

// Wait returns the outcome once known, or ctx's error if ctx ends first (the
// message is then still being published; a later Wait can see the result).
//
// While a Wait blocks, the producer sends what it holds without lingering:
// a waiting caller would only be delayed by it (as Flush does; franz-go's
// producer stops lingering the same way while a caller waits for it).
func (f *Future) Wait(ctx context.Context) (PublishResult, error) {
	if f.completed.Load() {
		return f.res, f.err
	}
	done := f.Done()
	if p := f.p; p != nil {
		if p.waiters.Add(1) == 1 {
			p.poke()
		}
		defer p.waiters.Add(-1)
	}
	select {
	case <-done:
		return f.res, f.err
	case <-ctx.Done():
		return PublishResult{}, ctx.Err()
	}
}

// Send queues m for publishing and returns its Future. It blocks only while
// the producer's buffer is full, until ctx ends; ctx does not bound the
// publish itself (ProducerDeliveryTimeout does). Invalid messages fail with
// ErrInvalidArgument, Send after Close with ErrProducerClosed; those and a
// ctx ending while blocked come back through the Future.
//
// Tracing: when ctx carries a valid span context, its trace context is
// written into the message's headers (traceparent, and tracestate when
// there is one) unless the message has a traceparent header already; with
// WithTracerProvider, Send starts the message's publish span, a child of
// ctx's span, whose context it writes there instead, and the span ends
// with the message's outcome (see WithTracerProvider).
func (p *Producer) Send(ctx context.Context, m Message) *Future {
	err := ctx.Err()
	if err == nil {
		err = m.check()
	}
	if err != nil {
		f := newFuture()
		f.complete(PublishResult{}, err)
		return f
	}
	var span trace.Span
	if p.c.tr.tracer != nil || trace.SpanContextFromContext(ctx).IsValid() {
		span = p.c.tr.startPublish(ctx, p.span, p.topic, &m)
	}
	r := newRecord(&m) // its Future is allocated with it
	if span != nil {
		r.ext().span = span
	}
	f := &r.future
	f.p = p
	if err := p.admit(ctx, r); err != nil {
		r.complete(PublishResult{}, err)
	}
	return f
}

// PublishSync sends m and waits for its outcome. If ctx ends first it
// returns ctx's error, and the message may still be published.
func (p *Producer) PublishSync(ctx context.Context, m Message) (PublishResult, error) {
	return p.Send(ctx, m).Wait(ctx)
}

// admit waits for buffer space and hands r to the sender.
func (p *Producer) admit(ctx context.Context, r *record) error {
	now := monoNow() // read outside the lock
	p.mu.Lock()
	for {
		if p.closing {
			p.mu.Unlock()
			return ErrProducerClosed
		}
		if p.buffered == 0 || p.buffered+r.size <= p.cfg.maxBuffered {
			break
		}
		space := p.space
		p.blocked++
		p.mu.Unlock()
		p.poke() // a blocked Send: stop lingering
		select {
		case <-space:
		case <-ctx.Done():
			p.mu.Lock()
			p.blocked--
			p.mu.Unlock()
			return ctx.Err()
		}
		p.mu.Lock()
		p.blocked--
		now = monoNow()
	}
	r.enqueued = now
	r.epoch = p.epoch
	p.current++
	p.buffered += r.size
	p.incoming = append(p.incoming, r)
	first := len(p.incoming) == 1
	p.mu.Unlock()
	if first {
		// Else the sender was poked for the records before r and has not
		// taken them yet: it takes r with them.
		p.poke()
	}
	return nil
}

// poke wakes the sender without blocking.
func (p *Producer) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take hands the sender the newly accepted records, whether linger is to be
// skipped (a Flush or Close is waiting) and whether Close was called.
func (p *Producer) take(dst []*record) (rs []*record, force, closing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dst = append(dst, p.incoming...)
	clear(p.incoming)
	p.incoming = p.incoming[:0]
	force = p.flushes > 0 || p.blocked > 0 || p.waiters.Load() > 0 || p.closing
	return dst, force, p.closing
}

// finish completes records (results[i] for rs[i] when err is nil) and
// releases their buffer space and flush accounting.
func (p *Producer) finish(rs []*record, results []PublishResult, err error) {
	if len(rs) == 0 {
		return
	}
	for i, r := range rs {
		if err != nil {
			r.complete(PublishResult{}, err)
		} else {
			r.complete(results[i], nil)
		}
	}
	p.settle(rs)
}

// finishStored completes the records of a stored batch: rs[i] landed at
// base+i of partition part.
func (p *Producer) finishStored(rs []*record, part int32, base int64, dup bool) {
	for i, r := range rs {
		r.complete(PublishResult{Partition: part, Offset: base + int64(i), Duplicate: dup}, nil)
	}
	p.settle(rs)
}

// complete ends r's publish span, if it has one, and completes r's Future,
// which keeps the record: r lets go of the message's data.
func (r *record) complete(res PublishResult, err error) {
	if r.x != nil && r.x.span != nil {
		endPublish(r.x.span, res, err)
		r.x.span = nil
	}
	r.future.complete(res, err)
	r.key, r.value, r.x = nil, nil, nil
}

// settle releases the buffer space and flush accounting of completed
// records.
func (p *Producer) settle(rs []*record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < len(rs); {
		e, n := rs[i].epoch, 0
		for ; i < len(rs) && rs[i].epoch == e; i++ {
			p.buffered -= rs[i].size
			n++
		}
		if e == p.epoch {
			p.current -= n
			continue // no Flush waits for the current epoch
		}
		if p.unfinished[e] -= n; p.unfinished[e] == 0 {
			delete(p.unfinished, e)
			close(p.drained)
			p.drained = make(chan struct{})
		}
	}
	close(p.space)
	p.space = make(chan struct{})
}

// Flush sends every buffered message without waiting for linger and returns
// once all messages sent before the call have an outcome (success or
// failure: check their Futures), or with ctx's error. Messages sent during
// Flush are not waited for.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	e := p.epoch
	if p.current > 0 {
		p.unfinished[e] = p.current
		p.current = 0
	}
	p.epoch++
	p.flushes++
	p.mu.Unlock()
	p.poke()
	defer func() {
		p.mu.Lock()
		p.flushes--
		p.mu.Unlock()
	}()
	for {
		p.mu.Lock()
		waiting := false
		for k := range p.unfinished {
			if k <= e {
				waiting = true
				break
			}
		}
		drained := p.drained
		p.mu.Unlock()
		if !waiting {
			return nil
		}
		select {
		case <-drained:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops accepting messages (Send then fails with ErrProducerClosed),
// publishes everything buffered, closes the stream and stops the producer's
// goroutines. If ctx ends first, the messages still unacknowledged fail with
// ErrProducerClosed and Close returns ctx's error; it returns only once the
// goroutines have stopped. Later calls wait for the first and return its
// result; after Client.Close closed the producer, that is ErrClosed.
func (p *Producer) Close(ctx context.Context) error { return p.close(ctx, false) }

// close is Close; with abort it fails everything unsent at once and
// records ErrClosed (Client.Close).
func (p *Producer) close(ctx context.Context, abort bool) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closing = true
		close(p.space) // wake blocked Sends: they fail with ErrProducerClosed
		p.space = make(chan struct{})
		p.mu.Unlock()
		p.poke()
		if abort {
			p.stop()
			p.closeErr = ErrClosed
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			p.stop()
			<-p.done
			p.closeErr = ctx.Err()
		}
		p.wg.Wait()
		p.baseCancel()
		p.c.unregister(p)
	})
	return p.closeErr
}

// stop makes the sender fail everything and exit, cancelling the stream so
// that a Send blocked on flow control returns.
func (p *Producer) stop() {
	p.abortOnce.Do(func() {
		close(p.abort)
		p.baseCancel()
	})
}

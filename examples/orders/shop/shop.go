// Package shop is the code of the worked example examples/orders: three
// small services — orders, payments and shipping — that talk only through
// Spool topics, each with its own SQLite database.
//
// Every service changes its data and writes the events that report the
// change in one transaction (client/outbox), a relay publishes them, and
// every consumer records the events it handled in the same transaction as
// their effects (client/idem): each business write produces exactly one
// event, handled once by each subscriber. The payments service calls its
// payment provider through a circuit breaker (client/handle); an order
// whose shipment fails is compensated by a refund and a cancellation
// (a choreographed saga); the orders service sends itself delayed
// reminders, and can build a new read model by replaying its topic from
// the start. A trace context travels in the events' headers, so one
// order's work in the three services shares one trace.
//
// See examples/orders/README.md for the flows and the commands that show
// them.
package shop

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	// The database/sql driver "sqlite".
	_ "modernc.org/sqlite"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/idem"
	"github.com/spoolmq/spool/client/outbox"
)

// Topics.
const (
	// TopicOrders carries the orders service's events: order.created,
	// order.completed, order.cancelled.
	TopicOrders = "orders"
	// TopicPayments carries payment.succeeded and payment.refunded.
	TopicPayments = "payments"
	// TopicShipments carries shipment.created and shipment.failed.
	TopicShipments = "shipments"
	// TopicReminders carries the orders service's delayed reminders.
	TopicReminders = "reminders"
)

// Event types, also the messages' subjects (subscriptions filter on them).
const (
	OrderCreated     = "order.created"
	OrderCompleted   = "order.completed"
	OrderCancelled   = "order.cancelled"
	PaymentSucceeded = "payment.succeeded"
	PaymentRefunded  = "payment.refunded"
	ShipmentCreated  = "shipment.created"
	ShipmentFailed   = "shipment.failed"
	Reminder         = "order.reminder"
)

// HeaderEventID is the header holding an event's id, by which consumers
// recognise an event they handled (idem.HeaderKey): it survives a
// dead-letter redrive, which publishes a copy under a new message id.
const HeaderEventID = "event-id"

// Event is the value of every message of the example, in JSON.
type Event struct {
	Type     string    `json:"type"`
	Order    string    `json:"order"`
	Item     string    `json:"item,omitempty"`
	Amount   int64     `json:"amount_cents,omitempty"`
	Currency string    `json:"currency,omitempty"`
	Address  string    `json:"address,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
}

// Timing holds the delays of the example; the demo uses DefaultTiming,
// the test shorter ones.
type Timing struct {
	Backoff        time.Duration // the first redelivery delay after a nack (doubling up to 8×, each drawn from [d/2, d])
	BreakerOpenFor time.Duration // how long the payment provider's breaker stays open
	ReminderAfter  time.Duration // when the reminder of an order is delivered
	RelayPoll      time.Duration // how often an outbox relay looks for new events
}

// DefaultTiming is the timing of the live demo.
var DefaultTiming = Timing{Backoff: 500 * time.Millisecond, BreakerOpenFor: 3 * time.Second,
	ReminderAfter: 5 * time.Second, RelayPoll: 50 * time.Millisecond}

// maxDeliveries bounds the deliveries of a message to a subscription
// before it is dead-lettered. The breaker holds messages instead of
// nacking them while it is open, so an outage spends few deliveries.
const maxDeliveries = 20

// Config configures a service.
type Config struct {
	Spool  string               // the server's URL
	DB     string               // the SQLite file
	Logger *slog.Logger         // nil: slog.Default()
	Tracer trace.TracerProvider // nil: spans that are not exported
	Timing Timing               // zero fields: DefaultTiming's
}

func (c *Config) fill() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	d := DefaultTiming
	if c.Timing.Backoff <= 0 {
		c.Timing.Backoff = d.Backoff
	}
	if c.Timing.BreakerOpenFor <= 0 {
		c.Timing.BreakerOpenFor = d.BreakerOpenFor
	}
	if c.Timing.ReminderAfter <= 0 {
		c.Timing.ReminderAfter = d.ReminderAfter
	}
	if c.Timing.RelayPoll <= 0 {
		c.Timing.RelayPoll = d.RelayPoll
	}
}

// subscription is one of the example's subscriptions.
type subscription struct {
	topic, name, filter string
}

// subscriptions are every subscription of the example; fan-out: each topic
// but reminders has two.
var subscriptions = []subscription{
	{TopicOrders, "payments", OrderCreated},       // payments charges new orders
	{TopicPayments, "shipping", PaymentSucceeded}, // shipping ships paid orders
	{TopicPayments, "orders", ""},                 // orders follows payments and refunds
	{TopicShipments, "orders", ""},                // orders follows shipments
	{TopicShipments, "payments", ShipmentFailed},  // payments refunds failed shipments
	{TopicReminders, "orders", ""},                // orders' own delayed reminders
}

// Setup creates the example's topics and subscriptions where missing (every
// service runs it at start, so any may start first).
func Setup(ctx context.Context, c *client.Client, t Timing) error {
	for _, name := range []string{TopicOrders, TopicPayments, TopicShipments, TopicReminders} {
		if _, err := c.CreateTopic(ctx, name, client.TopicConfig{Partitions: 2}); err != nil && !errors.Is(err, client.ErrTopicExists) {
			return fmt.Errorf("shop: create topic %s: %w", name, err)
		}
	}
	for _, s := range subscriptions {
		cfg := client.SubscriptionConfig{
			Mode:          client.ModeQueue,
			Filter:        s.filter,
			MaxDeliveries: maxDeliveries,
			Backoff:       client.Backoff{Initial: t.Backoff, Max: 8 * t.Backoff, Multiplier: 2, Jitter: client.JitterEqual},
		}
		if _, err := c.CreateSubscription(ctx, s.topic, s.name, cfg); err != nil && !errors.Is(err, client.ErrSubscriptionExists) {
			return fmt.Errorf("shop: create subscription %s/%s: %w", s.topic, s.name, err)
		}
	}
	return nil
}

// service is what the three services share: a client, a database with
// its outbox and processed-keys tables, a relay and consumers.
type service struct {
	name   string
	cfg    Config
	c      *client.Client
	db     *sql.DB
	log    *slog.Logger
	tracer trace.Tracer
	relay  *outbox.Relay
	run    []func(context.Context) error // the consumers' and the relay's Run

	mu     sync.Mutex
	ctx    context.Context // Run's, while it runs
	extras sync.WaitGroup  // goroutines started by spawn
}

// OpenDB opens a SQLite database file with the settings the outbox and the
// idempotent consumers want: WAL, a busy timeout, immediate transactions.
func OpenDB(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("shop: open %s: %w", path, err)
	}
	return db, nil
}

func newService(ctx context.Context, name string, cfg Config, schema string) (*service, error) {
	cfg.fill()
	s := &service{name: name, cfg: cfg, log: cfg.Logger.With("service", name)}
	if cfg.Tracer == nil {
		// Spans with ids but no exporter: the trace ids still show in the
		// logs and the databases.
		cfg.Tracer = NewTracerProvider(name, nil)
	}
	s.tracer = cfg.Tracer.Tracer("github.com/spoolmq/spool/examples/orders/shop")
	db, err := OpenDB(cfg.DB)
	if err != nil {
		return nil, err
	}
	s.db = db
	fail := func(err error) (*service, error) {
		s.close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return fail(fmt.Errorf("create tables: %w", err))
	}
	if err := outbox.Migrate(ctx, db, outbox.SQLite); err != nil {
		return fail(err)
	}
	if err := idem.Migrate(ctx, db, idem.SQLite, ""); err != nil {
		return fail(err)
	}
	opts := []client.Option{client.WithLogger(s.log), client.WithClientID(name), client.WithTracerProvider(cfg.Tracer)}
	if s.c, err = client.New(cfg.Spool, opts...); err != nil {
		return fail(err)
	}
	if err := Setup(ctx, s.c, cfg.Timing); err != nil {
		return fail(err)
	}
	s.relay, err = outbox.NewRelay(db, s.c, outbox.RelayConfig{Dialect: outbox.SQLite, PollInterval: cfg.Timing.RelayPoll,
		Name: name, Logger: s.log})
	if err != nil {
		return fail(err)
	}
	s.run = append(s.run, s.relay.Run)
	return s, nil
}

// consume adds a consumer of topic's subscription sub running h.
func (s *service) consume(topic, sub string, h client.Handler) error {
	k, err := s.c.NewConsumer(topic, sub, h, client.ConsumerConcurrency(4),
		client.ConsumerShutdownTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("%s: consumer %s/%s: %w", s.name, topic, sub, err)
	}
	s.run = append(s.run, k.Run)
	return nil
}

// idem wraps a transactional handler of events so that each event id is
// handled once: its effects and its key commit together.
func (s *service) idem(topic string, h func(ctx context.Context, tx *sql.Tx, m *client.Message, ev Event) error) (client.Handler, error) {
	return idem.Handler(s.db, idem.Config{Dialect: idem.SQLite, Consumer: s.name + "/" + topic, Key: idem.HeaderKey(HeaderEventID)},
		func(ctx context.Context, tx *sql.Tx, m *client.Message) error {
			var ev Event
			if err := json.Unmarshal(m.Value, &ev); err != nil || ev.Order == "" {
				// Nothing will ever make it readable: dead-letter it.
				return client.Reject(fmt.Errorf("not an event of the shop: %q", truncate(m.Value, 80)))
			}
			return h(ctx, tx, m, ev)
		})
}

// Run runs the service's relay and consumers until ctx is cancelled or one
// of them fails, then closes the service.
func (s *service) Run(ctx context.Context) error {
	defer s.close()
	g, ctx := errgroup.WithContext(ctx)
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	for _, f := range s.run {
		g.Go(func() error {
			if err := f(ctx); err != nil && ctx.Err() == nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
	}
	err := g.Wait()
	s.mu.Lock()
	s.ctx = nil
	s.mu.Unlock()
	s.extras.Wait()
	return err
}

// spawn runs f on a goroutine of the running service, with its context.
func (s *service) spawn(f func(ctx context.Context)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		return fmt.Errorf("%s: not running", s.name)
	}
	ctx := s.ctx
	s.extras.Go(func() { f(ctx) })
	return nil
}

func (s *service) close() {
	if s.c != nil {
		s.c.Close()
	}
	if s.db != nil {
		s.db.Close()
	}
}

// emit writes ev into the outbox through tx, for topic, with a new event
// id and the trace context of ctx in its headers.
func emit(ctx context.Context, tx *sql.Tx, topic string, ev Event) error {
	ev.At = time.Now().UTC()
	v, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	id := newID()
	hs := headers{{Key: HeaderEventID, Value: []byte(id)}}
	propagation.TraceContext{}.Inject(ctx, &hs)
	return outbox.Write(ctx, tx, outbox.Event{ID: id, Topic: topic, Aggregate: ev.Order, Value: v,
		Headers: hs, Subject: ev.Type})
}

// headers is a propagation.TextMapCarrier over message headers.
type headers []client.Header

func (h *headers) Get(key string) string {
	for _, x := range *h {
		if x.Key == key {
			return string(x.Value)
		}
	}
	return ""
}

func (h *headers) Set(key, value string) {
	*h = append(*h, client.Header{Key: key, Value: []byte(value)})
}

func (h *headers) Keys() []string {
	ks := make([]string, len(*h))
	for i, x := range *h {
		ks[i] = x.Key
	}
	return ks
}

// traceID is ctx's trace id in hex, or "" without one.
func traceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

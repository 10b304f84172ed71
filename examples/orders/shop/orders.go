package shop

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/spoolmq/spool/client"
)

// Order states.
const (
	StatePending        = "pending"         // placed, not paid yet
	StatePaid           = "paid"            // paid, not shipped yet
	StateCompleted      = "completed"       // shipped
	StateShippingFailed = "shipping_failed" // the shipment failed; the refund is on its way
	StateCancelled      = "cancelled"       // refunded
)

const ordersSchema = `CREATE TABLE IF NOT EXISTS orders (
	seq INTEGER PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	item TEXT NOT NULL,
	amount_cents INTEGER NOT NULL,
	currency TEXT NOT NULL,
	address TEXT NOT NULL,
	state TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	trace TEXT NOT NULL DEFAULT '',
	reminded INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
)`

// Orders is the orders service: it takes orders (Place), follows their
// payments and shipments, and reminds itself of unpaid orders.
type Orders struct {
	*service

	rmu    sync.Mutex
	report *Report // the replayed read model; nil until Replay
}

// NewOrders opens the orders service's database and sets up its topics,
// subscriptions and consumers; Run runs it.
func NewOrders(ctx context.Context, cfg Config) (*Orders, error) {
	s, err := newService(ctx, "orders", cfg, ordersSchema)
	if err != nil {
		return nil, err
	}
	o := &Orders{service: s}
	for _, c := range []struct {
		topic string
		h     func(context.Context, *sql.Tx, *client.Message, Event) error
	}{
		{TopicPayments, o.onPayment},
		{TopicShipments, o.onShipment},
		{TopicReminders, o.onReminder},
	} {
		h, err := s.idem(c.topic, c.h)
		if err == nil {
			err = s.consume(c.topic, "orders", h)
		}
		if err != nil {
			s.close()
			return nil, err
		}
	}
	return o, nil
}

// NewOrder is an order to place.
type NewOrder struct {
	Item     string `json:"item"`
	Amount   int64  `json:"amount_cents"`
	Currency string `json:"currency"` // three letters
	Address  string `json:"address"`
}

// Order is an order as the orders service keeps it.
type Order struct {
	ID       string `json:"id"`
	NewOrder        // as placed
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"` // why it was cancelled
	Trace    string `json:"trace"`            // the trace id of its placement
	Reminded bool   `json:"reminded"`         // a reminder found it unpaid
}

func (n NewOrder) check() error {
	switch {
	case n.Item == "" || len(n.Item) > 200:
		return errors.New("item: 1–200 bytes")
	case n.Amount <= 0:
		return errors.New("amount_cents: must be positive")
	case len(n.Currency) != 3 || strings.ToUpper(n.Currency) != n.Currency:
		return errors.New("currency: three capital letters")
	case n.Address == "" || len(n.Address) > 200:
		return errors.New("address: 1–200 bytes")
	}
	return nil
}

// ErrInvalidOrder wraps the reason an order is refused.
var ErrInvalidOrder = errors.New("invalid order")

// Place records a new order and, in the same transaction, its
// order.created event (the outbox); then it schedules the order's
// reminder. It returns the order with its id and trace id.
func (o *Orders) Place(ctx context.Context, n NewOrder) (Order, error) {
	if err := n.check(); err != nil {
		return Order{}, fmt.Errorf("%w: %w", ErrInvalidOrder, err)
	}
	ctx, span := o.tracer.Start(ctx, "place order", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	ord := Order{NewOrder: n, State: StatePending, Trace: traceID(ctx)}
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return Order{}, err
	}
	defer tx.Rollback()
	var seq int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM orders`).Scan(&seq); err != nil {
		return Order{}, err
	}
	ord.ID = fmt.Sprintf("o-%d", seq)
	if _, err := tx.ExecContext(ctx, `INSERT INTO orders (seq, id, item, amount_cents, currency, address, state, trace, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		seq, ord.ID, n.Item, n.Amount, n.Currency, n.Address, ord.State, ord.Trace, time.Now().UnixMilli()); err != nil {
		return Order{}, err
	}
	if err := emit(ctx, tx, TopicOrders, Event{Type: OrderCreated, Order: ord.ID, Item: n.Item, Amount: n.Amount,
		Currency: n.Currency, Address: n.Address}); err != nil {
		return Order{}, err
	}
	if err := tx.Commit(); err != nil {
		return Order{}, err
	}
	o.log.Info("order placed", "order", ord.ID, "item", n.Item, "amount", money(n.Amount, n.Currency), "trace", ord.Trace)

	// The reminder is published straight away, delayed by the broker. It
	// is not in the transaction: a crash right here loses it, which a
	// reminder can afford (an event that must not be lost goes through
	// the outbox).
	v, _ := json.Marshal(Event{Type: Reminder, Order: ord.ID, At: time.Now().UTC()})
	id := "reminder-" + ord.ID
	if _, err := o.c.Publish(ctx, TopicReminders, client.Message{ID: id, Key: []byte(ord.ID), Value: v, Subject: Reminder,
		Headers: []client.Header{{Key: HeaderEventID, Value: []byte(id)}}, Delay: o.cfg.Timing.ReminderAfter}); err != nil {
		o.log.Warn("reminder not scheduled", "order", ord.ID, "err", err)
	}
	return ord, nil
}

// ErrNotFound is returned for an order, payment or shipment that does not
// exist.
var ErrNotFound = errors.New("not found")

// Get returns order id.
func (o *Orders) Get(ctx context.Context, id string) (Order, error) {
	list, err := o.list(ctx, `WHERE id = $1`, id)
	if err != nil {
		return Order{}, err
	}
	if len(list) == 0 {
		return Order{}, fmt.Errorf("order %s: %w", id, ErrNotFound)
	}
	return list[0], nil
}

// List returns every order, oldest first.
func (o *Orders) List(ctx context.Context) ([]Order, error) { return o.list(ctx, "") }

func (o *Orders) list(ctx context.Context, where string, args ...any) ([]Order, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT id, item, amount_cents, currency, address, state, reason, trace, reminded
		FROM orders `+where+` ORDER BY seq`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Order
	for rows.Next() {
		var x Order
		if err := rows.Scan(&x.ID, &x.Item, &x.Amount, &x.Currency, &x.Address, &x.State, &x.Reason, &x.Trace, &x.Reminded); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// setState moves order id to state if it is in one of from, and reports
// whether it did.
func setState(ctx context.Context, tx *sql.Tx, id, state, reason string, from ...string) (bool, error) {
	q := `UPDATE orders SET state = $1, reason = $2 WHERE id = $3 AND state IN ('` + strings.Join(from, "','") + `')`
	res, err := tx.ExecContext(ctx, q, state, reason, id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (o *Orders) onPayment(ctx context.Context, tx *sql.Tx, _ *client.Message, ev Event) error {
	switch ev.Type {
	case PaymentSucceeded:
		ok, err := setState(ctx, tx, ev.Order, StatePaid, "", StatePending)
		if ok {
			o.log.Info("order paid", "order", ev.Order, "trace", traceID(ctx))
		}
		return err
	case PaymentRefunded:
		ok, err := setState(ctx, tx, ev.Order, StateCancelled, ev.Reason, StatePending, StatePaid, StateShippingFailed)
		if err != nil || !ok {
			return err
		}
		o.log.Warn("order cancelled: payment refunded (compensation)", "order", ev.Order, "reason", ev.Reason, "trace", traceID(ctx))
		return emit(ctx, tx, TopicOrders, Event{Type: OrderCancelled, Order: ev.Order, Reason: ev.Reason})
	}
	return nil
}

func (o *Orders) onShipment(ctx context.Context, tx *sql.Tx, _ *client.Message, ev Event) error {
	switch ev.Type {
	case ShipmentCreated:
		ok, err := setState(ctx, tx, ev.Order, StateCompleted, "", StatePending, StatePaid)
		if err != nil || !ok {
			return err
		}
		o.log.Info("order completed: shipped", "order", ev.Order, "trace", traceID(ctx))
		return emit(ctx, tx, TopicOrders, Event{Type: OrderCompleted, Order: ev.Order})
	case ShipmentFailed:
		ok, err := setState(ctx, tx, ev.Order, StateShippingFailed, ev.Reason, StatePending, StatePaid)
		if ok {
			o.log.Warn("shipment failed; waiting for the refund", "order", ev.Order, "reason", ev.Reason, "trace", traceID(ctx))
		}
		return err
	}
	return nil
}

func (o *Orders) onReminder(ctx context.Context, tx *sql.Tx, _ *client.Message, ev Event) error {
	var state string
	err := tx.QueryRowContext(ctx, `SELECT state FROM orders WHERE id = $1`, ev.Order).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		o.log.Info("reminder for an unknown order; ignored", "order", ev.Order)
		return nil
	}
	if err != nil {
		return err
	}
	if state != StatePending {
		o.log.Info("reminder: nothing to do", "order", ev.Order, "state", state)
		return nil
	}
	o.log.Warn("REMINDER: order still awaiting payment", "order", ev.Order, "after", o.cfg.Timing.ReminderAfter)
	_, err = tx.ExecContext(ctx, `UPDATE orders SET reminded = 1 WHERE id = $1`, ev.Order)
	return err
}

func money(cents int64, cur string) string {
	return fmt.Sprintf("%d.%02d %s", cents/100, cents%100, cur)
}

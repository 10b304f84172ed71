package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/handle"
)

const paymentsSchema = `CREATE TABLE IF NOT EXISTS payments (
	order_id TEXT PRIMARY KEY,
	amount_cents INTEGER NOT NULL,
	currency TEXT NOT NULL,
	state TEXT NOT NULL,
	trace TEXT NOT NULL DEFAULT '',
	updated_at INTEGER NOT NULL
)`

// Payment states.
const (
	PaymentCaptured = "captured"
	PaymentRefund   = "refunded"
)

// BreakerFailures is how many failed charges in a row open the breaker.
const BreakerFailures = 5

// ErrProviderDown is the payment provider's error during an outage.
var ErrProviderDown = errors.New("payment provider unavailable")

// Provider stands for the external payment provider; SetDown injects an
// outage.
type Provider struct {
	down  atomic.Bool
	calls atomic.Int64
}

// SetDown starts (true) or ends an outage.
func (p *Provider) SetDown(down bool) { p.down.Store(down) }

// Calls is how many calls the provider received, failed ones included.
func (p *Provider) Calls() int64 { return p.calls.Load() }

func (p *Provider) charge(context.Context, Event) error {
	p.calls.Add(1)
	if p.down.Load() {
		return ErrProviderDown
	}
	return nil
}

// Payments is the payments service: it charges new orders through the
// payment provider, behind a circuit breaker, and refunds the orders
// whose shipment failed.
type Payments struct {
	*service
	Provider *Provider
	Breaker  *handle.Breaker

	mu         sync.Mutex
	currencies map[string]bool
}

// NewPayments opens the payments service's database and sets up its
// topics, subscriptions and consumers; Run runs it.
func NewPayments(ctx context.Context, cfg Config) (*Payments, error) {
	s, err := newService(ctx, "payments", cfg, paymentsSchema)
	if err != nil {
		return nil, err
	}
	p := &Payments{service: s, Provider: &Provider{}, currencies: map[string]bool{"EUR": true, "USD": true, "GBP": true}}
	p.Breaker = handle.NewBreaker(handle.BreakerConfig{Name: "payment-provider", Failures: BreakerFailures,
		OpenFor: s.cfg.Timing.BreakerOpenFor, Logger: s.log})
	charge, err := s.idem(TopicOrders, p.charge)
	if err == nil {
		// Classify: Permanent errors are dead-lettered, others retried
		// with the subscription's backoff. The breaker: after 5 failures
		// in a row calls wait (holding their messages) until a trial call
		// succeeds.
		err = s.consume(TopicOrders, "payments", handle.Chain(charge,
			handle.Classify(handle.WithLogger(s.log)), p.Breaker.Middleware(), handle.Recover(false)))
	}
	var refund client.Handler
	if err == nil {
		refund, err = s.idem(TopicShipments, p.refund)
	}
	if err == nil {
		err = s.consume(TopicShipments, "payments", handle.Chain(refund, handle.Classify(handle.WithLogger(s.log))))
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return p, nil
}

// AllowCurrency makes the service accept payments in cur (the "fix" of
// the poison-message scenario).
func (p *Payments) AllowCurrency(cur string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.currencies[cur] = true
}

func (p *Payments) accepts(cur string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.currencies[cur]
}

func (p *Payments) charge(ctx context.Context, tx *sql.Tx, m *client.Message, ev Event) error {
	if ev.Type != OrderCreated {
		return nil
	}
	ctx, span := p.tracer.Start(ctx, "charge", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if !p.accepts(ev.Currency) {
		err := fmt.Errorf("order %s: unsupported currency %q", ev.Order, ev.Currency)
		p.log.Error("cannot charge; dead-lettering the message", "order", ev.Order, "err", err)
		return handle.Permanent(err)
	}
	if err := p.Provider.charge(ctx, ev); err != nil {
		p.log.Warn("charge failed; will retry", "order", ev.Order, "delivery", m.DeliveryCount, "err", err)
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO payments (order_id, amount_cents, currency, state, trace, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, ev.Order, ev.Amount, ev.Currency, PaymentCaptured, traceID(ctx), time.Now().UnixMilli()); err != nil {
		return err
	}
	p.log.Info("payment captured", "order", ev.Order, "amount", money(ev.Amount, ev.Currency), "delivery", m.DeliveryCount, "trace", traceID(ctx))
	return emit(ctx, tx, TopicPayments, Event{Type: PaymentSucceeded, Order: ev.Order, Item: ev.Item, Amount: ev.Amount,
		Currency: ev.Currency, Address: ev.Address})
}

// refund is the compensation of a payment whose order could not be
// shipped.
func (p *Payments) refund(ctx context.Context, tx *sql.Tx, _ *client.Message, ev Event) error {
	if ev.Type != ShipmentFailed {
		return nil
	}
	var amount int64
	var cur string
	err := tx.QueryRowContext(ctx, `UPDATE payments SET state = $1, updated_at = $2 WHERE order_id = $3 AND state = $4
		RETURNING amount_cents, currency`, PaymentRefund, time.Now().UnixMilli(), ev.Order, PaymentCaptured).Scan(&amount, &cur)
	if errors.Is(err, sql.ErrNoRows) {
		p.log.Info("nothing to refund", "order", ev.Order)
		return nil
	}
	if err != nil {
		return err
	}
	reason := "shipment failed: " + ev.Reason
	p.log.Warn("payment refunded (compensation)", "order", ev.Order, "amount", money(amount, cur), "reason", reason, "trace", traceID(ctx))
	return emit(ctx, tx, TopicPayments, Event{Type: PaymentRefunded, Order: ev.Order, Amount: amount, Currency: cur, Reason: reason})
}

// Payment is a payment as the payments service keeps it.
type Payment struct {
	Order    string `json:"order"`
	Amount   int64  `json:"amount_cents"`
	Currency string `json:"currency"`
	State    string `json:"state"`
	Trace    string `json:"trace"`
}

// List returns every payment.
func (p *Payments) List(ctx context.Context) ([]Payment, error) {
	rows, err := p.db.QueryContext(ctx, `SELECT order_id, amount_cents, currency, state, trace FROM payments ORDER BY updated_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		var x Payment
		if err := rows.Scan(&x.Order, &x.Amount, &x.Currency, &x.State, &x.Trace); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

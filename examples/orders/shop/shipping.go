package shop

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/spoolmq/spool/client"
)

const shippingSchema = `CREATE TABLE IF NOT EXISTS shipments (
	order_id TEXT PRIMARY KEY,
	state TEXT NOT NULL,
	detail TEXT NOT NULL,
	trace TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
)`

// Shipment states.
const (
	ShipmentShipped = "shipped"
	ShipmentFail    = "failed"
)

// Undeliverable is the address no carrier delivers to: an order sent
// there fails at shipping and is compensated.
const Undeliverable = "Atlantis"

// Shipping is the shipping service: it ships paid orders.
type Shipping struct {
	*service
}

// NewShipping opens the shipping service's database and sets up its
// topics, subscriptions and consumer; Run runs it.
func NewShipping(ctx context.Context, cfg Config) (*Shipping, error) {
	s, err := newService(ctx, "shipping", cfg, shippingSchema)
	if err != nil {
		return nil, err
	}
	sh := &Shipping{service: s}
	h, err := s.idem(TopicPayments, sh.ship)
	if err == nil {
		err = s.consume(TopicPayments, "shipping", h)
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return sh, nil
}

func (sh *Shipping) ship(ctx context.Context, tx *sql.Tx, _ *client.Message, ev Event) error {
	if ev.Type != PaymentSucceeded {
		return nil
	}
	ctx, span := sh.tracer.Start(ctx, "ship", trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()
	state, detail, next := ShipmentShipped, "tracking SP-"+strings.ToUpper(newID()[:8]), ShipmentCreated
	if strings.Contains(strings.ToLower(ev.Address), strings.ToLower(Undeliverable)) {
		state, detail, next = ShipmentFail, "no carrier delivers to "+ev.Address, ShipmentFailed
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO shipments (order_id, state, detail, trace, created_at) VALUES ($1, $2, $3, $4, $5)`,
		ev.Order, state, detail, traceID(ctx), time.Now().UnixMilli()); err != nil {
		return err
	}
	if state == ShipmentFail {
		sh.log.Warn("shipment failed", "order", ev.Order, "reason", detail, "trace", traceID(ctx))
		return emit(ctx, tx, TopicShipments, Event{Type: ShipmentFailed, Order: ev.Order, Reason: detail})
	}
	sh.log.Info("order shipped", "order", ev.Order, "detail", detail, "trace", traceID(ctx))
	return emit(ctx, tx, TopicShipments, Event{Type: next, Order: ev.Order})
}

// Shipment is a shipment as the shipping service keeps it.
type Shipment struct {
	Order  string `json:"order"`
	State  string `json:"state"`
	Detail string `json:"detail"`
	Trace  string `json:"trace"`
}

// List returns every shipment.
func (sh *Shipping) List(ctx context.Context) ([]Shipment, error) {
	rows, err := sh.db.QueryContext(ctx, `SELECT order_id, state, detail, trace FROM shipments ORDER BY created_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Shipment
	for rows.Next() {
		var x Shipment
		if err := rows.Scan(&x.Order, &x.State, &x.Detail, &x.Trace); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

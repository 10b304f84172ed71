// Package orders_test runs the worked example's three services in-process
// against a real Spool server and checks each scenario of the README.
package orders_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/handle"
	"github.com/spoolmq/spool/examples/orders/shop"
	"github.com/spoolmq/spool/internal/spooltest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// timing is the scenarios' timing: short delays, so that the whole run
// takes a few seconds.
var timing = shop.Timing{Backoff: 50 * time.Millisecond, BreakerOpenFor: 300 * time.Millisecond,
	ReminderAfter: time.Second, RelayPoll: 20 * time.Millisecond}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testShop struct {
	c        *client.Client
	registry string // the schema registry's URL
	dir      string
	orders   *shop.Orders
	payments *shop.Payments
	shipping *shop.Shipping
	api      *httptest.Server // the orders service's HTTP API
	payAPI   *httptest.Server // the payments service's
}

// startShop starts a Spool server and the three services; they stop when
// the test ends (the services first). The services' logs are printed if
// the test fails.
func startShop(t *testing.T) *testShop {
	srv := spooltest.StartServer(t)
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("logs of the services:\n" + logs.String())
		}
	})
	log := slog.New(slog.NewTextHandler(logs, nil))
	s := &testShop{c: srv.Client(), dir: t.TempDir(), registry: "http://" + srv.Server().SchemaRegistryAddr()}
	ctx := t.Context()
	cfg := func(name string) shop.Config {
		return shop.Config{Spool: srv.URL(), DB: filepath.Join(s.dir, name+".db"), Logger: log, Timing: timing}
	}
	var err error
	if s.orders, err = shop.NewOrders(ctx, cfg("orders")); err != nil {
		t.Fatal(err)
	}
	if s.payments, err = shop.NewPayments(ctx, cfg("payments")); err != nil {
		t.Fatal(err)
	}
	if s.shipping, err = shop.NewShipping(ctx, cfg("shipping")); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range []interface{ Run(context.Context) error }{s.orders, s.payments, s.shipping} {
		wg.Go(func() {
			if err := r.Run(runCtx); err != nil {
				t.Errorf("service stopped: %v", err)
			}
		})
	}
	s.api = httptest.NewServer(s.orders.Handler())
	s.payAPI = httptest.NewServer(s.payments.Handler())
	t.Cleanup(func() {
		s.api.Close()
		s.payAPI.Close()
		cancel()
		wg.Wait()
	})
	return s
}

// eventually retries f until it returns nil, failing the test with its
// last error after 20 s.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *testShop) place(t *testing.T, n shop.NewOrder) shop.Order {
	t.Helper()
	o, err := s.orders.Place(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// waitState waits until every order of ids is in state.
func (s *testShop) waitState(t *testing.T, state string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		eventually(t, "order "+id+" "+state, func() error {
			o, err := s.orders.Get(t.Context(), id)
			if err == nil && o.State != state {
				err = fmt.Errorf("state %s", o.State)
			}
			return err
		})
	}
}

func (s *testShop) payment(t *testing.T, id string) shop.Payment {
	t.Helper()
	ps, err := s.payments.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var found []shop.Payment
	for _, p := range ps {
		if p.Order == id {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("order %s: %d payments, want 1", id, len(found))
	}
	return found[0]
}

func (s *testShop) shipment(t *testing.T, id string) shop.Shipment {
	t.Helper()
	ss, err := s.shipping.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var found []shop.Shipment
	for _, x := range ss {
		if x.Order == id {
			found = append(found, x)
		}
	}
	if len(found) != 1 {
		t.Fatalf("order %s: %d shipments, want 1", id, len(found))
	}
	return found[0]
}

var book = shop.NewOrder{Item: "book", Amount: 1250, Currency: "EUR", Address: "Paris"}

// TestOrders runs the README's scenarios in turn on one shop.
func TestOrders(t *testing.T) {
	s := startShop(t)
	ctx := t.Context()

	// An order placed through the HTTP API, and two more: each is paid
	// once, shipped once and completed, and its placement, payment and
	// shipment share one trace.
	resp, err := http.Post(s.api.URL+"/orders", "application/json", strings.NewReader(`{"item":"lamp","amount_cents":4999,"currency":"USD","address":"Oslo"}`))
	if err != nil {
		t.Fatal(err)
	}
	var first shop.Order
	err = json.NewDecoder(resp.Body).Decode(&first)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || first.ID == "" {
		t.Fatalf("POST /orders: %d %+v %v", resp.StatusCode, first, err)
	}
	happy := []string{first.ID, s.place(t, book).ID, s.place(t, book).ID}
	s.waitState(t, shop.StateCompleted, happy...)
	for _, id := range happy {
		o, _ := s.orders.Get(ctx, id)
		p, sh := s.payment(t, id), s.shipment(t, id)
		if p.State != shop.PaymentCaptured || sh.State != shop.ShipmentShipped {
			t.Errorf("order %s: payment %s, shipment %s", id, p.State, sh.State)
		}
		if len(o.Trace) != 32 || p.Trace != o.Trace || sh.Trace != o.Trace {
			t.Errorf("order %s: traces %q (orders) %q (payments) %q (shipping): want one trace", id, o.Trace, p.Trace, sh.Trace)
		}
	}
	resp, err = http.Post(s.api.URL+"/orders", "application/json", strings.NewReader(`{"item":"lamp","amount_cents":-1,"currency":"USD","address":"Oslo"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a negative amount: status %d, want 400", resp.StatusCode)
	}

	// A payment outage: the charges fail and are retried with backoff
	// until the breaker opens; the orders wait, are reminded, and complete
	// once the provider is back and a trial call closed the breaker.
	outage := func(on bool) {
		t.Helper()
		resp, err := http.Post(fmt.Sprintf("%s/outage?on=%v", s.payAPI.URL, on), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /outage: %d", resp.StatusCode)
		}
	}
	outage(true)
	down := []string{s.place(t, book).ID, s.place(t, book).ID}
	eventually(t, "breaker open", func() error {
		if st := s.payments.Breaker.State(); st != handle.StateOpen {
			return fmt.Errorf("breaker %s", st)
		}
		return nil
	})
	for _, id := range down {
		eventually(t, "reminder of "+id, func() error {
			o, err := s.orders.Get(ctx, id)
			if err == nil && (!o.Reminded || o.State != shop.StatePending) {
				err = fmt.Errorf("state %s, reminded %v", o.State, o.Reminded)
			}
			return err
		})
	}
	calls := s.payments.Provider.Calls()
	outage(false)
	s.waitState(t, shop.StateCompleted, down...)
	if st := s.payments.Breaker.State(); st != handle.StateClosed {
		t.Errorf("breaker %s after the outage, want closed", st)
	}
	if calls < shop.BreakerFailures {
		t.Errorf("%d calls to the provider during the outage, want at least %d (the failures that opened the breaker)", calls, shop.BreakerFailures)
	}
	for _, id := range down {
		s.payment(t, id)
		s.shipment(t, id)
	}

	// A poison message: payments cannot charge an unknown currency, so the
	// order's event is dead-lettered at once; once the currency is
	// accepted, a redrive completes the order.
	poison := s.place(t, shop.NewOrder{Item: "test", Amount: 100, Currency: "XTS", Address: "Rome"}).ID
	var dls []client.DeadLetter
	eventually(t, "dead letter", func() error {
		var err error
		dls, _, err = s.c.ListDeadLetters(ctx, shop.TopicOrders, "payments", 0, 10)
		if err == nil && len(dls) != 1 {
			err = fmt.Errorf("%d dead letters", len(dls))
		}
		return err
	})
	if dls[0].Reason != client.ReasonRejected || !strings.Contains(dls[0].Error, `unsupported currency "XTS"`) {
		t.Errorf("dead letter: reason %s, error %q", dls[0].Reason, dls[0].Error)
	}
	if o, _ := s.orders.Get(ctx, poison); o.State != shop.StatePending {
		t.Errorf("poison order %s: state %s, want pending", poison, o.State)
	}
	s.payments.AllowCurrency("XTS")
	rep, err := s.c.Redrive(ctx, client.RedriveRequest{Topic: shop.TopicOrders, Subscription: "payments"})
	if err != nil || rep.Moved != 1 {
		t.Fatalf("redrive: %+v %v", rep, err)
	}
	s.waitState(t, shop.StateCompleted, poison)

	// A shipment that fails is compensated: the payment is refunded and
	// the order cancelled.
	lost := s.place(t, shop.NewOrder{Item: "map", Amount: 700, Currency: "GBP", Address: "Atlantis"}).ID
	s.waitState(t, shop.StateCancelled, lost)
	if p := s.payment(t, lost); p.State != shop.PaymentRefund {
		t.Errorf("payment of %s: %s, want refunded", lost, p.State)
	}
	if sh := s.shipment(t, lost); sh.State != shop.ShipmentFail {
		t.Errorf("shipment of %s: %s, want failed", lost, sh.State)
	}
	if o, _ := s.orders.Get(ctx, lost); !strings.Contains(o.Reason, "no carrier delivers to Atlantis") {
		t.Errorf("cancelled order's reason %q", o.Reason)
	}

	// Replay: a new read model built from the orders topic alone knows
	// every order in its final state.
	report, err := s.orders.Replay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.orders.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 7 {
		t.Fatalf("%d orders, want 7", len(all))
	}
	eventually(t, "read model", func() error {
		got := report.States()
		for _, o := range all {
			if got[o.ID] != o.State {
				return fmt.Errorf("order %s: %q in the read model, %q in the orders table", o.ID, got[o.ID], o.State)
			}
		}
		if len(got) != len(all) {
			return fmt.Errorf("%d orders in the read model, want %d", len(got), len(all))
		}
		return nil
	})

	checkExactlyOnce(t, s, len(all))
	checkSchemas(t, s)
}

// checkExactlyOnce checks that every business write produced exactly one
// event (one event id per event type and order on each topic; a redriven
// dead letter is a second message of the same event) and that
// each subscriber handled each event it receives exactly once (its
// processed keys).
func checkExactlyOnce(t *testing.T, s *testShop, orders int) {
	ctx := t.Context()
	count := map[string]int{} // event type → events
	for _, topic := range []string{shop.TopicOrders, shop.TopicPayments, shop.TopicShipments} {
		seen := map[string]string{} // type/order → event id
		for m, err := range s.c.ReadTopic(ctx, topic) {
			if err != nil {
				t.Fatal(err)
			}
			var ev shop.Event
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				t.Fatal(err)
			}
			id, _ := m.HeaderValue(shop.HeaderEventID)
			k := ev.Type + "/" + ev.Order
			switch seen[k] {
			case "":
				seen[k] = string(id)
				count[ev.Type]++
			case string(id):
				// A copy of the same event: the redriven dead letter.
			default:
				t.Errorf("topic %s: two %s events", topic, k)
			}
		}
	}
	// 7 orders: 6 completed, 1 cancelled after its shipment failed.
	want := map[string]int{shop.OrderCreated: orders, shop.OrderCompleted: orders - 1, shop.OrderCancelled: 1,
		shop.PaymentSucceeded: orders, shop.PaymentRefunded: 1, shop.ShipmentCreated: orders - 1, shop.ShipmentFailed: 1}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d %s events, want %d", count[k], k, n)
		}
	}
	// Each consumer's processed keys: one per event its subscription
	// receives (subscriptions with a filter receive one type).
	processed := map[string]int{
		"payments/" + shop.TopicOrders:    count[shop.OrderCreated],
		"payments/" + shop.TopicShipments: count[shop.ShipmentFailed],
		"shipping/" + shop.TopicPayments:  count[shop.PaymentSucceeded],
		"orders/" + shop.TopicPayments:    count[shop.PaymentSucceeded] + count[shop.PaymentRefunded],
		"orders/" + shop.TopicShipments:   count[shop.ShipmentCreated] + count[shop.ShipmentFailed],
		"orders/" + shop.TopicReminders:   orders,
	}
	for consumer, n := range processed {
		svc, _, _ := strings.Cut(consumer, "/")
		db, err := shop.OpenDB(filepath.Join(s.dir, svc+".db"))
		if err != nil {
			t.Fatal(err)
		}
		var got int
		eventually(t, "processed keys of "+consumer, func() error {
			err := db.QueryRowContext(ctx, `SELECT count(*) FROM spool_processed WHERE consumer = $1`, consumer).Scan(&got)
			if err == nil && got != n {
				err = fmt.Errorf("%d keys, want %d", got, n)
			}
			return err
		})
		if err := db.Close(); err != nil && !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	}
}

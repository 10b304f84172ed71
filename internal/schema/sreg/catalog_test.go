package sreg

import (
	"math"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
)

func TestCatalogModel(t *testing.T) {
	e := newEnv(t)
	if _, err := e.reg.Register("orders-value", SchemaInput{Type: "AVRO", Text: avroV1}, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Register("orders-value", SchemaInput{Type: "AVRO", Text: avroV2}, 0, 0); err != nil {
		t.Fatal(err)
	}
	e.b.SetSchemaValidator(e.reg)
	cfg := catalog.TopicConfig{Partitions: 2, Durability: catalog.DurabilityDefault, MaxMessageBytes: 1 << 20,
		SchemaSubject: "orders-value", SchemaMode: catalog.SchemaDeadLetter,
		Owner: "payments", Description: "One event per order placed.", Labels: map[string]string{"tier": "1"}}
	if _, err := e.b.CreateTopic("orders", cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateTopic("audit", catalog.TopicConfig{Durability: catalog.DurabilityDefault}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"billing", "shipping"} {
		if _, err := e.b.CreateSubscription("orders", s, catalog.SubConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.reg.DeclareReader("orders", "billing", "orders-value", 1); err != nil {
		t.Fatal(err)
	}
	// Two valid messages with version 1, one invalid: dead-lettered to
	// dlq.orders.
	msgs := []broker.Message{
		{Value: wire(1, e.avroOrder(t, 1, "a")), Partition: 0},
		{Value: wire(1, e.avroOrder(t, 2, "b")), Partition: 1},
		{Value: []byte("garbage"), Partition: 0},
	}
	if _, err := e.b.Publish("orders", msgs); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	cat := e.reg.catalogAt(e.b, CatalogOptions{}, now)
	names := []string{}
	for _, et := range cat {
		names = append(names, et.Topic)
	}
	if len(cat) != 3 || names[0] != "audit" || names[1] != "dlq.orders" || names[2] != "orders" {
		t.Fatalf("catalog topics: %v", names)
	}
	audit, dlq, orders := cat[0], cat[1], cat[2]
	if audit.Schema != nil || audit.DeadLetter || len(audit.Subscriptions) != 0 || audit.Labels == nil {
		t.Errorf("unbound topic: %+v", audit)
	}
	if !dlq.DeadLetter || dlq.DeadLetterOf == nil || dlq.DeadLetterOf.Topic != "orders" || dlq.DeadLetterOf.Subscription != "" || dlq.Messages != 1 {
		t.Errorf("dead-letter topic: %+v %+v", dlq, dlq.DeadLetterOf)
	}
	if orders.Owner != "payments" || orders.Description != "One event per order placed." || orders.Labels["tier"] != "1" ||
		orders.Partitions != 2 || orders.Messages != 2 || orders.DeadLetter {
		t.Errorf("orders: %+v", orders)
	}
	s := orders.Schema
	if s == nil || s.Subject != "orders-value" || s.Mode != "dead-letter" || s.LatestVersion != 2 || s.Type != "AVRO" ||
		len(s.Versions) != 2 || s.Versions[0].Produced != 2 || s.Versions[0].LastProduced == nil || s.Versions[1].Produced != 0 ||
		s.LatestSchema != "" {
		t.Fatalf("orders schema: %+v", s)
	}
	subs := orders.Subscriptions
	if len(subs) != 2 || subs[0].Name != "billing" || subs[0].Mode != "stream" || subs[0].Reader == nil ||
		*subs[0].Reader != (EventReader{"orders-value", 1}) || subs[1].Reader != nil {
		t.Fatalf("subscriptions: %+v", subs)
	}
	// No rate before a minute of samples: the first request sampled.
	if orders.RateWindowSeconds != 0 || orders.RatePerSecond != 0 {
		t.Errorf("rate with no sample: %v over %v", orders.RatePerSecond, orders.RateWindowSeconds)
	}

	// Filter and schema text.
	one := e.reg.catalogAt(e.b, CatalogOptions{Topic: "orders", SchemaText: true}, now.Add(time.Second))
	if len(one) != 1 || one[0].Schema.LatestSchema != avroV2 {
		t.Fatalf("one topic with its schema: %+v", one)
	}

	// Rates: 30 more messages over 30 s.
	for i := range 3 {
		at := now.Add(time.Duration(i+1) * RateSampleEvery)
		for range 10 {
			if _, err := e.b.Publish("orders", []broker.Message{{Value: wire(1, e.avroOrder(t, 3, "c")), Partition: -1}}); err != nil {
				t.Fatal(err)
			}
		}
		e.reg.sampleRatesAt(e.b, at)
	}
	cat = e.reg.catalogAt(e.b, CatalogOptions{Topic: "orders"}, now.Add(30*time.Second))
	if r := cat[0]; r.RateWindowSeconds != 30 || math.Abs(r.RatePerSecond-1) > 1e-9 {
		t.Errorf("rate: %v/s over %vs, want 1/s over 30s", r.RatePerSecond, r.RateWindowSeconds)
	}
	// The window slides: a minute and a half later, only the last
	// minute's samples count (from the one at 30 s), and nothing was
	// produced since.
	e.reg.sampleRatesAt(e.b, now.Add(80*time.Second))
	cat = e.reg.catalogAt(e.b, CatalogOptions{Topic: "orders"}, now.Add(90*time.Second))
	if r := cat[0]; r.RatePerSecond != 0 || r.RateWindowSeconds != 60 {
		t.Errorf("rate after a quiet minute: %v/s over %vs", r.RatePerSecond, r.RateWindowSeconds)
	}
	e.reg.rates.mu.Lock()
	for id, ss := range e.reg.rates.samples {
		if len(ss) > int(RateWindow/RateSampleEvery)+1 {
			t.Errorf("topic %s keeps %d samples", id, len(ss))
		}
	}
	e.reg.rates.mu.Unlock()
	// A deleted topic's samples go.
	if err := e.b.DeleteTopic("audit"); err != nil {
		t.Fatal(err)
	}
	e.reg.sampleRatesAt(e.b, now.Add(100*time.Second))
	e.reg.rates.mu.Lock()
	if n := len(e.reg.rates.samples); n != 2 {
		t.Errorf("samples of %d topics kept, want 2", n)
	}
	e.reg.rates.mu.Unlock()
}

func TestCatalogDeadLetterOfSubscription(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"orders", "dlq.orders.billing", "dlq.gone", "parked"} {
		if _, err := e.b.CreateTopic(n, catalog.TopicConfig{Durability: catalog.DurabilityDefault}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.b.CreateSubscription("orders", "billing", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("orders", "work", catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{DeadLetterTopic: "parked"}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]EventType{}
	for _, et := range e.reg.Catalog(e.b) {
		got[et.Topic] = et
	}
	if o := got["dlq.orders.billing"].DeadLetterOf; o == nil || *o != (DeadLetterOrigin{"orders", "billing"}) {
		t.Errorf("dlq.orders.billing: %+v", got["dlq.orders.billing"])
	}
	if o := got["parked"].DeadLetterOf; !got["parked"].DeadLetter || o == nil || *o != (DeadLetterOrigin{"orders", "work"}) {
		t.Errorf("parked: %+v", got["parked"])
	}
	if g := got["dlq.gone"]; !g.DeadLetter || g.DeadLetterOf != nil {
		t.Errorf("dlq.gone: %+v", g)
	}
	if g := got["orders"]; g.DeadLetter || len(g.Subscriptions) != 2 || g.Subscriptions[1].Mode != "queue" {
		t.Errorf("orders: %+v", g)
	}
}

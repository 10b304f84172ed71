package saga_test

import (
	"context"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/saga"
)

// A checkout saga of three services; this one runs the payments step.
func ExampleSaga() {
	c, err := client.New("http://127.0.0.1:7070")
	if err != nil {
		return
	}
	defer c.Close()
	charge := func(ctx context.Context, x *saga.Exec) error { return nil } // idempotent on x.Key
	refund := func(ctx context.Context, x *saga.Exec) error { return nil }
	def := saga.Definition{Name: "checkout", ResultTopic: "checkout.results", Steps: []saga.Step{
		{Name: "reserve", Topic: "inventory.saga"},
		{Name: "charge", Topic: "payments.saga", Action: charge, Compensate: refund, Timeout: 30 * time.Second},
		{Name: "ship", Topic: "shipping.saga"},
	}}
	s, err := saga.New(c, def, saga.NewMemoryLedger()) // a table of the service's database in production
	if err != nil {
		return
	}
	ctx := context.Background()
	if err := s.Setup(ctx, "svc", client.TopicConfig{}, client.SubscriptionConfig{MaxDeliveries: 5}); err != nil {
		return
	}
	k, err := c.NewConsumer("payments.saga", "svc", s.Handler(), client.ConsumerConcurrency(4))
	if err != nil {
		return
	}
	_ = k.Run(ctx)
}

package handle_test

import (
	"context"
	"errors"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/handle"
)

var errMalformed = errors.New("malformed order")

func charge(ctx context.Context, m *client.Message) error {
	if len(m.Value) == 0 {
		return handle.Permanent(errMalformed) // dead-lettered at once
	}
	return nil // call the payments service with ctx
}

// A consumer whose calls to a payments service pause while it is down.
func ExampleChain() {
	c, err := client.New("http://127.0.0.1:7070")
	if err != nil {
		return
	}
	defer c.Close()
	br := handle.NewBreaker(handle.BreakerConfig{Name: "payments", Failures: 5, OpenFor: 10 * time.Second})
	lim := handle.NewLimiter("payments", 8, nil)
	h := handle.Chain(charge,
		handle.Classify(),
		br.Middleware(),
		lim.Middleware(),
		handle.Timeout(2*time.Second),
		handle.Recover(false),
	)
	k, err := c.NewConsumer("orders", "billing", h, client.ConsumerConcurrency(8), client.ConsumerShutdownTimeout(5*time.Second))
	if err != nil {
		return
	}
	_ = k.Run(context.Background())
}

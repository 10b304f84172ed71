package client_test

import (
	"context"
	"errors"
	"testing"

	"github.com/spoolmq/spool/client"
)

// TestIntegrationPublishLimits: the SDK never sends a request over the
// server's limits (10,000 messages and 100,000 headers per request, 1,000
// headers per message): the producer splits its batches, Publish and
// options refuse what cannot be sent.
func TestIntegrationPublishLimits(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "t", client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewProducer("t", client.ProducerMaxBatchMessages(10_001)); !errors.Is(err, client.ErrInvalidOption) {
		t.Errorf("batch of 10,001 messages: %v", err)
	}

	// 50 headers a message: a batch of 10,000 messages would carry 500,000.
	p, err := c.NewProducer("t", client.ProducerMaxBatchMessages(10_000), client.ProducerMaxBatchBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	hs := make([]client.Header, 50)
	for i := range hs {
		hs[i] = client.Header{Key: "h"}
	}
	const n = 12_000
	futs := make([]*client.Future, n)
	for i := range futs {
		futs[i] = p.Send(ctx, client.Message{Headers: hs})
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range futs {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}

	many := make([]client.Message, 10_001)
	if _, err := c.Publish(ctx, "t", many...); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("Publish of 10,001 messages: %v", err)
	}
	if rs, err := c.Publish(ctx, "t", many[1:]...); err != nil || len(rs) != 10_000 {
		t.Errorf("Publish of 10,000 messages: %d results, %v", len(rs), err)
	}
	if _, err := c.Publish(ctx, "t", client.Message{Headers: make([]client.Header, 1001)}); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("1,001 headers: %v", err)
	}
	withHeaders := make([]client.Message, 101)
	for i := range withHeaders {
		withHeaders[i].Headers = make([]client.Header, 1000)
	}
	if _, err := c.Publish(ctx, "t", withHeaders...); !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("101,000 headers: %v", err)
	}
	if _, err := c.Publish(ctx, "t", withHeaders[1:]...); err != nil {
		t.Errorf("100,000 headers: %v", err)
	}
}

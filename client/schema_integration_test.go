package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/schemaserde"
	"github.com/spoolmq/spool/internal/spooltest"
)

type orderRecord struct {
	ID   int64  `avro:"id"`
	Item string `avro:"item"`
}

// TestIntegrationSchemaValidation: the SDK's Publish and Producer (the
// batch form) against topics bound to a subject, in both modes.
func TestIntegrationSchemaValidation(t *testing.T) {
	s := spooltest.StartServer(t)
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg, err := schemaserde.NewRegistry(s.Server().SchemaRegistryAddr())
	if err != nil {
		t.Fatal(err)
	}
	serde, err := schemaserde.NewAvro(reg, "orders-value",
		`{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	good, err := serde.Encode(orderRecord{ID: 1, Item: "book"})
	if err != nil {
		t.Fatal(err)
	}
	for topic, mode := range map[string]client.SchemaMode{"strict": client.SchemaModeReject, "lenient": client.SchemaModeDeadLetter} {
		if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1, SchemaSubject: "orders-value", SchemaMode: mode}); err != nil {
			t.Fatal(err)
		}
	}
	schemaInvalid := func(err error) bool {
		var ce *client.Error
		return errors.As(err, &ce) && ce.Code == client.CodeSchemaInvalid && !ce.Retriable
	}

	if _, err := c.Publish(ctx, "strict", client.Message{Value: good}); err != nil {
		t.Fatalf("valid publish: %v", err)
	}
	if _, err := c.Publish(ctx, "strict", client.Message{Value: good}, client.Message{Value: []byte("nope")}); !schemaInvalid(err) {
		t.Fatalf("invalid publish: %v", err)
	}
	p, err := c.NewProducer("strict")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PublishSync(ctx, client.Message{Value: good}); err != nil {
		t.Fatalf("producer, valid: %v", err)
	}
	if _, err := p.PublishSync(ctx, client.Message{Value: []byte("nope")}); !schemaInvalid(err) {
		t.Fatalf("producer, invalid: %v", err)
	}
	p.Close(ctx)

	res, err := c.Publish(ctx, "lenient", client.Message{Value: good}, client.Message{Value: []byte("nope")}, client.Message{Value: good})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].DeadLettered || !res[1].DeadLettered || res[2].DeadLettered {
		t.Fatalf("results %+v", res)
	}
	lp, err := c.NewProducer("lenient")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lp.PublishSync(ctx, client.Message{Value: []byte("nope")}); err == nil {
		// A batch whose every record is invalid is dead-lettered and refused.
		t.Fatal("producer batch of one invalid message was accepted")
	}
	if _, err := lp.PublishSync(ctx, client.Message{Value: good}); err != nil {
		t.Fatalf("producer after a dead-lettered batch: %v", err)
	}
	lp.Close(ctx)
	count := func(topic string) int {
		n := 0
		for _, err := range c.ReadTopic(ctx, topic, client.ReadFrom(client.Earliest()), client.ReadCount(100)) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	if got := count("lenient"); got != 3 {
		t.Fatalf("lenient holds %d messages, want 3", got)
	}
	if got := count("dlq.lenient"); got != 2 {
		t.Fatalf("dlq.lenient holds %d messages, want 2", got)
	}
}

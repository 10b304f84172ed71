package schemaserde_test

import (
	"context"
	"fmt"
	"log"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/schemaserde"
)

// These examples need a running server (`spool serve`), so they have no
// Output lines: they compile and document, they are not run.

// Order is a value of the Avro schema orderSchemaV1.
type Order struct {
	ID    int64   `avro:"id"`
	Total float64 `avro:"total"`
}

const orderSchemaV1 = `{
  "type": "record", "name": "Order", "namespace": "com.acme",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "total", "type": "double"}
  ]
}`

func Example() {
	ctx := context.Background()
	reg, err := schemaserde.NewRegistry("http://127.0.0.1:8081")
	if err != nil {
		log.Fatal(err)
	}
	// The schema is registered under "orders-value" at the first Encode.
	orders, err := schemaserde.NewAvro(reg, "orders-value", orderSchemaV1)
	if err != nil {
		log.Fatal(err)
	}
	mustEncode := func(v any) []byte {
		b, err := orders.Encode(v)
		if err != nil {
			log.Fatal(err)
		}
		return b
	}

	c, err := client.New(client.DefaultAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p, err := c.NewProducer("orders")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.PublishSync(ctx, client.Message{
		Key:   []byte("customer-42"),
		Value: mustEncode(Order{ID: 1, Total: 12.5}),
	}); err != nil {
		log.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		log.Fatal(err)
	}

	// Reading back: each message's schema id says which schema wrote it.
	for m, err := range c.ReadTopic(ctx, "orders", client.ReadCount(1)) {
		if err != nil {
			log.Fatal(err)
		}
		var o Order
		if err := orders.Decode(m.Value, &o); err != nil {
			log.Fatal(err)
		}
		fmt.Println(o.ID, o.Total)
	}
}

func ExampleNewJSON() {
	reg, err := schemaserde.NewRegistry("http://127.0.0.1:8081")
	if err != nil {
		log.Fatal(err)
	}
	payments, err := schemaserde.NewJSON(reg, "payments-value", `{
	  "type": "object",
	  "properties": {"amount": {"type": "number", "minimum": 0}},
	  "required": ["amount"]
	}`, schemaserde.Validate())
	if err != nil {
		log.Fatal(err)
	}
	// Fails before anything is sent: the amount is negative.
	if _, err := payments.Encode(map[string]any{"amount": -1}); err != nil {
		fmt.Println(err)
	}
}

func ExampleSerde_ID() {
	ctx := context.Background()
	reg, err := schemaserde.NewRegistry("http://127.0.0.1:8081")
	if err != nil {
		log.Fatal(err)
	}
	// Fail at start-up, not at the first message, if the schema is not
	// registered (LookupSchema never registers it).
	orders, err := schemaserde.NewAvro(reg, "orders-value", orderSchemaV1, schemaserde.LookupSchema())
	if err != nil {
		log.Fatal(err)
	}
	id, err := orders.ID(ctx)
	if schemaserde.ErrorCode(err) == schemaserde.CodeSubjectNotFound {
		log.Fatal("register the orders schema first")
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Println("writing with schema", id)
}

package outbox_test

import (
	"context"
	"database/sql"
	"log"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/outbox"
)

// An order is paid and the event saying so is written in the same
// transaction; a relay publishes it once the transaction commits.
func Example() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://app@127.0.0.1:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	if err := outbox.Migrate(ctx, db, outbox.Postgres); err != nil {
		log.Fatal(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE orders SET state = 'paid' WHERE id = $1", "o-42"); err != nil {
		log.Fatal(err)
	}
	err = outbox.Write(ctx, tx, outbox.Event{
		Topic: "orders", Aggregate: "o-42", Value: []byte(`{"type":"OrderPaid","id":"o-42"}`),
		Headers: []client.Header{{Key: "type", Value: []byte("OrderPaid")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}

	// The relay, in any number of the service's instances.
	c, err := client.New("http://127.0.0.1:7070")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	r, err := outbox.NewRelay(db, c, outbox.RelayConfig{
		Dialect: outbox.Postgres,
		OnPark:  func(p outbox.Parked) { log.Printf("event %s parked: %v", p.Event.ID, p.Err) },
	})
	if err != nil {
		log.Fatal(err)
	}
	go r.Run(ctx) // until ctx is cancelled
}

package idem_test

import (
	"context"
	"database/sql"
	"log"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/idem"
)

// A consumer whose database writes happen once per message, however often
// it is delivered.
func Example() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://app@127.0.0.1:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	if err := idem.Migrate(ctx, db, idem.Postgres, ""); err != nil {
		log.Fatal(err)
	}
	h, err := idem.Handler(db, idem.Config{Dialect: idem.Postgres, Consumer: "billing"},
		func(ctx context.Context, tx *sql.Tx, m *client.Message) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO invoices (order_event) VALUES ($1)", m.Value)
			return err
		})
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("http://127.0.0.1:7070")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	k, err := c.NewConsumer("orders", "billing", h)
	if err != nil {
		log.Fatal(err)
	}
	if err := k.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

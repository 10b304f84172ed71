// Package outbox is the transactional outbox for Spool: a service writes
// the events it publishes into an outbox table in the same database
// transaction as the business data they describe, and a Relay publishes
// them to Spool afterwards. An event is published if and only if its
// transaction commits, exactly once on the topic, in order per aggregate —
// across relay crashes, broker restarts and database failures.
//
// Two databases are supported through database/sql: PostgreSQL with
// github.com/jackc/pgx/v5/stdlib (the relay is woken by LISTEN/NOTIFY)
// and SQLite with modernc.org/sqlite (the relay polls).
//
//	outbox.Migrate(ctx, db, outbox.Postgres) // once: the table, its indexes, its trigger
//
//	tx, _ := db.BeginTx(ctx, nil)
//	tx.ExecContext(ctx, "UPDATE orders SET state = 'paid' WHERE id = $1", id)
//	outbox.Write(ctx, tx, outbox.Event{Topic: "orders", Aggregate: id, Value: payload})
//	tx.Commit()
//
//	r, _ := outbox.NewRelay(db, c, outbox.RelayConfig{Dialect: outbox.Postgres})
//	go r.Run(ctx)
//
// Each event carries an ID (random unless given) that the relay publishes
// as the message ID: a relay that dies after publishing but before marking
// its rows publishes them again, and the topic's de-duplication window
// stores them once. Events that the broker refuses (missing topic, message
// too large, bad headers) are retried with a backoff and then parked in
// the table with the reason (Parked, RelayConfig.OnPark, Requeue); see
// Relay for the guarantees and docs/toolkit.md, "Transactional outbox",
// for the table, the tuning and the recommended SQLite settings.
//
// This package, like client, imports none of Spool's internal packages.
package outbox

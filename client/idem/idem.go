// Package idem makes Spool consumers idempotent with a database/sql
// database (PostgreSQL or SQLite): a handler's effects and the record that
// the message was processed commit in one transaction, so a message
// delivered again — redelivered after a nack, a lapsed lease or a consumer
// crash between the commit and the acknowledgement, or published twice —
// has its effects applied once.
//
//	h, err := idem.Handler(db, idem.Config{Dialect: idem.Postgres, Consumer: "billing"},
//		func(ctx context.Context, tx *sql.Tx, m *client.Message) error {
//			_, err := tx.ExecContext(ctx, "UPDATE accounts SET …")
//			return err
//		})
//	…
//	k, err := c.NewConsumer("orders", "billing", h)
//
// The processed-keys table (Migrate creates it; DDL returns its
// statements) has the primary key (consumer, msg_key). Keys are the
// message's ID by default (see MessageKey); HeaderKey uses a header the
// publisher sets, such as an event id, to catch the same event published
// twice outside the topic's de-duplication window. Prune deletes old keys.
//
// See docs/toolkit.md, "Idempotent consumer (database/sql)".
package idem

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/sqldialect"
)

// Dialect is the SQL database the processed-keys table lives in.
type Dialect = sqldialect.Dialect

// The dialects.
const (
	Postgres = sqldialect.Postgres
	SQLite   = sqldialect.SQLite
)

// DefaultTable is the processed-keys table's name unless another is
// chosen.
const DefaultTable = "spool_processed"

func check(d Dialect, table string) error {
	if err := d.Check("idem"); err != nil {
		return err
	}
	return sqldialect.CheckTable("idem", table)
}

// KeyFunc returns the key a message is recorded under; an error fails the
// delivery (nacked; wrap it with client.Reject to dead-letter instead).
type KeyFunc func(m *client.Message) (string, error)

// MessageKey is the default KeyFunc, the identity the broker's own
// processed-key ledger uses (docs/idempotent-consumer.md): the original's
// id a redriven dead letter carries (header spool.original-id), else the
// message's ID (the idempotency id its publisher gave or the client
// chose, kept by every redelivery), else, for messages stored without one
// (a Producer's batches), its position "spool:<topic>/<partition>/<offset>"
// — which a redriven copy of it carries as its spool.original-id.
func MessageKey(m *client.Message) (string, error) {
	if v, ok := m.HeaderValue(originalIDHeader); ok && len(v) > 0 {
		return string(v), nil
	}
	if m.ID != "" {
		return m.ID, nil
	}
	return "spool:" + m.Topic + "/" + strconv.Itoa(int(m.Partition)) + "/" + strconv.FormatInt(m.Offset, 10), nil
}

// originalIDHeader names, on a dead letter and its redriven copies, the
// id of the message that was dead-lettered.
const originalIDHeader = "spool.original-id"

// HeaderKey returns a KeyFunc taking the value of the first header named
// name; a message without it fails.
func HeaderKey(name string) KeyFunc {
	return func(m *client.Message) (string, error) {
		v, ok := m.HeaderValue(name)
		if !ok || len(v) == 0 {
			return "", fmt.Errorf("idem: message %s/%d/%d has no %q header to recognise it by", m.Topic, m.Partition, m.Offset, name)
		}
		return string(v), nil
	}
}

// TxHandler handles a message inside the transaction that records it.
type TxHandler func(ctx context.Context, tx *sql.Tx, m *client.Message) error

// Config configures Handler and Prune.
type Config struct {
	// Dialect is the database's; required.
	Dialect Dialect
	// Table is the processed-keys table; default DefaultTable.
	Table string
	// Consumer names the handler's keys (the subscription's name, say):
	// consumers sharing a table keep apart; required.
	Consumer string
	// Key chooses a message's key; default MessageKey.
	Key KeyFunc
	// TxOptions are the transaction's options (isolation level); nil: the
	// database's defaults.
	TxOptions *sql.TxOptions
}

func (c *Config) fill() error {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if err := check(c.Dialect, c.Table); err != nil {
		return err
	}
	if c.Consumer == "" {
		return errors.New("idem: Config.Consumer is required")
	}
	if c.Key == nil {
		c.Key = MessageKey
	}
	return nil
}

// Handler returns a client.Handler that, for each message, begins a
// transaction on db, inserts the message's key into the processed-keys
// table and:
//   - if the key was there already (the message was processed before),
//     rolls back, does not call h and returns nil: the delivery is
//     acknowledged;
//   - otherwise calls h in the transaction and commits if it returns nil;
//     if h fails (or the commit does), rolls back — the key is not
//     recorded, h's writes are undone — and returns the error, so the
//     message is delivered again.
//
// Two deliveries of one key at once (a lease that lapsed while the first
// still runs) serialize on the key's row: the second waits for the first
// transaction and then skips if it committed. h must do its database work
// through tx; effects outside the database are not covered.
func Handler(db *sql.DB, cfg Config, h TxHandler) (client.Handler, error) {
	if db == nil || h == nil {
		return nil, errors.New("idem: Handler needs a database and a handler")
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	insert := `INSERT INTO ` + cfg.Table + ` (consumer, msg_key, processed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
	return func(ctx context.Context, m *client.Message) error {
		key, err := cfg.Key(m)
		if err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, cfg.TxOptions)
		if err != nil {
			return fmt.Errorf("idem: begin: %w", err)
		}
		defer tx.Rollback()
		res, err := tx.ExecContext(ctx, insert, cfg.Consumer, key, time.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("idem: record key %q: %w", key, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("idem: record key %q: %w", key, err)
		}
		if n == 0 {
			return nil // processed before
		}
		if err := h(ctx, tx, m); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("idem: commit key %q: %w", key, err)
		}
		return nil
	}, nil
}

// DDL returns the statements Migrate runs (the same for both dialects):
// the table (consumer, msg_key, processed_at in Unix milliseconds; primary
// key (consumer, msg_key)) and an index on processed_at for Prune.
func DDL(d Dialect, table string) ([]string, error) {
	if err := check(d, table); err != nil {
		return nil, err
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + table + ` (
	consumer TEXT NOT NULL,
	msg_key TEXT NOT NULL,
	processed_at BIGINT NOT NULL,
	PRIMARY KEY (consumer, msg_key)
)`,
		`CREATE INDEX IF NOT EXISTS ` + table + `_processed_at ON ` + table + ` (processed_at)`,
	}, nil
}

// Migrate creates the processed-keys table (DefaultTable, or table if not
// empty) and its index if they do not exist.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, table string) error {
	if table == "" {
		table = DefaultTable
	}
	stmts, err := DDL(d, table)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("idem: migrate %s: %w", table, err)
	}
	defer tx.Rollback()
	if d == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('spool_idem_migrate'))`); err != nil {
			return fmt.Errorf("idem: migrate %s: lock: %w", table, err)
		}
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("idem: migrate %s: %w", table, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("idem: migrate %s: commit: %w", table, err)
	}
	return nil
}

// Prune deletes cfg.Consumer's keys recorded more than ttl ago and returns
// how many. A message delivered again after its key was pruned is handled
// again: keep keys longer than any redelivery can come (the
// subscription's retries and dead-letter redrives, and the topic's
// retention for resets and replays).
func Prune(ctx context.Context, db *sql.DB, cfg Config, ttl time.Duration) (int64, error) {
	if err := cfg.fill(); err != nil {
		return 0, err
	}
	if ttl <= 0 {
		return 0, fmt.Errorf("idem: Prune: ttl %v must be positive", ttl)
	}
	res, err := db.ExecContext(ctx, `DELETE FROM `+cfg.Table+` WHERE consumer = $1 AND processed_at < $2`,
		cfg.Consumer, time.Now().Add(-ttl).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("idem: prune %s: %w", cfg.Table, err)
	}
	return res.RowsAffected()
}

// PruneEvery runs Prune every interval until ctx ends (then returns nil);
// a failed Prune is retried at the next tick and reported to onError when
// not nil.
func PruneEvery(ctx context.Context, db *sql.DB, cfg Config, ttl, interval time.Duration, onError func(error)) error {
	if err := cfg.fill(); err != nil {
		return err
	}
	if ttl <= 0 || interval <= 0 {
		return fmt.Errorf("idem: PruneEvery: ttl %v and interval %v must be positive", ttl, interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := Prune(ctx, db, cfg, ttl); err != nil && ctx.Err() == nil && onError != nil {
			onError(err)
		}
	}
}

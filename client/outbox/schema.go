package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/spoolmq/spool/client/sqldialect"
)

// Dialect is the SQL database the outbox table lives in. With
// PostgreSQL through pgx the relay also LISTENs (with another driver it
// polls).
type Dialect = sqldialect.Dialect

// The dialects.
const (
	Postgres = sqldialect.Postgres
	SQLite   = sqldialect.SQLite
)

// DefaultTable is the outbox table's name unless another is chosen.
const DefaultTable = "spool_outbox"

func checkTable(table string) error { return sqldialect.CheckTable("outbox", table) }

// DDL returns the statements Migrate runs for table in dialect d, for
// those who manage their schema themselves. The table:
//
//	id          the insertion order (identity / AUTOINCREMENT)
//	event_id    the message ID published (the broker's de-duplication key)
//	aggregate   the ordering unit
//	topic, msg_key, msg_value, headers (JSON), subject: the message
//	created_at  when the row was written
//	state       0 pending, 1 sent (RelayConfig.KeepSent), 2 parked
//	attempts, retry_at (Unix ms), last_error: failed publishes
//	done_at     when it was sent or parked
//
// with partial indexes over the pending rows (by id; by aggregate and
// id; those refused before, by aggregate and id). On PostgreSQL a statement-level trigger NOTIFYs the channel named
// after the table on every insert; SQLite also gets the relays' lease
// table, <table>_lease.
func DDL(d Dialect, table string) ([]string, error) {
	if err := d.Check("outbox"); err != nil {
		return nil, err
	}
	if err := checkTable(table); err != nil {
		return nil, err
	}
	var stmts []string
	if d == Postgres {
		stmts = []string{`CREATE TABLE IF NOT EXISTS ` + table + ` (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id TEXT NOT NULL,
	aggregate TEXT NOT NULL,
	topic TEXT NOT NULL,
	msg_key BYTEA,
	msg_value BYTEA,
	headers TEXT,
	subject TEXT NOT NULL DEFAULT '',
	created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
	state SMALLINT NOT NULL DEFAULT 0,
	attempts INTEGER NOT NULL DEFAULT 0,
	retry_at BIGINT NOT NULL DEFAULT 0,
	last_error TEXT,
	done_at TIMESTAMPTZ
)`,
			`CREATE OR REPLACE FUNCTION spool_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify(TG_TABLE_NAME, '');
	RETURN NULL;
END
$$`,
			`DROP TRIGGER IF EXISTS ` + table + `_notify ON ` + table,
			`CREATE TRIGGER ` + table + `_notify AFTER INSERT ON ` + table + ` FOR EACH STATEMENT EXECUTE FUNCTION spool_outbox_notify()`,
		}
	} else {
		stmts = []string{`CREATE TABLE IF NOT EXISTS ` + table + ` (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id TEXT NOT NULL,
	aggregate TEXT NOT NULL,
	topic TEXT NOT NULL,
	msg_key BLOB,
	msg_value BLOB,
	headers TEXT,
	subject TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
	state INTEGER NOT NULL DEFAULT 0,
	attempts INTEGER NOT NULL DEFAULT 0,
	retry_at INTEGER NOT NULL DEFAULT 0,
	last_error TEXT,
	done_at TEXT
)`,
			`CREATE TABLE IF NOT EXISTS ` + table + `_lease (
	name TEXT PRIMARY KEY,
	owner TEXT NOT NULL,
	expires_at INTEGER NOT NULL
)`,
		}
	}
	stmts = append(stmts,
		`CREATE INDEX IF NOT EXISTS `+table+`_pending ON `+table+` (id) WHERE state = 0`,
		`CREATE INDEX IF NOT EXISTS `+table+`_pending_agg ON `+table+` (aggregate, id) WHERE state = 0`,
		`CREATE INDEX IF NOT EXISTS `+table+`_refused ON `+table+` (aggregate, id) WHERE state = 0 AND retry_at > 0`,
	)
	return stmts, nil
}

// Migrate creates the outbox table (DefaultTable, or the one Table names),
// its indexes and, on PostgreSQL, its NOTIFY trigger, if they do not
// exist; see DDL. It runs in one transaction (on PostgreSQL under an
// advisory lock, so that services starting together do not race).
func Migrate(ctx context.Context, db *sql.DB, d Dialect, opts ...Option) error {
	o := options{table: DefaultTable}
	for _, opt := range opts {
		opt(&o)
	}
	stmts, err := DDL(d, o.table)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: migrate %s: %w", o.table, err)
	}
	defer tx.Rollback()
	if d == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('spool_outbox_migrate'))`); err != nil {
			return fmt.Errorf("outbox: migrate %s: lock: %w", o.table, err)
		}
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			first, _, _ := strings.Cut(s, "\n")
			return fmt.Errorf("outbox: migrate %s: %s: %w", o.table, first, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: migrate %s: commit: %w", o.table, err)
	}
	return nil
}

// Option changes Migrate's table.
type Option func(*options)

type options struct{ table string }

// Table names the outbox table instead of DefaultTable.
func Table(name string) Option { return func(o *options) { o.table = name } }

// errNotLeader: another relay holds the SQLite lease.
var errNotLeader = errors.New("outbox: another relay holds the lease")

// Requeue makes the parked events of the outbox table (DefaultTable, or
// the one Table names) pending again, their attempts forgotten, and
// returns how many it requeued: once their cause is fixed (the topic
// created, a limit raised). They are published after the events of their
// aggregates published meanwhile. last_error keeps the last reason.
func Requeue(ctx context.Context, db *sql.DB, d Dialect, opts ...Option) (int64, error) {
	o := options{table: DefaultTable}
	for _, opt := range opts {
		opt(&o)
	}
	if err := d.Check("outbox"); err != nil {
		return 0, err
	}
	if err := checkTable(o.table); err != nil {
		return 0, err
	}
	res, err := db.ExecContext(ctx, `UPDATE `+o.table+` SET state = 0, attempts = 0, retry_at = 0, done_at = NULL WHERE state = 2`)
	if err != nil {
		return 0, fmt.Errorf("outbox: requeue parked events of %s: %w", o.table, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("outbox: requeue parked events of %s: %w", o.table, err)
	}
	return n, nil
}

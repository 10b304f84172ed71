package saga

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/spoolmq/spool/client/sqldialect"
)

// SQLLedger is a Ledger in a database/sql table (PostgreSQL or SQLite
// 3.24+), shared by every instance of a service: it survives their crashes
// and restarts, which a MemoryLedger does not. MigrateSQLLedger creates
// its table.
type SQLLedger struct {
	db                *sql.DB
	claim, get, table string
}

// DefaultLedgerTable is the SQLLedger's table unless another is chosen.
const DefaultLedgerTable = "spool_saga_ledger"

// SQLLedgerDDL returns the statement that creates the ledger's table.
func SQLLedgerDDL(d sqldialect.Dialect, table string) (string, error) {
	if err := d.Check("saga"); err != nil {
		return "", err
	}
	if err := sqldialect.CheckTable("saga", table); err != nil {
		return "", err
	}
	return "CREATE TABLE IF NOT EXISTS " + table + " (k TEXT PRIMARY KEY, v TEXT NOT NULL)", nil
}

// MigrateSQLLedger creates the ledger's table in db if it is missing.
func MigrateSQLLedger(ctx context.Context, db *sql.DB, d sqldialect.Dialect, table string) error {
	ddl, err := SQLLedgerDDL(d, table)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("saga: create the ledger table %s: %w", table, err)
	}
	return nil
}

// NewSQLLedger returns the ledger kept in table (see MigrateSQLLedger) of
// db, a PostgreSQL or SQLite database.
func NewSQLLedger(db *sql.DB, d sqldialect.Dialect, table string) (*SQLLedger, error) {
	if _, err := SQLLedgerDDL(d, table); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("saga: NewSQLLedger: no database")
	}
	return &SQLLedger{
		db:    db,
		table: table,
		// One statement each, the same for both: the insert is atomic
		// (the first of concurrent claims wins, the others do nothing),
		// and the read then returns the winner's value.
		claim: "INSERT INTO " + table + " (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING",
		get:   "SELECT v FROM " + table + " WHERE k = $1",
	}, nil
}

// Claim implements Ledger.
func (l *SQLLedger) Claim(ctx context.Context, key, value string) (string, error) {
	if _, err := l.db.ExecContext(ctx, l.claim, key, value); err != nil {
		return "", fmt.Errorf("saga: ledger %s: claim %q: %w", l.table, key, err)
	}
	v, ok, err := l.Get(ctx, key)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("saga: ledger %s: %q claimed but not found (was the row deleted?)", l.table, key)
	}
	return v, nil
}

// Get implements Ledger.
func (l *SQLLedger) Get(ctx context.Context, key string) (string, bool, error) {
	var v string
	switch err := l.db.QueryRowContext(ctx, l.get, key).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("saga: ledger %s: get %q: %w", l.table, key, err)
	}
	return v, true, nil
}

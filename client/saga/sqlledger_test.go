package saga_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/spoolmq/spool/client/saga"
	"github.com/spoolmq/spool/client/sqldialect"
)

// ledgerDB is a database for SQLLedger tests: open returns a new *sql.DB
// on it each time (another process's connection pool).
type ledgerDB struct {
	dialect sqldialect.Dialect
	open    func(t *testing.T) *sql.DB
	table   string
}

func forEachDB(t *testing.T, f func(t *testing.T, d ledgerDB)) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	table := "saga_ledger_" + hex.EncodeToString(b[:])
	t.Run("sqlite", func(t *testing.T) {
		dsn := "file:" + filepath.Join(t.TempDir(), "svc.db") + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)"
		f(t, ledgerDB{dialect: sqldialect.SQLite, table: table, open: func(t *testing.T) *sql.DB { return openDB(t, "sqlite", dsn) }})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := os.Getenv("SPOOLTEST_POSTGRES")
		if dsn == "" {
			t.Skip("SPOOLTEST_POSTGRES is not set: no PostgreSQL to test against (scripts/postgres.sh starts one)")
		}
		f(t, ledgerDB{dialect: sqldialect.Postgres, table: table, open: func(t *testing.T) *sql.DB { return openDB(t, "pgx", dsn) }})
	})
}

func openDB(t *testing.T, driver, dsn string) *sql.DB {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newLedger(t *testing.T, d ledgerDB, db *sql.DB) *saga.SQLLedger {
	l, err := saga.NewSQLLedger(db, d.dialect, d.table)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Concurrent claims of one key, from two connection pools, agree on one
// winner; what is claimed is there for a later pool; an unknown key is
// absent.
func TestSQLLedger(t *testing.T) {
	forEachDB(t, func(t *testing.T, d ledgerDB) {
		ctx := context.Background()
		first := d.open(t)
		if err := saga.MigrateSQLLedger(ctx, first, d.dialect, d.table); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { first.Exec("DROP TABLE IF EXISTS " + d.table) })
		ledgers := []*saga.SQLLedger{newLedger(t, d, first), newLedger(t, d, d.open(t))}
		for k := range 20 {
			key := "saga/def/r" + string(rune('a'+k)) + "/1/end"
			var wg sync.WaitGroup
			got := make([]string, 8)
			for i := range got {
				wg.Go(func() {
					v, err := ledgers[i%2].Claim(ctx, key, "value-"+string(rune('0'+i)))
					if err != nil {
						t.Error(err)
					}
					got[i] = v
				})
			}
			wg.Wait()
			for _, v := range got[1:] {
				if v != got[0] || !strings.HasPrefix(v, "value-") {
					t.Fatalf("claims of %s answered %v: want one winner", key, got)
				}
			}
			later := newLedger(t, d, d.open(t))
			if v, ok, err := later.Get(ctx, key); v != got[0] || !ok || err != nil {
				t.Errorf("Get(%s) from another pool: %q, %v, %v; want %q", key, v, ok, err, got[0])
			}
		}
		if v, ok, err := ledgers[0].Get(ctx, "missing"); v != "" || ok || err != nil {
			t.Errorf("Get(missing): %q, %v, %v", v, ok, err)
		}
	})
}

func TestSQLLedgerRefusesBadConfig(t *testing.T) {
	db := openDB(t, "sqlite", "file:"+filepath.Join(t.TempDir(), "x.db"))
	for _, c := range []struct {
		d     sqldialect.Dialect
		table string
		want  string
	}{
		{0, "t", "unknown dialect"},
		{sqldialect.SQLite, "t; DROP TABLE x", "plain SQL identifier"},
		{sqldialect.Postgres, "", "plain SQL identifier"},
	} {
		if _, err := saga.NewSQLLedger(db, c.d, c.table); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewSQLLedger(%v, %q): %v, want %q", c.d, c.table, err, c.want)
		}
	}
	if _, err := saga.NewSQLLedger(nil, sqldialect.SQLite, "t"); err == nil {
		t.Error("NewSQLLedger without a database: no error")
	}
}

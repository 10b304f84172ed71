// Package sqldialect names the SQL databases the SDK's database/sql
// helpers (client/outbox, client/idem) support, and checks the table
// names they write into their statements.
package sqldialect

import (
	"fmt"
	"regexp"
	"strconv"
)

// Dialect is an SQL database.
type Dialect int

const (
	// Postgres is PostgreSQL (github.com/jackc/pgx/v5/stdlib, the "pgx"
	// driver of database/sql, or another taking $1-style parameters).
	Postgres Dialect = iota + 1
	// SQLite is SQLite 3.24 or later (modernc.org/sqlite, the "sqlite"
	// driver, or another taking $1-style parameters).
	SQLite
)

// String returns "postgres" or "sqlite".
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case SQLite:
		return "sqlite"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// Check returns an error naming pkg unless d is Postgres or SQLite.
func (d Dialect) Check(pkg string) error {
	if d != Postgres && d != SQLite {
		return fmt.Errorf("%s: unknown dialect %v (Postgres or SQLite)", pkg, d)
	}
	return nil
}

// A table name is one plain SQL identifier: it is written into the
// statements, so nothing else is accepted.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,50}$`)

// CheckTable returns an error naming pkg unless table is a plain SQL
// identifier (letters, digits, _; at most 51 characters).
func CheckTable(pkg, table string) error {
	if !identRE.MatchString(table) {
		return fmt.Errorf("%s: table name %q: want a plain SQL identifier (letters, digits, _; at most 51 characters)", pkg, table)
	}
	return nil
}

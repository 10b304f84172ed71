package sqldialect

import (
	"strings"
	"testing"
)

func TestChecks(t *testing.T) {
	if Postgres.String() != "postgres" || SQLite.String() != "sqlite" || Dialect(9).String() != "Dialect(9)" {
		t.Errorf("names: %v %v %v", Postgres, SQLite, Dialect(9))
	}
	if Postgres.Check("p") != nil || SQLite.Check("p") != nil {
		t.Error("a known dialect refused")
	}
	if err := Dialect(0).Check("outbox"); err == nil || !strings.HasPrefix(err.Error(), "outbox: unknown dialect") {
		t.Errorf("the zero dialect: %v", err)
	}
	for _, ok := range []string{"spool_outbox", "_t", "T9", strings.Repeat("a", 51)} {
		if err := CheckTable("p", ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "9t", "a-b", "a b", "t;drop table x", `"t"`, "s.t", strings.Repeat("a", 52)} {
		if err := CheckTable("idem", bad); err == nil || !strings.HasPrefix(err.Error(), "idem: table name") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

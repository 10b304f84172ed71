package bench

import (
	"context"
	"encoding/binary"
	"testing"
	"time"
)

// TestSchemaValues checks the benchmark's values: the size asked for, the
// wire-format header, all distinct.
func TestSchemaValues(t *testing.T) {
	for _, f := range SchemaFormats {
		for _, id := range []int{1, 2, 7, 1000} {
			vs, err := SchemaValues(f, id, 256, 4096)
			if err != nil {
				t.Fatal(f, err)
			}
			seen := map[string]bool{}
			for i, v := range vs {
				if len(v) != 256 || v[0] != 0 || binary.BigEndian.Uint32(v[1:5]) != uint32(id) {
					t.Fatalf("%s value %d: %d bytes, header % x", f, i, len(v), v[:5])
				}
				seen[string(v)] = true
			}
			if len(seen) != len(vs) {
				t.Errorf("%s: %d distinct values of %d", f, len(seen), len(vs))
			}
		}
	}
}

// TestSchemaSmoke runs a tiny schema benchmark against a server in this
// process: every validated publish must pass validation (the run fails
// otherwise); real runs are `spool bench schema`.
func TestSchemaSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	rep, err := RunSchema(context.Background(), SchemaConfig{Start: InProcessServer(), Dir: t.TempDir(), Formats: SchemaFormats,
		Paths: SchemaPaths, Size: 256, Messages: 2000, Rounds: 1, Lookups: []int{1, 2}, LookupDuration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Publish) != 8 || len(rep.Lookups) != 4 { // 1 and 2 goroutines; 1 and 4 pipelined connections
		t.Fatalf("report %+v", rep)
	}
	for _, r := range append([]SchemaResult(nil), rep.Publish...) {
		if r.Rate <= 0 {
			t.Errorf("empty result %+v", r)
		}
	}
	for _, r := range rep.Lookups {
		if r.Rate <= 0 {
			t.Errorf("empty lookup result %+v", r)
		}
	}
}

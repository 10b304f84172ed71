// Package golden keeps the golden files of persisted records for tests:
// the bytes a record version is stored as, which must never change.
package golden

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "write missing golden files (never rewrites one)")

// Read returns the golden file dir/name. With -update and a non-nil want,
// a missing file is written with want first; an existing one is never
// rewritten: the bytes of a record version never change, so a test that
// fails against its golden file means the encoding changed and stored data
// would be misread — add a version instead (docs/format/state.md).
func Read(t testing.TB, dir, name string, want []byte) []byte {
	t.Helper()
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && *update && want != nil {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return want
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

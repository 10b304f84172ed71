package state

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// A commit whose WAL write fails (fatal for Pebble, which panics) becomes
// an error; the store then refuses every commit, synced or not, with it,
// and Err reports it (/readyz: state_store); reads go on.
func TestFailedCommitIsSticky(t *testing.T) {
	inj := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileWrite) && strings.HasSuffix(op.Path, ".log") {
			return errorfs.ErrInjected
		}
		return nil
	})}
	s, err := Open("db", Options{FS: errorfs.Wrap(vfs.NewMem(), inj), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	commit := func(k string, sync bool) error {
		b := s.NewBatch()
		b.Set([]byte(k), []byte("v"))
		return b.Commit(sync)
	}
	if err := commit("k", true); err != nil || s.Err() != nil {
		t.Fatalf("healthy commit: %v, Err %v", err, s.Err())
	}
	inj.On()
	err = commit("k2", true)
	if err == nil || s.Err() == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("commit with a failing WAL: %v, Err %v", err, s.Err())
	}
	inj.Off()
	for _, sync := range []bool{false, true} {
		if err := commit("k3", sync); err == nil || err.Error() != s.Err().Error() {
			t.Fatalf("commit (sync %v) after the failure: %v", sync, err)
		}
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("read after the failure: %q %v", v, err)
	}
	s.Close()
}

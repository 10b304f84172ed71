package server

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func oneBatch(t *testing.T) []byte {
	b, err := batch.Encode(nil, batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]batch.Record{{Value: []byte("hello")}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStartRecoversPartitionsAndShutsDown(t *testing.T) {
	dir := t.TempDir()
	// A partition log left by a previous run that crashed: no clean seal.
	mem := vfs.NewMemFS()
	pdir := filepath.Join(dir, "topics", "orders", "0")
	l, _, err := seglog.Open(mem, pdir, seglog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.Append(oneBatch(t)); err != nil {
			t.Fatal(err)
		}
	}
	crashed := mem.CrashClone(vfs.CrashOptions{})
	l.Close()

	var logs syncBuf
	srv, err := New(Config{DataDir: dir, FS: crashed, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	out := logs.String()
	if !strings.Contains(out, "recovered partition") || !strings.Contains(out, "topic=orders") || !strings.Contains(out, "end=3") {
		t.Fatalf("recovery not logged:\n%s", out)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// After a clean shutdown the next start trusts the seal: nothing scanned.
	logs = syncBuf{}
	srv, _ = New(Config{DataDir: dir, FS: crashed, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	if out := logs.String(); !strings.Contains(out, "scanned=0") || !strings.Contains(out, "trusted=1") {
		t.Fatalf("clean restart scanned:\n%s", out)
	}
}

func TestDataDirectoryLock(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(&syncBuf{}, nil))
	a, _ := New(Config{DataDir: dir, Logger: quiet})
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	b, _ := New(Config{DataDir: dir, Logger: quiet})
	if err := b.Start(); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second server on the same directory: %v", err)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("start after the first server stopped: %v", err)
	}
	b.Shutdown(context.Background())
}

func TestCorruptPartitionFailsStart(t *testing.T) {
	dir := t.TempDir()
	mem := vfs.NewMemFS()
	pdir := filepath.Join(dir, "topics", "t", "0")
	if err := mem.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Two segments with a gap between them.
	for _, name := range []string{"00000000000000000000.log", "00000000000000000005.log"} {
		f, err := mem.Create(filepath.Join(pdir, name))
		if err != nil {
			t.Fatal(err)
		}
		b := oneBatch(t)
		if strings.HasPrefix(name, "00000000000000000005") {
			batch.SetBaseOffset(b, 5)
		}
		f.Write(b)
		f.Close()
	}
	srv, _ := New(Config{DataDir: dir, FS: mem, Logger: slog.New(slog.NewTextHandler(&syncBuf{}, nil))})
	err := srv.Start()
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("start with a corrupt partition: %v", err)
	}
}

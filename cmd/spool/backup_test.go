package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/spooltest"
)

// spool backup writes a copy that a server opens with the topic's messages
// and the subscription's committed position.
func TestBackupCommand(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "orders", "--partitions", "2")
	ok(t, srv, "", "sub", "create", "orders", "billing")
	ok(t, srv, "", "sub", "create", "orders", "work", "--mode", "queue")
	ok(t, srv, "a\nb\nc\n", "pub", "orders", "--key", "k")
	ok(t, srv, "", "consume", "orders", "--sub", "billing", "--count", "2")
	ok(t, srv, "", "consume", "orders", "--sub", "work", "--count", "2")
	time.Sleep(200 * time.Millisecond) // queue acknowledgements are saved every 50 ms
	dir := filepath.Join(t.TempDir(), "backup")
	r := ok(t, srv, "", "backup", "--to", dir)
	mustContain(t, "backup", r.stderr, "backup written to "+dir, "2 topics, 3 partitions") // orders and the queue subscription's dead-letter topic
	fails(t, exitError, srv, "", "backup", "--to", dir)                                    // not empty
	fails(t, exitUsage, srv, "", "backup", "--to", "relative/dir")
	fails(t, exitUsage, srv, "", "backup")

	restored := spooltest.StartServer(t, spooltest.Dir(dir)).URL()
	r = ok(t, restored, "", "topic", "read", "orders", "--from", "earliest")
	mustContain(t, "read", r.stdout, "a\nb\nc")
	r = ok(t, restored, "", "consume", "orders", "--sub", "billing", "--count", "1")
	mustContain(t, "consume after restore", r.stdout, "c")
	r = ok(t, restored, "", "sub", "describe", "orders", "billing")
	mustContain(t, "describe", r.stdout, "billing")
	r = ok(t, restored, "", "consume", "orders", "--sub", "work", "--count", "1")
	if r.stdout != "c\n" {
		t.Fatalf("queue subscription after restore delivered %q, want only the message not acknowledged", r.stdout)
	}
	fails(t, 4, restored, "", "consume", "orders", "--sub", "work", "--count", "1", "--timeout", "300ms")
}

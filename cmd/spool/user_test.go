package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

func TestUserCommands(t *testing.T) {
	srv := startServer(t)
	r := ok(t, srv, "correct horse\n", "user", "add", "alice", "--password-stdin")
	if r.stdout != "" || strings.Contains(r.stderr, "correct horse") {
		t.Fatalf("add echoed: %q %q", r.stdout, r.stderr)
	}
	ok(t, srv, "", "user", "add", "ci")
	fails(t, exitError, srv, "x\n", "user", "add", "bob", "--password-stdin") // too short
	fails(t, exitError, srv, "correct horse\n", "user", "add", "alice", "--password-stdin")

	r = ok(t, srv, "", "user", "rotate", "alice", "--expires", "1h")
	tok := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(tok, "spool_") || !strings.Contains(r.stderr, "shown only this once") {
		t.Fatalf("rotate: %q %q", r.stdout, r.stderr)
	}
	r = ok(t, srv, "", "user", "key", "alice")
	tok2 := strings.TrimSpace(r.stdout)
	r = ok(t, srv, "", "user", "list")
	mustContain(t, "list", r.stdout, "alice", "ci", "SCRAM-SHA-256,SCRAM-SHA-512", "active until", "active")
	r = ok(t, srv, "", "user", "list", "-o", "json")
	for _, secret := range []string{tok, tok2, "hash", "salt", "stored_key", "correct horse"} {
		if strings.Contains(r.stdout, secret) {
			t.Fatalf("list shows %q", secret)
		}
	}
	id := strings.Split(strings.TrimPrefix(tok2, "spool_"), "_")[0]
	ok(t, srv, "", "user", "revoke", id)
	mustContain(t, "list", ok(t, srv, "", "user", "list").stdout, "revoked")
	ok(t, srv, "", "user", "rotate", "alice")
	ok(t, srv, "", "user", "delete", "alice")
	fails(t, exitNotFound, srv, "", "user", "delete", "alice")
	fails(t, exitNotFound, srv, "", "user", "rotate", "alice")
	r = ok(t, srv, "", "user", "list")
	if strings.Contains(r.stdout, "alice") {
		t.Fatalf("deleted user listed: %s", r.stdout)
	}
}

func TestAPIKeyAuth(t *testing.T) {
	dir := t.TempDir()
	first := spooltest.StartServer(t, spooltest.Dir(dir))
	srv := first.URL()
	ok(t, srv, "", "user", "add", "ci")
	tok := strings.TrimSpace(ok(t, srv, "", "user", "rotate", "ci").stdout)
	old := strings.TrimSpace(ok(t, srv, "", "user", "key", "ci", "--expires", "1ms").stdout)
	first.Stop()

	s := spooltest.StartServer(t, spooltest.Dir(dir), spooltest.Config(func(c *server.Config) { c.Auth.Enabled = true }))
	srv = s.URL()
	r := fails(t, exitError, srv, "", "topic", "list")
	mustContain(t, "no key", r.stderr, "authentication required")
	r = fails(t, exitError, srv, "", "--api-key", old, "topic", "list")
	mustContain(t, "expired key", r.stderr, "expired")
	if strings.Contains(r.stderr, old) {
		t.Fatal("the token is echoed in an error")
	}
	ok(t, srv, "", "--api-key", tok, "topic", "create", "orders", "--partitions", "1")
	t.Setenv("SPOOL_API_KEY", tok)
	ok(t, srv, "", "sub", "create", "orders", "s1")
	ok(t, srv, "a\nb\n", "pub", "orders")
	r = ok(t, srv, "", "consume", "orders", "--sub", "s1", "--count", "2", "--timeout", "10s")
	mustContain(t, "consume", r.stdout, "a", "b")
	mustContain(t, "list", ok(t, srv, "", "user", "list").stdout, "ci")
	t.Setenv("SPOOL_API_KEY", "")

	// Probes and the scrape endpoint are open; the rest says 401.
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/spool/auth/users": 401, "/": 401} {
		resp, err := http.Get(srv + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, body)
		}
	}
	// A rotation revokes the key in use.
	ok(t, srv, "", "--api-key", tok, "user", "rotate", "ci")
	r = fails(t, exitError, srv, "", "--api-key", tok, "topic", "list")
	mustContain(t, "revoked key", r.stderr, "revoked")
}

func TestAPIKeySchemaRegistry(t *testing.T) {
	dir := t.TempDir()
	first := spooltest.StartServer(t, spooltest.Dir(dir))
	ok(t, first.URL(), "", "user", "add", "ci")
	tok := strings.TrimSpace(ok(t, first.URL(), "", "user", "rotate", "ci").stdout)
	first.Stop()
	s := spooltest.StartServer(t, spooltest.Dir(dir), spooltest.Config(func(c *server.Config) {
		c.Auth.Enabled = true
		c.SchemaRegistryAddr = "127.0.0.1:0"
	}))
	reg := "--registry=http://" + s.Server().SchemaRegistryAddr()
	fails(t, exitError, s.URL(), "", reg, "schema", "list")
	ok(t, s.URL(), "", reg, "--api-key", tok, "schema", "list")
}

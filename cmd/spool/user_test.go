package main

import (
	"strings"
	"testing"
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

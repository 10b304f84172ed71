package main

import (
	"strings"
	"testing"
)

func TestQuotaCommands(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "quota", "set", "--default", "--producer-byte-rate", "10MiB", "--consumer-byte-rate", "20MiB")
	r := ok(t, srv, "", "quota", "set", "--user", "alice", "--request-rate", "50")
	mustContain(t, "set", r.stderr, "user alice", "request_rate=50")
	r = ok(t, srv, "", "quota", "list")
	mustContain(t, "list", r.stdout, "USER", "<default>", "10MiB", "20MiB", "alice", "50")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "<default>") {
		t.Fatalf("list: %q", r.stdout)
	}
	r = ok(t, srv, "", "quota", "list", "-o", "json")
	mustContain(t, "list json", r.stdout, `"producer_byte_rate": 10485760`, `"user": "alice"`, `"default": true`)
	r = ok(t, srv, "", "quota", "set", "--default", "--remove", "consumer_byte_rate")
	mustContain(t, "remove", r.stderr, "producer_byte_rate=10485760")
	fails(t, exitUsage, srv, "", "quota", "set", "--default")
	fails(t, exitUsage, srv, "", "quota", "set", "--request-rate", "1")
	fails(t, exitUsage, srv, "", "quota", "set", "--default", "--user", "a", "--request-rate", "1")
	fails(t, exitError, srv, "", "quota", "set", "--user", "a", "--request-rate", "-1")
	fails(t, exitError, srv, "", "quota", "set", "--user", "a", "--remove", "request_percentage")
	ok(t, srv, "", "quota", "delete", "--user", "alice")
	fails(t, exitNotFound, srv, "", "quota", "delete", "--user", "alice")
	ok(t, srv, "", "quota", "delete", "--default")
	if r := ok(t, srv, "", "quota", "list"); strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("list after deleting all: %q", r.stdout)
	}
}

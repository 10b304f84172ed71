package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/schema/sreg"
	"github.com/spoolmq/spool/internal/spooltest"
)

const (
	userV1 = `{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`
	// userV2 adds a description: compatible both ways.
	userV2 = `{"type":"object","description":"A user.","properties":{"name":{"type":"string"}},"required":["name"]}`
)

func TestCatalogCommands(t *testing.T) {
	s := spooltest.StartServer(t)
	srv, reg := s.URL(), "http://"+s.Server().SchemaRegistryAddr()
	dir := t.TempDir()
	v1 := writeFile(t, dir, "user.json", userV1)
	v2 := writeFile(t, dir, "user-v2.json", userV2)

	ok(t, srv, "", schemaCmd(reg, "register", "users-value", "--file", v1)...)
	ok(t, srv, "", "topic", "create", "users", "--partitions", "2", "--schema", "users-value", "--schema-mode", "dead-letter",
		"--owner", "identity", "--description", "A user signed up.\n\nOne event per account.", "--label", "tier=1", "--label", "pii=yes")
	ok(t, srv, "", "topic", "create", "clicks", "--owner", "web")
	ok(t, srv, "", "sub", "create", "users", "mailer", "--reads", "users-value:1", "--registry", reg)
	ok(t, srv, "", "sub", "create", "users", "audit", "--mode", "queue")
	ok(t, srv, "{\"name\":\"ann\"}\n{\"name\":\"bob\"}\n{\"name\":\"cy\"}\n", "pub", "users", "-H", "spool.schema-id=1")
	// Not valid: dead-lettered to dlq.users.
	ok(t, srv, "", "pub", "users", `{"nom":"x"}`, "-H", "spool.schema-id=1")
	ok(t, srv, "", schemaCmd(reg, "register", "users-value", "--file", v2)...)

	// The table.
	out := ok(t, srv, "", "catalog").stdout
	ls := lines(out)
	if len(ls) != 5 || !strings.HasPrefix(ls[0], "TOPIC") {
		t.Fatalf("catalog table:\n%s", out)
	}
	for i, want := range [][]string{
		{"clicks", "web", "-", "0", "0"},
		{"dlq.users", "(dead", "letter)", "-", "-", "1", "0"},
		{"dlq.users.audit", "(dead", "letter)", "-", "-", "0", "0"}, // made by the queue subscription
		{"users", "identity", "users-value@2", "3", "2"},
	} {
		f := strings.Fields(ls[i+1])
		// RATE is "-" on a fresh server, or a measured rate: not compared.
		got := append(f[:len(f)-3:len(f)-3], f[len(f)-2:]...)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("catalog row %d: %q, want %q (rate aside)", i, ls[i+1], want)
		}
	}

	// -o json is the API's answer.
	var ets []sreg.EventType
	if err := json.Unmarshal([]byte(ok(t, srv, "", "catalog", "--topic", "users", "-o", "json").stdout), &ets); err != nil {
		t.Fatal(err)
	}
	if len(ets) != 1 || ets[0].Owner != "identity" || ets[0].Schema.LatestVersion != 2 || ets[0].Schema.Versions[0].Produced != 3 ||
		len(ets[0].Subscriptions) != 2 || ets[0].Subscriptions[1].Reader == nil || ets[0].Subscriptions[1].Reader.Version != 1 {
		t.Fatalf("catalog -o json: %+v", ets)
	}
	fails(t, exitNotFound, srv, "", "catalog", "--topic", "nope")

	// The Markdown document.
	md := ok(t, srv, "", "catalog", "export").stdout
	mustContain(t, "markdown export", md,
		"# Event catalog",
		"2 event types, and 2 dead-letter topics.",
		"| [users](#users) | identity | users-value@2 |",
		"## users\n\nA user signed up.\n\nOne event per account.\n",
		"- **Owner:** identity",
		"- **Labels:** `pii=yes`, `tier=1`",
		"- **Schema:** subject `users-value`, invalid messages: dead-letter",
		"| 1 | 1 | JSON | 3 | ",
		"| 2 (latest) | 2 | JSON | 0 | - |",
		"Latest schema (version 2, JSON):\n\n```json\n{\n  \"type\": \"object\",",
		"| `audit` | queue | - |",
		"| `mailer` | stream | `users-value` version 1 |",
		"## clicks",
		"- **Schema:** none (not validated)",
		"No subscription reads it.",
		"## Dead-letter topics",
		"| `dlq.users` | topic `users` (schema validation) | 1 |",
		"| `dlq.users.audit` | subscription `audit` of `users` | 0 |",
	)
	if strings.Contains(md, "## dlq.users") {
		t.Errorf("the dead-letter topic has an event type's section:\n%s", md)
	}

	// To a file, and as JSON with the schema text.
	file := filepath.Join(dir, "CATALOG.md")
	r := ok(t, srv, "", "catalog", "export", "--format", "markdown", "--output", file)
	mustContain(t, "stderr", r.stderr, "wrote "+file+" (4 topics)")
	if b, err := os.ReadFile(file); err != nil || string(b) != md {
		t.Fatalf("exported file differs from stdout: %v", err)
	}
	ets = nil
	if err := json.Unmarshal([]byte(ok(t, srv, "", "catalog", "export", "--format", "json", "--topic", "users").stdout), &ets); err != nil {
		t.Fatal(err)
	}
	if len(ets) != 1 || ets[0].Schema.LatestSchema != userV2 {
		t.Fatalf("export --format json: %+v", ets)
	}
	fails(t, exitUsage, srv, "", "catalog", "export", "--format", "pdf")
	fails(t, exitUnavailable, "http://127.0.0.1:1", "", "catalog")
}

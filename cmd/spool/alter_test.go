package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func describeTopicJSON(t *testing.T, srv, name string) topicInfoJSON {
	t.Helper()
	r := ok(t, srv, "", "topic", "describe", name, "-o", "json")
	var info topicInfoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("describe json: %v\n%s", err, r.stdout)
	}
	return info
}

func TestTopicAlter(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "orders", "--partitions", "2", "--retention", "7d", "--work-queue")
	info := describeTopicJSON(t, srv, "orders")
	if info.Config.Retention != "168h0m0s" || !info.Config.WorkQueue {
		t.Fatalf("created %+v", info.Config)
	}
	r := ok(t, srv, "", "topic", "describe", "orders")
	mustContain(t, "describe", r.stdout, "work-queue:", "yes")

	r = ok(t, srv, "", "topic", "alter", "orders", "--retention", "1d12h", "--max-bytes", "1GiB", "--discard", "new",
		"--ttl", "90s", "--dedup-window", "1h", "--max-message-bytes", "64KiB", "--retention-bytes", "10MB", "--max-messages", "500",
		"--work-queue=false")
	if r.stdout != "" {
		t.Errorf("alter wrote to stdout: %q", r.stdout)
	}
	if want := "altered topic orders: retention 36h0m0s, retention-bytes 10000000, max-messages 500, max-bytes 1073741824, discard new, " +
		"dedup-window 1h0m0s, ttl 1m30s, max-message-bytes 65536, work-queue no\n"; r.stderr != want {
		t.Errorf("alter stderr %q, want %q", r.stderr, want)
	}
	info = describeTopicJSON(t, srv, "orders")
	want := topicConfigJSON{Partitions: 2, Retention: "36h0m0s", RetentionBytes: 10_000_000, MaxMessages: 500, MaxBytes: 1 << 30,
		Discard: "new", DedupWindow: "1h0m0s", TTL: "1m30s", Durability: "always", SchemaMode: "reject", MaxMessageBytes: 64 << 10}
	if !reflect.DeepEqual(info.Config, want) {
		t.Errorf("config %+v, want %+v", info.Config, want)
	}
	// 0 returns to the server's default; other settings stay.
	r = ok(t, srv, "", "topic", "alter", "orders", "--retention", "0", "--max-bytes", "0")
	mustContain(t, "alter stderr", r.stderr, "retention forever, max-bytes unlimited")
	info = describeTopicJSON(t, srv, "orders")
	want.Retention, want.MaxBytes = "0s", 0
	if !reflect.DeepEqual(info.Config, want) {
		t.Errorf("config %+v, want %+v", info.Config, want)
	}

	// Refusals.
	r = fails(t, exitUsage, srv, "", "topic", "alter", "orders")
	mustContain(t, "no flags", r.stderr, "nothing to change")
	r = fails(t, exitUsage, srv, "", "topic", "alter", "orders", "--retention", "-1d")
	mustContain(t, "negative", r.stderr, "--retention: must not be negative")
	fails(t, exitUsage, srv, "", "topic", "alter", "orders", "--retention", "7x")
	fails(t, exitUsage, srv, "", "topic", "alter", "orders", "--partitions", "4")
	r = fails(t, exitError, srv, "", "topic", "alter", "orders", "--durability", "none")
	mustContain(t, "durability", r.stderr, "durability cannot change", "(invalid_argument)")
	r = fails(t, exitError, srv, "", "topic", "alter", "orders", "--dedup-window", "1ms", "--max-messages", "5", "--dedup-window", "1us")
	mustContain(t, "dedup window", r.stderr, "dedup window", "(invalid_argument)")
	fails(t, exitNotFound, srv, "", "topic", "alter", "nope", "--retention", "1h")
	if got := describeTopicJSON(t, srv, "orders"); !reflect.DeepEqual(got.Config, want) {
		t.Errorf("config after refusals %+v, want %+v", got.Config, want)
	}
}

// A topic's schema binding and catalog description: set by create, shown
// by describe (text and JSON), changed by alter one at a time.
func TestTopicSchemaAndCatalogFlags(t *testing.T) {
	srv := startServer(t)
	r := ok(t, srv, "", "topic", "create", "orders", "--schema", "orders-value", "--schema-mode", "dead-letter",
		"--owner", "payments", "--description", "One event per order.", "--label", "tier=1", "--label", "pii=")
	mustContain(t, "create", r.stderr, "created topic orders")
	r = ok(t, srv, "", "topic", "describe", "orders")
	mustContain(t, "describe", r.stdout, "schema:", "orders-value", "schema-mode:", "dead-letter", "owner:", "payments",
		"description:", "One event per order.", "labels:", "pii=, tier=1")
	want := describeTopicJSON(t, srv, "orders").Config
	if want.SchemaSubject != "orders-value" || want.SchemaMode != "dead-letter" || want.Owner != "payments" ||
		want.Description != "One event per order." || !reflect.DeepEqual(want.Labels, map[string]string{"tier": "1", "pii": ""}) {
		t.Fatalf("created %+v", want)
	}
	// Without the flags: no schema, reject, no catalog fields (left out
	// of the JSON).
	ok(t, srv, "", "topic", "create", "plain")
	r = ok(t, srv, "", "topic", "describe", "plain", "-o", "json")
	mustContain(t, "plain json", r.stdout, `"schema_subject": ""`, `"schema_mode": "reject"`)
	for _, key := range []string{`"owner"`, `"description"`, `"labels"`} {
		if strings.Contains(r.stdout, key) {
			t.Errorf("plain json has %s:\n%s", key, r.stdout)
		}
	}
	r = ok(t, srv, "", "topic", "describe", "plain")
	mustContain(t, "plain describe", r.stdout, "schema:", "none", "schema-mode:", "reject", "labels:")

	for _, c := range []struct {
		args   []string
		stderr string
		edit   func(*topicConfigJSON)
	}{
		{[]string{"--schema-mode", "reject"}, "schema-mode reject", func(c *topicConfigJSON) { c.SchemaMode = "reject" }},
		{[]string{"--schema", "orders-v2"}, "schema orders-v2", func(c *topicConfigJSON) { c.SchemaSubject = "orders-v2" }},
		{[]string{"--owner", "billing"}, "owner billing", func(c *topicConfigJSON) { c.Owner = "billing" }},
		{[]string{"--description", "Orders,\nas placed."}, `description "Orders,\nas placed."`, func(c *topicConfigJSON) { c.Description = "Orders,\nas placed." }},
		{[]string{"--label", "tier=2", "--label", "region=eu"}, "labels region=eu, tier=2", func(c *topicConfigJSON) { c.Labels = map[string]string{"tier": "2", "region": "eu"} }},
		{[]string{"--clear-labels"}, "labels none", func(c *topicConfigJSON) { c.Labels = nil }},
		{[]string{"--schema", "", "--owner", ""}, "schema none, owner none", func(c *topicConfigJSON) { c.SchemaSubject, c.Owner = "", "" }},
	} {
		r := ok(t, srv, "", append([]string{"topic", "alter", "orders"}, c.args...)...)
		mustContain(t, "alter "+strings.Join(c.args, " "), r.stderr, "altered topic orders: "+c.stderr+"\n")
		c.edit(&want)
		if got := describeTopicJSON(t, srv, "orders").Config; !reflect.DeepEqual(got, want) {
			t.Errorf("after %v: %+v, want %+v", c.args, got, want)
		}
	}

	// Refusals, by the CLI and by the server; nothing changes.
	for _, c := range []struct {
		code int
		args []string
		want string
	}{
		{exitUsage, []string{"--label", "tier"}, "is not key=value"},
		{exitUsage, []string{"--label", "=x"}, "empty key"},
		{exitUsage, []string{"--label", "a=1", "--label", "a=2"}, `label "a" is given twice`},
		{exitUsage, []string{"--label", "a=1", "--clear-labels"}, "give one"},
		{exitUsage, []string{"--schema-mode", "drop"}, "reject or dead-letter"},
		{exitError, []string{"--owner", strings.Repeat("o", 300)}, "owner longer than 256 bytes"},
		{exitError, []string{"--schema", strings.Repeat("s", 300)}, "schema subject longer than 255 bytes"},
	} {
		r := fails(t, c.code, srv, "", append([]string{"topic", "alter", "orders"}, c.args...)...)
		mustContain(t, strings.Join(c.args, " "), r.stderr, c.want)
	}
	fails(t, exitUsage, srv, "", "topic", "create", "t2", "--clear-labels")
	r = fails(t, exitError, srv, "", "topic", "create", "t2", "--label", strings.Repeat("k", 300)+"=v")
	mustContain(t, "long label", r.stderr, "label", "(invalid_argument)")
	if got := describeTopicJSON(t, srv, "orders").Config; !reflect.DeepEqual(got, want) {
		t.Errorf("after refusals: %+v, want %+v", got, want)
	}
}

func TestTopicAddPartitions(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "orders", "--partitions", "2")
	r := ok(t, srv, "", "topic", "add-partitions", "orders", "--partitions", "5")
	if r.stderr != "topic orders now has 5 partitions\n" || r.stdout != "" {
		t.Errorf("add-partitions: %+v", r)
	}
	if info := describeTopicJSON(t, srv, "orders"); len(info.Partitions) != 5 || info.Config.Partitions != 5 {
		t.Errorf("described %d partitions", len(info.Partitions))
	}
	r = fails(t, exitError, srv, "", "topic", "add-partitions", "orders", "--partitions", "3")
	mustContain(t, "shrink", r.stderr, "has 5 partitions", "only be added", "(invalid_argument)")
	r = fails(t, exitError, srv, "", "topic", "add-partitions", "orders", "--partitions", "5")
	mustContain(t, "equal", r.stderr, "already has 5", "(invalid_argument)")
	r = fails(t, exitError, srv, "", "topic", "add-partitions", "orders", "--partitions", "2000")
	mustContain(t, "too many", r.stderr, "1024", "(invalid_argument)")
	r = fails(t, exitUsage, srv, "", "topic", "add-partitions", "orders")
	mustContain(t, "missing flag", r.stderr, "--partitions is required")
	fails(t, exitUsage, srv, "", "topic", "add-partitions", "orders", "--partitions", "0")
	fails(t, exitNotFound, srv, "", "topic", "add-partitions", "nope", "--partitions", "3")
}

func describeSubJSON(t *testing.T, srv, topic, name string) subInfoJSON {
	t.Helper()
	r := ok(t, srv, "", "sub", "describe", topic, name, "-o", "json")
	var info subInfoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("describe json: %v\n%s", err, r.stdout)
	}
	return info
}

func TestSubAlter(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "jobs")
	ok(t, srv, "", "sub", "create", "jobs", "audit")
	ok(t, srv, "", "sub", "create", "jobs", "w", "--mode", "queue", "--backoff-max", "1m", "--ordering", "key")

	r := ok(t, srv, "", "sub", "alter", "jobs", "audit", "--filter", "jobs.eu.#", "--on-failure", "stop", "--max-deliveries", "3")
	if want := "altered subscription audit on topic jobs: filter jobs.eu.#, max-deliveries 3, on-failure stop\n"; r.stderr != want {
		t.Errorf("alter stderr %q, want %q", r.stderr, want)
	}
	if info := describeSubJSON(t, srv, "jobs", "audit"); info.Filter != "jobs.eu.#" {
		t.Errorf("filter %q", info.Filter)
	}

	r = ok(t, srv, "", "sub", "alter", "jobs", "w", "--max-in-flight", "50", "--rate-limit", "10", "--rate-burst", "20",
		"--backoff-initial", "2s", "--backoff-jitter", "none", "--max-deliveries", "7", "--ack-timeout", "1m", "--on-expired", "drop")
	mustContain(t, "alter stderr", r.stderr, "altered subscription w on topic jobs: ", "max-in-flight 50", "rate-limit 10/s",
		"rate-burst 20", "backoff 2s..1m0s x2, jitter none", "max-deliveries 7", "ack-timeout 1m0s", "on-expired drop")
	q := describeSubJSON(t, srv, "jobs", "w").Queue
	if q == nil || q.MaxInFlight != 50 || q.RateLimit != 10 || q.RateBurst != 20 || q.Backoff.Initial != "2s" || q.Backoff.Max != "1m0s" ||
		q.Backoff.Jitter != "none" || q.MaxDeliveries != 7 || q.AckTimeout != "1m0s" || q.OnExpired != "drop" || q.Ordering != "key" {
		t.Fatalf("queue config %+v", q)
	}
	// 0 returns to the default.
	ok(t, srv, "", "sub", "alter", "jobs", "w", "--max-in-flight", "0", "--rate-limit", "0")
	if q := describeSubJSON(t, srv, "jobs", "w").Queue; q.MaxInFlight != 0 || q.RateLimit != 0 {
		t.Errorf("back to the defaults %+v", q)
	}

	// Refusals.
	r = fails(t, exitUsage, srv, "", "sub", "alter", "jobs", "w")
	mustContain(t, "no flags", r.stderr, "nothing to change")
	for flag, want := range map[string]string{"--ordering=none": "create a new subscription", "--start=earliest": "spool sub reset",
		"--mode=stream": "create a new subscription", "--dlq=x": "dead-letter topic cannot change"} {
		r = fails(t, exitUsage, srv, "", "sub", "alter", "jobs", "w", flag)
		mustContain(t, flag, r.stderr, want)
	}
	fails(t, exitUsage, srv, "", "sub", "alter", "jobs", "w", "--rate-limit", "NaN")
	fails(t, exitUsage, srv, "", "sub", "alter", "jobs", "w", "--rate-limit", "+Inf")
	fails(t, exitUsage, srv, "", "sub", "alter", "jobs", "w", "--max-in-flight", "-1")
	fails(t, exitUsage, srv, "", "sub", "alter", "jobs", "w", "--backoff-multiplier", "0.5")
	fails(t, exitUsage, srv, "", "sub", "alter", "jobs", "w", "--on-failure", "skip")
	r = fails(t, exitError, srv, "", "sub", "alter", "jobs", "audit", "--ack-timeout", "5s")
	mustContain(t, "queue flag on a stream subscription", r.stderr, "queue subscriptions only", "(invalid_argument)")
	r = fails(t, exitError, srv, "", "sub", "alter", "jobs", "w", "--on-failure", "stop")
	mustContain(t, "stream flag on a queue subscription", r.stderr, "stream subscriptions only", "(invalid_argument)")
	r = fails(t, exitError, srv, "", "sub", "alter", "jobs", "w", "--filter", "a..b", "--max-in-flight", "9")
	mustContain(t, "bad filter", r.stderr, "filter", "(invalid_argument)")
	fails(t, exitNotFound, srv, "", "sub", "alter", "jobs", "nope", "--filter", "x")
	fails(t, exitNotFound, srv, "", "sub", "alter", "nope", "w", "--filter", "x")
	if q := describeSubJSON(t, srv, "jobs", "w").Queue; q.MaxInFlight != 0 || describeSubJSON(t, srv, "jobs", "w").Filter != "" {
		t.Errorf("changed by refused alters: %+v", q)
	}
}

func TestParseDays(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "0d": 0, "90s": 90 * time.Second, "168h": 168 * time.Hour,
		"-2d": -48 * time.Hour, "106751d23h": 106751*24*time.Hour + 23*time.Hour, " 30m ": 30 * time.Minute, "1d1m30s": 24*time.Hour + 90*time.Second, "0": 0,
	} {
		if got, err := parseDays(in); err != nil || got != want {
			t.Errorf("parseDays(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7", "1.5d", "7x", "1h2d", "d7", "1d-2h", "+1d", "7dd", "200000d", "106751d24h"} {
		if got, err := parseDays(in); err == nil {
			t.Errorf("parseDays(%q) = %v, want an error", in, got)
		}
	}
}

package main

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestTopicCreateListDescribeDelete(t *testing.T) {
	srv := startServer(t)

	r := ok(t, srv, "", "topic", "create", "orders", "--partitions", "3", "--retention", "168h",
		"--retention-bytes", "64MiB", "--max-messages", "1000000", "--max-bytes", "1073741824",
		"--discard", "new", "--dedup-window", "5m", "--ttl", "24h")
	if r.stdout != "" {
		t.Errorf("create wrote to stdout: %q", r.stdout)
	}
	mustContain(t, "create stderr", r.stderr, "created topic orders (3 partitions)")
	ok(t, srv, "", "topic", "create", "audit")

	r = ok(t, srv, "", "topic", "list")
	ls := lines(r.stdout)
	if len(ls) != 3 {
		t.Fatalf("topic list: %q", r.stdout)
	}
	mustContain(t, "topic list", r.stdout, "NAME", "PARTITIONS", "orders", "audit", "168h0m0s", "forever")

	r = ok(t, srv, "", "topic", "list", "--output", "json")
	var list []topicJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("topic list json: %v\n%s", err, r.stdout)
	}
	if len(list) != 2 {
		t.Fatalf("topic list json: %+v", list)
	}

	ok(t, srv, "", "pub", "orders", "hello", "--partition", "1")
	ok(t, srv, "", "sub", "create", "orders", "billing")

	r = ok(t, srv, "", "topic", "describe", "orders")
	mustContain(t, "describe", r.stdout,
		"Name:", "orders", "Messages:", "Subscriptions:  billing",
		"retention:", "168h0m0s", "retention-bytes:", "67108864", "discard:", "new", "dedup-window:", "5m0s", "ttl:", "24h0m0s",
		"PARTITION  START  END  MESSAGES  BYTES")

	r = ok(t, srv, "", "topic", "describe", "orders", "-o", "json")
	var info topicInfoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("describe json: %v\n%s", err, r.stdout)
	}
	want := topicConfigJSON{Partitions: 3, Retention: "168h0m0s", RetentionBytes: 64 << 20, MaxMessages: 1000000,
		MaxBytes: 1 << 30, Discard: "new", DedupWindow: "5m0s", TTL: "24h0m0s", Durability: "always", SchemaMode: "reject",
		MaxMessageBytes: info.Config.MaxMessageBytes}
	if !reflect.DeepEqual(info.Config, want) {
		t.Errorf("config %+v, want %+v", info.Config, want)
	}
	if info.Name != "orders" || info.ID == "" || info.Messages != 1 || len(info.Partitions) != 3 ||
		info.Partitions[1].EndOffset != 1 || info.Partitions[1].Messages != 1 || info.Partitions[1].Bytes == 0 ||
		len(info.Subscriptions) != 1 || info.Subscriptions[0] != "billing" {
		t.Errorf("describe json: %+v", info)
	}

	r = fails(t, exitError, srv, "", "topic", "create", "orders")
	mustContain(t, "stderr", r.stderr, "spool: ", "(topic_exists)")

	r = ok(t, srv, "", "topic", "delete", "orders")
	mustContain(t, "delete stderr", r.stderr, "deleted topic orders")
	r = fails(t, exitNotFound, srv, "", "topic", "describe", "orders")
	if r.stderr != "spool: topic \"orders\" not found (topic_not_found)\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	fails(t, exitNotFound, srv, "", "topic", "delete", "orders")
}

package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestPubValueAndStdin(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "events", "--partitions", "2")

	r := ok(t, srv, "", "pub", "events", "first", "--partition", "1", "-v", "--key", "k1", "--subject", "a.b",
		"-H", "trace=abc", "-H", "trace=def", "--id", "evt-1")
	if r.stdout != "1/0\n" {
		t.Errorf("pub -v stdout %q", r.stdout)
	}
	if r.stderr != "published 1 message to events\n" {
		t.Errorf("pub stderr %q", r.stderr)
	}
	// The same id again is a duplicate, answered with the original's offset.
	r = ok(t, srv, "", "pub", "events", "first again", "--partition", "1", "--id", "evt-1", "--print-offsets")
	if r.stdout != "1/0 (duplicate)\n" {
		t.Errorf("duplicate stdout %q", r.stdout)
	}
	mustContain(t, "duplicate stderr", r.stderr, "published 1 message to events (1 duplicate, not stored again)")

	// Without -v, stdout stays empty.
	r = ok(t, srv, seq("line-", 1000), "pub", "events")
	if r.stdout != "" {
		t.Errorf("stdout without -v: %d bytes", len(r.stdout))
	}
	if r.stderr != "published 1000 messages to events\n" {
		t.Errorf("stderr %q", r.stderr)
	}

	// With -v: one partition/offset per line, in input order.
	r = ok(t, srv, "x\ny\n\nlast without newline", "pub", "events", "--partition", "0", "-v")
	if got := lines(r.stdout); len(got) != 4 || !strings.HasPrefix(got[0], "0/") {
		t.Errorf("pub -v lines %q", got)
	}
	var first, last int
	fmt.Sscanf(lines(r.stdout)[0], "0/%d", &first)
	fmt.Sscanf(lines(r.stdout)[3], "0/%d", &last)
	if last != first+3 {
		t.Errorf("offsets not in input order: %q", r.stdout)
	}

	r = ok(t, srv, "", "topic", "describe", "events", "-o", "json")
	var info topicInfoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Messages != 1+1000+4 {
		t.Errorf("messages %d, want %d", info.Messages, 1+1000+4)
	}

	// --id with stdin: line N gets ID-N, so re-publishing the input stores nothing.
	ok(t, srv, "a\nb\nc\n", "pub", "events", "--id", "batch")
	r = ok(t, srv, "a\nb\nc\n", "pub", "events", "--id", "batch", "-v")
	if strings.Count(r.stdout, "(duplicate)") != 3 {
		t.Errorf("re-publish: %q", r.stdout)
	}
	mustContain(t, "re-publish stderr", r.stderr, "published 3 messages to events (3 duplicates, not stored again)")
}

func TestPubErrors(t *testing.T) {
	srv := startServer(t)
	r := fails(t, exitNotFound, srv, "", "pub", "nope", "v")
	if r.stderr != "spool: topic \"nope\" not found (topic_not_found)\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	fails(t, exitNotFound, srv, "a\nb\n", "pub", "nope")
	ok(t, srv, "", "topic", "create", "t")
	fails(t, exitUsage, srv, "", "pub", "t", "v", "-H", "novalue")
	fails(t, exitUsage, srv, "", "pub", "t", "v", "--partition", "-1")
	fails(t, exitUsage, srv, "", "pub", "t", "v", "--delay", "soon")
	fails(t, exitUsage, srv, "", "pub", "t", "v", "extra")
	fails(t, exitUsage, srv, "", "pub")
	r = fails(t, exitError, srv, "", "pub", "t", "v", "--partition", "7")
	mustContain(t, "stderr", r.stderr, "(invalid_argument)")
}

func TestPubTopicFull(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "f", "--max-messages", "1", "--discard", "new")
	ok(t, srv, "", "pub", "f", "1")
	// The SDK retries a full topic (Publish: 3 attempts; the producer: until
	// the delivery timeout), then the command gives up with exit code 5.
	r := fails(t, exitUnavailable, srv, "", "pub", "f", "2")
	mustContain(t, "stderr", r.stderr, "(topic_full)")
	r = fails(t, exitUnavailable, srv, "a\nb\n", "pub", "f", "--delivery-timeout", "300ms")
	mustContain(t, "stderr", r.stderr, "(topic_full)")
}

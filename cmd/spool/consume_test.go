package main

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSubCreateListDescribeDelete(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "orders", "--partitions", "2")
	ok(t, srv, "a\nb\nc\n", "pub", "orders")

	r := ok(t, srv, "", "sub", "create", "orders", "billing", "--filter", "orders.eu.#")
	mustContain(t, "stderr", r.stderr, "created subscription billing on topic orders (stream, start earliest, dead letters to dlq.orders.billing)")
	ok(t, srv, "", "sub", "create", "orders", "tail", "--start", "latest")
	ok(t, srv, "", "sub", "create", "orders", "recent", "--start", "-1h")
	ok(t, srv, "", "sub", "create", "orders", "since", "--start", "2020-01-02T15:04:05Z")
	ok(t, srv, "", "sub", "create", "orders", "at", "--start", "1", "--mode", "stream")

	r = ok(t, srv, "", "sub", "list", "orders")
	mustContain(t, "sub list", r.stdout, "NAME", "billing", "orders.eu.#", "tail", "latest", "recent", "time:", "at", "offset:1")
	r = ok(t, srv, "", "sub", "list", "orders", "-o", "json")
	var subs []subJSON
	if err := json.Unmarshal([]byte(r.stdout), &subs); err != nil || len(subs) != 5 {
		t.Fatalf("sub list json (%v): %s", err, r.stdout)
	}

	// "latest" resolves at creation: nothing to consume yet.
	r = ok(t, srv, "", "sub", "describe", "orders", "tail", "-o", "json")
	var info subInfoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Lag != 0 || info.Name != "tail" || info.Start != "latest" || len(info.Partitions) != 2 {
		t.Errorf("tail: %+v", info)
	}
	r = ok(t, srv, "", "sub", "describe", "orders", "recent")
	mustContain(t, "describe", r.stdout, "Subscription:", "recent", "Generation:", "Lag:", "3", "Members: none",
		"PARTITION  COMMITTED  END  LAG  OLDEST-UNCONSUMED  MEMBER")

	fails(t, exitError, srv, "", "sub", "create", "orders", "billing") // exists
	fails(t, exitNotFound, srv, "", "sub", "create", "nope", "x")
	fails(t, exitUsage, srv, "", "sub", "create", "orders", "x", "--start", "yesterday")
	fails(t, exitUsage, srv, "", "sub", "create", "orders", "x", "--start", "-5")
	fails(t, exitUsage, srv, "", "sub", "create", "orders", "x", "--mode", "fanout")
	fails(t, exitUsage, srv, "", "sub", "describe", "orders")
	fails(t, exitUsage, srv, "", "sub", "reset", "orders", "billing") // no --to

	r = ok(t, srv, "", "sub", "delete", "orders", "billing")
	mustContain(t, "delete", r.stderr, "deleted subscription billing on topic orders")
	r = fails(t, exitNotFound, srv, "", "sub", "describe", "orders", "billing")
	if r.stderr != "spool: subscription \"billing\" on topic \"orders\" not found (subscription_not_found)\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	fails(t, exitNotFound, srv, "", "sub", "list", "nope")
}

func TestConsumeFilterAndText(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "orders")
	ok(t, srv, "", "sub", "create", "orders", "eu", "--filter", "orders.eu.*")
	ok(t, srv, "", "pub", "orders", "eu-1", "--subject", "orders.eu.created", "--key", "c1")
	ok(t, srv, "", "pub", "orders", "us-1", "--subject", "orders.us.created")
	ok(t, srv, "", "pub", "orders", "eu-2", "--subject", "orders.eu.paid")

	r := ok(t, srv, "", "consume", "orders", "--sub", "eu", "--count", "2")
	if r.stdout != "eu-1\neu-2\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	mustContain(t, "stderr", r.stderr, "consumed 2 messages from orders/eu")

	ok(t, srv, "", "pub", "orders", "eu 3", "--subject", "orders.eu.shipped", "--key", "cust 1")
	r = ok(t, srv, "", "consume", "orders", "--sub", "eu", "--count", "1", "-v")
	if r.stdout != "0/3 key=\"cust 1\" eu 3\n" {
		t.Errorf("verbose stdout %q", r.stdout)
	}
}

func TestConsumeJSON(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "bin")
	ok(t, srv, "", "sub", "create", "bin", "s")
	binary := "\xff\xfe\x00bin"
	ok(t, srv, binary+"\n", "pub", "bin", "--key", "k\xff", "-H", "h=v", "-H", "h=\xc3", "--subject", "x.y", "--id", "m")
	ok(t, srv, "", "pub", "bin", `{"text": "ünïcode <&>"}`)

	r := ok(t, srv, "", "consume", "bin", "--sub", "s", "--count", "2", "--output", "json")
	ls := lines(r.stdout)
	if len(ls) != 2 {
		t.Fatalf("stdout %q", r.stdout)
	}
	var m messageJSON
	if err := json.Unmarshal([]byte(ls[0]), &m); err != nil {
		t.Fatal(err)
	}
	val, _ := base64.StdEncoding.DecodeString(m.Value)
	key, _ := base64.StdEncoding.DecodeString(*m.Key)
	if m.ValueEncoding != "base64" || string(val) != binary || m.KeyEncoding != "base64" || string(key) != "k\xff" ||
		m.ID != "m-1" || m.Subject != "x.y" || m.Partition != 0 || m.Offset != 0 {
		t.Errorf("binary message %+v", m)
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Timestamp); err != nil || time.Since(mustTime(m.Timestamp)) > time.Minute {
		t.Errorf("timestamp %q", m.Timestamp)
	}
	var user []headerJSON
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, "spool.") {
			user = append(user, h)
		}
	}
	want := []headerJSON{{Key: "h", Value: "v"}, {Key: "h", Value: base64.StdEncoding.EncodeToString([]byte("\xc3")), ValueEncoding: "base64"}}
	if !slices.Equal(user, want) {
		t.Errorf("headers %+v, want %+v", user, want)
	}

	// Valid UTF-8 stays a string; no key is null; the raw line keeps <&>.
	mustContain(t, "json line", ls[1], `"key":null`, `"value":"{\"text\": \"ünïcode <&>\"}"`, `"headers":[`)
	if strings.Contains(ls[1], "value_encoding") {
		t.Errorf("text value flagged as base64: %s", ls[1])
	}
}

func mustTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func TestConsumeContinuesAndReplaysAfterReset(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "log", "--partitions", "3")
	ok(t, srv, "", "sub", "create", "log", "s")
	for p := range 3 {
		ok(t, srv, seq("p"+strconv.Itoa(p)+"-", 10), "pub", "log", "--partition", strconv.Itoa(p))
	}

	// consumed runs consume and returns the sorted values printed.
	consumed := func(args ...string) []string {
		t.Helper()
		r := ok(t, srv, "", append([]string{"consume", "log", "--sub", "s"}, args...)...)
		got := lines(r.stdout)
		if want := "consumed " + plural(len(got), "message") + " from log/s\n"; r.stderr != want {
			t.Errorf("stderr %q, want %q", r.stderr, want)
		}
		slices.Sort(got)
		return got
	}
	first := consumed("--count", "12")
	second := consumed("--count", "18")
	all := slices.Concat(first, second)
	slices.Sort(all)
	want := lines(seq("p0-", 10) + seq("p1-", 10) + seq("p2-", 10))
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Fatalf("two consumes got %d messages %q, want each of %q once", len(all), all, want)
	}

	r := ok(t, srv, "", "sub", "describe", "log", "s", "-o", "json")
	var info subInfoJSON
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Lag != 0 || len(info.Members) != 0 {
		t.Errorf("after consuming everything: %+v", info)
	}
	for _, p := range info.Partitions {
		if p.CommittedOffset != p.EndOffset {
			t.Errorf("partition %+v not fully committed", p)
		}
	}
	// Nothing is left: a --timeout without --count ends quietly.
	r = ok(t, srv, "", "consume", "log", "--sub", "s", "--timeout", "300ms")
	if r.stdout != "" {
		t.Errorf("consumed %q after the end", r.stdout)
	}

	r = ok(t, srv, "", "sub", "reset", "log", "s", "--to", "earliest")
	mustContain(t, "reset", r.stdout, "PARTITION  COMMITTED  END")
	mustContain(t, "reset", r.stderr, "reset subscription s on topic log to earliest")
	r = ok(t, srv, "", "sub", "describe", "log", "s")
	mustContain(t, "describe after reset", r.stdout, "Lag:            30")
	if got := consumed("--count", "30"); !slices.Equal(got, want) {
		t.Errorf("replay got %q", got)
	}

	r = ok(t, srv, "", "sub", "reset", "log", "s", "--to", "7", "-o", "json")
	var ps []resetPartitionJSON
	if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil || len(ps) != 3 {
		t.Fatalf("reset json (%v): %s", err, r.stdout)
	}
	lag := int64(0)
	for _, p := range ps {
		if p.CommittedOffset != 7 || p.CommittedOffset > p.EndOffset {
			t.Errorf("reset to 7: %+v", p)
		}
		lag += p.EndOffset - p.CommittedOffset
	}
	if got := consumed("--timeout", "1s"); int64(len(got)) != lag || lag != 9 {
		t.Errorf("after reset to offset 7: lag %d, consumed %q", lag, got)
	}
}

func TestConsumeExitCodes(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "t")
	ok(t, srv, "", "sub", "create", "t", "s")
	ok(t, srv, "one\ntwo\n", "pub", "t")

	r := fails(t, exitTimeout, srv, "", "consume", "t", "--sub", "s", "--count", "5", "--timeout", "500ms")
	if r.stdout != "one\ntwo\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	mustContain(t, "stderr", r.stderr, "spool: timed out after 2 of 5 messages")
	// What was printed was committed.
	ok(t, srv, "three\n", "pub", "t")
	if r := ok(t, srv, "", "consume", "t", "--sub", "s", "--count", "1"); r.stdout != "three\n" {
		t.Errorf("after the timeout: %q", r.stdout)
	}

	r = fails(t, exitNotFound, srv, "", "consume", "t", "--sub", "nope", "--count", "1")
	mustContain(t, "stderr", r.stderr, "(subscription_not_found)")
	fails(t, exitNotFound, srv, "", "consume", "nope", "--sub", "s")
	fails(t, exitUsage, srv, "", "consume", "t")
	fails(t, exitUsage, srv, "", "consume", "t", "--sub", "s", "--output", "yaml")
	fails(t, exitUsage, srv, "", "consume", "t", "--sub", "s", "--count", "-1")
	fails(t, exitUsage, srv, "", "consume", "t", "--sub", "s", "--timeout", "5")
}

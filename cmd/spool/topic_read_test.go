package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTopicRead(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "orders", "--partitions", "2")
	ok(t, srv, "", "sub", "create", "orders", "billing")
	ok(t, srv, "a0\na1\na2\n", "pub", "orders", "--partition", "0")
	ok(t, srv, "b0\nb1\n", "pub", "orders", "--partition", "1", "--key", "cust 1")
	ok(t, srv, "", "pub", "orders", "b2", "--partition", "1", "--id", "order-9", "--subject", "orders.eu", "-H", "trace=abc")
	describe := ok(t, srv, "", "topic", "describe", "orders", "-o", "json").stdout
	// The age of the oldest unconsumed message grows by itself.
	subDescribe := func() string {
		var keep []string
		for _, l := range lines(ok(t, srv, "", "sub", "describe", "orders", "billing", "-o", "json").stdout) {
			if !strings.Contains(l, "oldest_unconsumed_age") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	subBefore := subDescribe()

	// Everything, each partition in order; data on stdout, the summary on
	// stderr.
	r := ok(t, srv, "", "topic", "read", "orders")
	var p0, p1 []string
	for _, l := range lines(r.stdout) {
		if strings.HasPrefix(l, "a") {
			p0 = append(p0, l)
		} else {
			p1 = append(p1, l)
		}
	}
	if !reflect.DeepEqual(p0, []string{"a0", "a1", "a2"}) || !reflect.DeepEqual(p1, []string{"b0", "b1", "b2"}) {
		t.Fatalf("read all: %q", r.stdout)
	}
	if r.stderr != "read 6 messages from orders\n" {
		t.Errorf("stderr %q", r.stderr)
	}

	// One partition, from an offset, verbose.
	r = ok(t, srv, "", "topic", "read", "orders", "--partition", "1", "--from", "1", "-v")
	if want := "1/1 key=\"cust 1\" b1\n1/2 key= b2\n"; r.stdout != want {
		t.Errorf("partition 1 from 1: %q, want %q", r.stdout, want)
	}
	mustContain(t, "stderr", r.stderr, "read 2 messages from partition 1 of orders")

	// Count, a relative time, latest.
	if r = ok(t, srv, "", "topic", "read", "orders", "--partition", "0", "--count", "2"); r.stdout != "a0\na1\n" {
		t.Errorf("count 2: %q", r.stdout)
	}
	if r = ok(t, srv, "", "topic", "read", "orders", "--from", "-1h"); len(lines(r.stdout)) != 6 {
		t.Errorf("from -1h: %q", r.stdout)
	}
	if r = ok(t, srv, "", "topic", "read", "orders", "--from=-1h", "--partition=0", "--count=1"); r.stdout != "a0\n" {
		t.Errorf("from=-1h: %q", r.stdout)
	}
	if r = ok(t, srv, "", "topic", "read", "orders", "--from", "2099-01-01T00:00:00Z"); r.stdout != "" {
		t.Errorf("from the future: %q", r.stdout)
	}
	r = ok(t, srv, "", "topic", "read", "orders", "--from", "latest")
	if r.stdout != "" || r.stderr != "read 0 messages from orders\n" {
		t.Errorf("from latest: %q %q", r.stdout, r.stderr)
	}

	// JSON, one object per line, as consume prints them.
	r = ok(t, srv, "", "topic", "read", "orders", "--partition", "1", "--from", "2", "-o", "json")
	var m messageJSON
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
	if m.Partition != 1 || m.Offset != 2 || m.Value != "b2" || m.ID != "order-9" || m.Subject != "orders.eu" ||
		m.Key != nil || len(m.Headers) != 3 || m.Headers[2] != (headerJSON{Key: "trace", Value: "abc"}) ||
		m.DeliveryCount != 0 || m.Timestamp == "" {
		t.Errorf("json: %+v", m)
	}

	// Nothing changed on the server.
	if after := ok(t, srv, "", "topic", "describe", "orders", "-o", "json").stdout; after != describe {
		t.Errorf("describe changed:\n%s\n%s", describe, after)
	}
	if after := subDescribe(); after != subBefore {
		t.Errorf("subscription changed:\n%s\n%s", subBefore, after)
	}

	// Errors.
	r = fails(t, exitNotFound, srv, "", "topic", "read", "nope")
	if r.stderr != "spool: topic \"nope\" not found (topic_not_found)\n" {
		t.Errorf("not found: %q", r.stderr)
	}
	r = fails(t, exitError, srv, "", "topic", "read", "orders", "--partition", "2")
	mustContain(t, "bad partition", r.stderr, "partition 2 is out of range", "partitions 0 to 1", "(invalid_argument)")
	fails(t, exitUsage, srv, "", "topic", "read", "orders", "--partition", "-1")
	fails(t, exitUsage, srv, "", "topic", "read", "orders", "--count", "-1")
	fails(t, exitUsage, srv, "", "topic", "read", "orders", "--from", "yesterday")
	fails(t, exitUsage, srv, "", "topic", "read", "orders", "--output", "yaml")
	fails(t, exitUsage, srv, "", "topic", "read")
}

// --follow with --count: a message published while the read waits arrives
// and ends it.
func TestTopicReadFollowCount(t *testing.T) {
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "t")
	ok(t, srv, "", "pub", "t", "first")
	done := make(chan result, 1)
	go func() { done <- spool(t, srv, "", "topic", "read", "t", "--follow", "--count", "2") }()
	select {
	case r := <-done:
		t.Fatalf("read ended before the second message: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
	ok(t, srv, "", "pub", "t", "second")
	select {
	case r := <-done:
		if r.code != 0 || r.stdout != "first\nsecond\n" || r.stderr != "read 2 messages from t\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read --follow --count 2 did not end")
	}
}

// The real binary following a topic: new messages arrive, Ctrl-C ends it
// with exit 0, and deleting the topic ends it with exit 3.
func TestBinaryTopicReadFollow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSpool(t)
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "t")
	ok(t, srv, "", "pub", "t", "before")

	follow := func() (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
		cmd := exec.Command(bin, "--server", srv, "topic", "read", "t", "--follow")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, bufio.NewReader(stdout), &stderr
	}
	expect := func(cmd *exec.Cmd, out *bufio.Reader, want string) {
		t.Helper()
		line, err := out.ReadString('\n')
		if err != nil || line != want {
			cmd.Process.Kill()
			t.Fatalf("read printed %q (%v), want %q", line, err, want)
		}
	}

	cmd, out, stderr := follow()
	expect(cmd, out, "before\n") // the read is running
	ok(t, srv, "", "pub", "t", "after")
	expect(cmd, out, "after\n")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || stderr.String() != "read 2 messages from t\n" {
		t.Fatalf("after SIGINT: %v, stderr %q", err, stderr.String())
	}

	cmd, out, stderr = follow()
	expect(cmd, out, "before\n")
	ok(t, srv, "", "topic", "delete", "t")
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitNotFound {
		t.Fatalf("after delete: %v, stderr %q", err, stderr.String())
	}
	if want := "read 2 messages from t\nspool: topic \"t\" was deleted (topic_not_found)\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

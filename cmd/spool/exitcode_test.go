package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
)

func TestExitCode(t *testing.T) {
	notFound := &client.Error{Code: client.CodeTopicNotFound, Message: `topic "x" not found`}
	full := &client.Error{Code: client.CodeTopicFull, Message: "full", Retriable: true}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("boom"), exitError},
		{&client.Error{Code: "internal", Message: "disk"}, exitError},
		{&usageError{err: errors.New("bad flag")}, exitUsage},
		{notFound, exitNotFound},
		{fmt.Errorf("publishing: %w", &client.Error{Code: client.CodeSubscriptionNotFound}), exitNotFound},
		{&timeoutError{got: 1, want: 2}, exitTimeout},
		{full, exitUnavailable},
		{fmt.Errorf("%w: %w", client.ErrDeliveryTimeout, full), exitUnavailable},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if got := errorText(notFound); got != `topic "x" not found (topic_not_found)` {
		t.Errorf("errorText = %q", got)
	}
	if got := errorText(fmt.Errorf("line 3: %w", full)); got != "line 3: full (topic_full)" {
		t.Errorf("errorText = %q", got)
	}
	if got := errorText(&client.Error{Code: "unavailable"}); got != "unavailable" {
		t.Errorf("errorText = %q", got)
	}
}

func TestParsePosition(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"earliest":             "earliest",
		"latest":               "latest",
		"0":                    "offset:0",
		"42":                   "offset:42",
		"-1h":                  "time:2026-01-02T14:00:00Z",
		"-90m":                 "time:2026-01-02T13:30:00Z",
		"2025-12-31T23:00:00Z": "time:2025-12-31T23:00:00Z",
	} {
		p, err := parsePosition(in, now)
		if err != nil || p.String() != want {
			t.Errorf("parsePosition(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1h", "-x", "yesterday", "2025-12-31"} {
		if _, err := parsePosition(in, now); err == nil {
			t.Errorf("parsePosition(%q) succeeded", in)
		}
	}
}

func TestTextKey(t *testing.T) {
	for in, want := range map[string]string{"": "", "cust-1": "cust-1", "ü": "ü", "a b": `"a b"`, "\xff": `"\xff"`, `q"`: `"q\""`} {
		if got := textKey([]byte(in)); got != want {
			t.Errorf("textKey(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestScanLF(t *testing.T) {
	sc := bufio.NewScanner(strings.NewReader("a\r\n\nb"))
	sc.Split(scanLF)
	var got []string
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if strings.Join(got, "|") != "a\r||b" {
		t.Errorf("lines %q", got)
	}
}

func TestUsageAndUnavailable(t *testing.T) {
	// Nothing listens on a port that was just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()

	r := fails(t, exitUnavailable, down, "", "topic", "list")
	if !strings.HasPrefix(r.stderr, "spool: ") || !strings.Contains(r.stderr, "(unavailable)") {
		t.Errorf("stderr %q", r.stderr)
	}
	fails(t, exitUnavailable, down, "", "pub", "t", "v")
	fails(t, exitUnavailable, down, "a\n", "pub", "t")
	fails(t, exitUnavailable, down, "", "consume", "t", "--sub", "s")

	r = fails(t, exitUsage, down, "", "topci", "list")
	mustContain(t, "stderr", r.stderr, `unknown command "topci" for "spool" (did you mean "topic"?)`, "Run 'spool --help' for usage.")
	r = fails(t, exitUsage, down, "", "tpo")
	mustContain(t, "stderr", r.stderr, `unknown command "tpo" for "spool" (did you mean "top"?)`)
	r = fails(t, exitUsage, down, "", "topic", "create", "x", "--partitions", "many")
	mustContain(t, "stderr", r.stderr, "--partitions", "Run 'spool topic create --help' for usage.")
	fails(t, exitUsage, down, "", "topic", "create", "x", "--discard", "oldest")
	fails(t, exitUsage, down, "", "topic", "create", "x", "--retention-bytes", "lots")
	fails(t, exitUsage, down, "", "topic", "create", "x", "--retention", "-1h")
	fails(t, exitUsage, down, "", "topic", "list", "-o", "yaml")
	fails(t, exitUsage, down, "", "topic", "frobnicate")
	fails(t, exitUsage, "ftp://nowhere", "", "topic", "list")
	if r := ok(t, down, "", "topic"); !strings.Contains(r.stdout, "Available Commands") {
		t.Errorf("spool topic: %q", r.stdout)
	}
	if r := ok(t, down, "", "--help"); !strings.Contains(r.stdout, "Exit codes:") {
		t.Errorf("spool --help lacks the exit codes: %q", r.stdout)
	}
}

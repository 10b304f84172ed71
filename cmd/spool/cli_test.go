package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/spooltest"
)

// startServer runs a Spool server in-process and returns its URL.
func startServer(t *testing.T) string { return spooltest.StartServer(t).URL() }

// result is one run of the spool command.
type result struct {
	stdout, stderr string
	code           int
}

// spool runs the spool command in-process against srv, with stdin, as main
// does, and returns what it wrote and its exit code.
func spool(t *testing.T, srv, stdin string, args ...string) result {
	t.Helper()
	root := newRootCmd()
	var out, errOut strings.Builder
	root.SetArgs(append([]string{"--server=" + srv}, args...))
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	code := execute(root)
	return result{out.String(), errOut.String(), code}
}

// ok runs spool and fails the test unless it exits 0.
func ok(t *testing.T, srv, stdin string, args ...string) result {
	t.Helper()
	r := spool(t, srv, stdin, args...)
	if r.code != 0 {
		t.Fatalf("spool %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// fails runs spool and fails the test unless it exits with code.
func fails(t *testing.T, code int, srv, stdin string, args ...string) result {
	t.Helper()
	r := spool(t, srv, stdin, args...)
	if r.code != code {
		t.Fatalf("spool %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

// lines splits output into lines, without the last newline.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// seq returns n stdin lines "prefix0" … "prefix<n-1>".
func seq(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(prefix)
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('\n')
	}
	return b.String()
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

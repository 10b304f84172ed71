package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// TestBinaryPipe runs the real binary against an in-process server: in a
// shell pipeline (with the server given through SPOOL_SERVER), and as a
// consumer stopped with SIGINT.
func TestBinaryPipe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSpool(t)
	srv := startServer(t)
	ok(t, srv, "", "topic", "create", "t")
	ok(t, srv, "", "sub", "create", "t", "s")

	sh := func(script string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = append(os.Environ(), "SPOOL="+bin, "SPOOL_SERVER="+srv)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), code
	}

	out, errOut, code := sh(`printf 'a\nb\n' | "$SPOOL" pub t -v`)
	if code != 0 || out != "0/0\n0/1\n" || errOut != "published 2 messages to t\n" {
		t.Fatalf("pipe: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if r := ok(t, srv, "", "consume", "t", "--sub", "s", "--count", "2"); r.stdout != "a\nb\n" {
		t.Errorf("consumed %q", r.stdout)
	}

	// Ctrl-C stops consume gracefully: exit 0, and what was printed is
	// committed.
	ok(t, srv, "", "pub", "t", "c")
	cmd := exec.Command(bin, "--server", srv, "consume", "t", "--sub", "s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "c\n" {
		cmd.Process.Kill()
		t.Fatalf("consume printed %q, %v", line, err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("consume after SIGINT: %v", err)
	}
	ok(t, srv, "", "pub", "t", "d")
	if r := ok(t, srv, "", "consume", "t", "--sub", "s", "--count", "1"); r.stdout != "d\n" {
		t.Errorf("after SIGINT, consumed %q", r.stdout)
	}

	_, errOut, code = sh(`"$SPOOL" topic describe nope`)
	if code != exitNotFound || errOut != "spool: topic \"nope\" not found (topic_not_found)\n" {
		t.Errorf("not found: exit %d, stderr %q", code, errOut)
	}
	if _, _, code = sh(`"$SPOOL" topic create`); code != exitUsage {
		t.Errorf("usage error: exit %d", code)
	}
}

package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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

// TestBinaryConsumeDeleted: `spool consume` exits 3 (not found) soon after
// its topic or subscription is deleted, in both modes; it used to wait
// until it was killed.
func TestBinaryConsumeDeleted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSpool(t)
	srv := startServer(t)
	for _, mode := range []string{"stream", "queue"} {
		for _, del := range [][]string{{"topic", "delete", "t"}, {"sub", "delete", "t", "s"}} {
			ok(t, srv, "", "topic", "create", "t")
			ok(t, srv, "", "sub", "create", "t", "s", "--mode", mode)
			cmd := exec.Command(bin, "--server", srv, "consume", "t", "--sub", "s")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() {
				io.Copy(io.Discard, stdout)
				exited <- cmd.Wait()
			}()
			ok(t, srv, "", "pub", "t", "m")
			// The consumer is in once it printed the message: wait for the
			// commit that follows it.
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(ok(t, srv, "", "sub", "describe", "t", "s", "-o", "json").stdout, `"lag": 0`) {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("%s: the consumer never took the message; stderr: %s", mode, stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			start := time.Now()
			ok(t, srv, "", del...)
			select {
			case err := <-exited:
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != exitNotFound || !strings.Contains(stderr.String(), "not_found") {
					t.Errorf("%s, spool %s: consume ended with %v, stderr %q", mode, strings.Join(del, " "), err, stderr.String())
				}
				t.Logf("%s, spool %s: consume exited %v after the delete began", mode, strings.Join(del, " "), time.Since(start).Round(time.Millisecond))
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
				t.Fatalf("%s, spool %s: consume still running; stderr %q", mode, strings.Join(del, " "), stderr.String())
			}
			if del[0] == "sub" {
				ok(t, srv, "", "topic", "delete", "t")
			}
			if mode == "queue" {
				ok(t, srv, "", "topic", "delete", "dlq.t.s")
			}
		}
	}
}

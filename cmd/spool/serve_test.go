package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildSpool builds the real binary once per test run.
func buildSpool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "spool")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func TestServeStartsAndStopsOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildSpool(t)
	data := filepath.Join(t.TempDir(), "data")
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Interrupt} {
		cmd := exec.Command(bin, "serve", "--data", data, "--http", "127.0.0.1:0", "--kafka", "127.0.0.1:0", "--schema-registry", "127.0.0.1:0")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		waitFor := func(substr string) {
			t.Helper()
			timeout := time.After(30 * time.Second)
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("spool exited before logging %q", substr)
					}
					if strings.Contains(l, substr) {
						return
					}
				case <-timeout:
					cmd.Process.Kill()
					t.Fatalf("timed out waiting for %q", substr)
				}
			}
		}
		waitFor("spool started")
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		waitFor("spool stopped")
		if err := cmd.Wait(); err != nil {
			t.Fatalf("exit after %v: %v", sig, err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "topics")); err != nil {
		t.Fatalf("data directory not created: %v", err)
	}
}

func TestVersion(t *testing.T) {
	cmd := newRootCmd()
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "spool ") {
		t.Fatalf("version output %q", out.String())
	}
}

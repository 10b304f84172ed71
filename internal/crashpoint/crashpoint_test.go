package crashpoint

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The test binary re-runs itself with the variable set: the child hits
// points and must die at the armed one's n-th hit.
func TestMain(m *testing.M) {
	if os.Getenv("CRASHPOINT_CHILD") != "" {
		for i := range 5 {
			Hit(StateWrite)
			Hit(SeglogAfterFsync)
			os.Stdout.WriteString("after " + string(rune('1'+i)) + "\n")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func child(t *testing.T, env string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", Env+"="+env)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestExitsAtNthHit(t *testing.T) {
	out, code := child(t, SeglogAfterFsync+":3")
	if code != ExitCode {
		t.Fatalf("exit %d, want %d\n%s", code, ExitCode, out)
	}
	if !strings.Contains(out, "after 2") || strings.Contains(out, "after 3") || !strings.Contains(out, "crashpoint: seglog.after-fsync hit 3") {
		t.Fatalf("died at the wrong hit:\n%s", out)
	}
	if out, code := child(t, StateWrite); code != ExitCode || strings.Contains(out, "after") {
		t.Fatalf("first hit: exit %d\n%s", code, out)
	}
	if out, code := child(t, QueueSnapshot); code != 0 || !strings.Contains(out, "after 5") {
		t.Fatalf("an unhit point killed the process: exit %d\n%s", code, out)
	}
}

func TestBadValueRefused(t *testing.T) {
	for _, v := range []string{"no.such-point", StateWrite + ":0", StateWrite + ":x"} {
		if out, code := child(t, v); code != 2 || !strings.Contains(out, "crashpoint: "+Env) {
			t.Errorf("%q: exit %d\n%s", v, code, out)
		}
	}
}

func TestUnarmedCostsNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { Hit(StateWrite) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

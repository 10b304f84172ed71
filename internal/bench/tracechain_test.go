package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"testing"
)

func TestTraceChain(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skip("tracing unavailable:", err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		trace.Stop()
		t.Fatal(err)
	}
	for range 20 {
		f.Write(make([]byte, 512))
		f.Sync()
	}
	f.Close()
	trace.WithRegion(t.Context(), "test.region", func() {})
	trace.Stop()
	rep, err := TraceChain(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var syncs int64
	for _, s := range rep.Syscalls {
		if strings.HasPrefix(s.Name, "fdatasync") {
			syncs = s.Count
		}
	}
	if syncs < 20 {
		t.Fatalf("found %d syncs in the trace, want at least 20: %+v", syncs, rep.Syscalls)
	}
	if len(rep.Regions) != 1 || rep.Regions[0].Name != "test.region" || rep.Regions[0].Count != 1 {
		t.Fatalf("regions %+v", rep.Regions)
	}
	var out strings.Builder
	rep.Markdown(&out)
	if !strings.Contains(out.String(), "| fdatasync") {
		t.Fatalf("report without the syncs:\n%s", out.String())
	}
	if _, err := TraceChain(strings.NewReader("not a trace")); err == nil {
		t.Fatal("a malformed trace was accepted")
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/bench"
)

// TestOverloadShort runs `spool bench overload --short`: a server with a
// 256 MiB memory limit, as its own process (in a memory cgroup where one
// can be made), offered ten times its sustainable publish rate for 20 s
// over 300 connections with slow consumers. Its peak RSS must stay within
// the limit, it must survive, a small client must still be served, and
// the backpressure must show.
func TestOverloadShort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and loads it for about 35 s")
	}
	if !bench.CgroupAvailable() {
		t.Log("no writable cgroup v1 memory controller: RSS is measured from /proc only")
	}
	bin := buildSpool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "bench", "overload", "--short", "--json", "--dir", t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	t.Log(errOut.String())
	var rep bench.OverloadReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v (run: %v)\n%s", err, runErr, out.String())
	}
	var sb strings.Builder
	printOverloadReport(&sb, &rep)
	t.Log("\n" + sb.String())
	if rep.ServerExitedDuringLoad {
		t.Fatal("the server died during the overload")
	}
	if peak := max(rep.PeakRSS, rep.HWM); peak > rep.MemoryLimit || peak == 0 {
		t.Errorf("peak RSS %d B, memory limit %d B", peak, rep.MemoryLimit)
	}
	if rep.CgroupOOMKills > 0 {
		t.Errorf("%d OOM kills in the cgroup", rep.CgroupOOMKills)
	}
	if rep.ProbeOK == 0 {
		t.Errorf("no probe succeeded under overload (%d failed: %v)", rep.ProbeFailed, rep.ProbeErrors)
	}
	if rep.AcceptedRate <= 0 {
		t.Error("nothing was accepted under overload")
	}
	var pushedBack float64
	for k, v := range rep.BackpressureCounters {
		if strings.HasPrefix(k, "spool_memory_budget_waits_total") || strings.HasPrefix(k, "spool_memory_budget_refused_total") {
			pushedBack += v
		}
	}
	if pushedBack == 0 {
		t.Errorf("no backpressure in the metrics: %v", rep.BackpressureCounters)
	}
	if runErr != nil {
		t.Errorf("spool bench overload: %v", runErr)
	}
}

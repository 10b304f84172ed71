package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoInternalImports enforces the architecture rule: the public SDK never
// depends, directly or transitively, on Spool's internal packages (tests may,
// to start a real server), nor on OpenTelemetry's SDK (only its API).
func TestNoInternalImports(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found:", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", "github.com/spoolmq/spool/client").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/spoolmq/spool"
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list returned no packages")
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "go.opentelemetry.io/otel/sdk") {
			t.Errorf("client depends on %s: the SDK uses only OpenTelemetry's API; the application chooses the SDK", dep)
		}
		if !strings.HasPrefix(dep, module+"/") {
			continue // third-party and standard-library internals are theirs
		}
		if strings.Contains(dep, "/internal/") || strings.HasSuffix(dep, "/internal") {
			t.Errorf("client depends on %s: the SDK must not import internal/ packages", dep)
		}
	}
}

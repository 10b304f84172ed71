package idem

import (
	"os/exec"
	"strings"
	"testing"
)

// The package is part of the public SDK: like client, it depends on none of
// Spool's internal packages nor on the server (its tests may, to start a
// real server).
func TestNoInternalImports(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found:", err)
	}
	const module = "github.com/spoolmq/spool"
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", module+"/client/idem").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list returned no packages")
	}
	for _, dep := range deps {
		rel, ok := strings.CutPrefix(dep, module+"/")
		if !ok {
			continue
		}
		if strings.Contains("/"+rel+"/", "/internal/") || rel == "server" || strings.HasPrefix(rel, "server/") {
			t.Errorf("client/idem depends on %s: the SDK must not import internal/ packages or the server", dep)
		}
	}
}

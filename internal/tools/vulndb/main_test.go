package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	osv := t.TempDir()
	for id, rec := range map[string]string{
		"GO-2026-0001": `{"id":"GO-2026-0001","modified":"2026-01-02T00:00:00Z","aliases":["CVE-2026-1"],"affected":[{"package":{"name":"example.com/a"}},{"package":{"name":"example.com/a"}},{"package":{"name":"stdlib"}}]}`,
		"GO-2026-0002": `{"id":"GO-2026-0002","modified":"2026-03-04T00:00:00Z","affected":[{"package":{"name":"example.com/a"}}]}`,
	} {
		if err := os.WriteFile(filepath.Join(osv, id+".json"), []byte(rec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "db")
	if n, err := build(osv, out); err != nil || n != 2 {
		t.Fatalf("build: %d, %v", n, err)
	}
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	for name, want := range map[string]string{
		"index/db.json":      `{"modified":"2026-03-04T00:00:00Z"}`,
		"index/modules.json": `[{"path":"example.com/a","vulns":[{"id":"GO-2026-0001","modified":"2026-01-02T00:00:00Z"},{"id":"GO-2026-0002","modified":"2026-03-04T00:00:00Z"}]},{"path":"stdlib","vulns":[{"id":"GO-2026-0001","modified":"2026-01-02T00:00:00Z"}]}]`,
		"index/vulns.json":   `[{"id":"GO-2026-0001","modified":"2026-01-02T00:00:00Z","aliases":["CVE-2026-1"]},{"id":"GO-2026-0002","modified":"2026-03-04T00:00:00Z"}]`,
	} {
		if got := read(name); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(read("ID/GO-2026-0002.json")), &e); err != nil || e["id"] != "GO-2026-0002" {
		t.Errorf("ID/GO-2026-0002.json: %v, %v", e, err)
	}
	if _, err := build(t.TempDir(), out); err == nil {
		t.Error("an empty OSV directory was accepted")
	}
}

func TestCheck(t *testing.T) {
	const scan = `{"config":{"scanner_name":"govulncheck"}}
{"osv":{"id":"GO-1","summary":"bad parse"}}
{"osv":{"id":"GO-2","summary":"bad read"}}
{"finding":{"osv":"GO-1","fixed_version":"v1.2.0","trace":[{"module":"example.com/a","version":"v1.1.0"}]}}
{"finding":{"osv":"GO-1","fixed_version":"v1.2.0","trace":[{"module":"example.com/a","version":"v1.1.0","package":"example.com/a/p"}]}}
{"finding":{"osv":"GO-1","fixed_version":"v1.2.0","trace":[{"module":"example.com/a","version":"v1.1.0","package":"example.com/a/p","function":"Parse"},{"module":"m","package":"m/x","function":"Mid"},{"module":"m","package":"m","function":"main","position":{"filename":"main.go","line":7}}]}}
{"finding":{"osv":"GO-1","fixed_version":"v1.2.0","trace":[{"module":"example.com/a","version":"v1.1.0","package":"example.com/a/p","function":"Parse"},{"module":"m","package":"m","function":"run","position":{"filename":"run.go","line":3}}]}}
{"finding":{"osv":"GO-2","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","receiver":"*Request","function":"Read"},{"module":"m","package":"m","function":"main"}]}}
{"finding":{"osv":"GO-3","trace":[{"module":"example.com/b","version":"v0.1.0","package":"example.com/b"}]}}
{"finding":{"osv":"GO-4","trace":[{"module":"example.com/c","version":"v0.1.0"}]}}
`
	var out strings.Builder
	failed, err := check(strings.NewReader(scan), &out, map[string]bool{"GO-2 stdlib@v1.26.8": true, "GO-9 stdlib@v1.26.8": true})
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Errorf("an unacknowledged called vulnerability did not fail:\n%s", out.String())
	}
	for _, want := range []string{
		"CALLED GO-1 in example.com/a@v1.1.0 (fixed in v1.2.0): bad parse\n    m.run (run.go:3) -> example.com/a/p.Parse\n",
		"acknowledged GO-2 in stdlib@v1.26.8 (no fix yet): bad read\n    m.main -> net/http.Request.Read\n",
		`the acknowledgement "GO-9 stdlib@v1.26.8" matches no finding`,
		"2 vulnerabilities called (1 acknowledged, 1 not); 1 more in imported packages (GO-3) and 1 in required modules (GO-4)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report does not say %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	failed, err = check(strings.NewReader(scan), &out, map[string]bool{"GO-1 example.com/a@v1.1.0": true, "GO-2 stdlib@v1.26.8": true})
	if err != nil || failed {
		t.Errorf("every called vulnerability acknowledged: failed %v, %v\n%s", failed, err, out.String())
	}
	if _, err := check(strings.NewReader("{"), &out, nil); err == nil {
		t.Error("truncated output accepted")
	}
}

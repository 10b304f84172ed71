package arch

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/spoolmq/spool/"

// layer is every package's rank: a package imports only packages of a
// lower rank, or its own subpackages. A new package must be placed here
// (the test says so), which is the moment to think about where it belongs.
var layer = map[string]int{
	// Leaves: error codes, time, names, sizes, formats, files.
	"internal/errs": 0, "internal/clock": 0, "internal/crashpoint": 0, "internal/subject": 0, "internal/metric": 0,
	"internal/batch": 0, "internal/vfs": 0, "bytesize": 0, "internal/golden": 0,
	// The public record-batch builder of clients (the SDK's producer).
	"recordbatch": 0,
	// TLS (reloading certificates, principals of client certificates,
	// development certificates) and the principal a connection carries.
	"internal/tlsutil": 0, "internal/auth": 0,
	// Byte budgets of requests in flight (the memory limit's shares).
	"internal/membudget": 0,
	// Storage, the deterministic cores, configuration files; the Kafka
	// front end's wire helpers, which its cores share (the cores,
	// internal/kafka/k*, take internal/kafka's rank).
	"internal/seglog": 1, "internal/state": 1, "internal/queue": 1, "internal/group": 1, "internal/config": 1,
	"internal/kafka/kwire": 1,
	// The JSON of the small management APIs (users, rules, quotas).
	"internal/jsonhttp": 1,
	// Cluster connections (raft messages between nodes).
	"internal/peer": 1, "internal/schema": 1,
	"internal/schema/savro": 2, "internal/schema/sjson": 2, "internal/schema/sproto": 2,
	// Definitions kept in the state store; raft logs kept there, and the
	// raft storage over a partition's replicated log.
	"internal/catalog": 2, "internal/raftlog": 2, "internal/partlog": 2,
	// The broker: topics, subscriptions, sessions; the raft groups' driver.
	"internal/broker": 3, "internal/multiraft": 3,
	// Cores over the broker that more than one front end shares: the
	// idempotent producers (ids, sequences) of Kafka and the native API.
	"internal/producer": 4,
	// A server's place in a cluster: peers, raft groups, the metadata
	// group applying catalog changes to the broker.
	"internal/cluster": 4, "internal/schema/sreg": 4,
	// The user store (SCRAM credentials, API keys) in a replicated space.
	"internal/auth/users": 4, "internal/auth/acl": 4,
	// Client quotas (byte and request rates per principal) in a
	// replicated space, and their limiter.
	"internal/quota": 4,
	// Front ends and telemetry; the server's hooks for tests; the web
	// console (pages over the broker and the registry).
	"internal/api": 5, "internal/kafka": 5, "internal/telemetry": 5, "internal/serverhook": 5,
	"internal/console": 5,
	// The embeddable server.
	"server": 6,
	// Programs, drivers and tests built on the server.
	"internal/bench": 7, "internal/e2e": 7, "internal/spooltest": 7, "internal/arch": 7, "cmd/spool": 8,
	// Tools of the test command (the offline vulnerability database).
	"internal/tools/vulndb": 8,
	// Tests of the deployment files (dashboard, scrape config, alerts)
	// against docs/metrics.md, a real server and promtool.
	"deploy": 7,
	// Worked examples: code built on the SDK like any user's (their tests
	// start a server through internal/spooltest), a library of services
	// below the programs that run them.
	"examples/orders/shop": 8, "examples": 9,
}

// rankOf returns the rank of pkg (a subpackage takes its parent's).
func rankOf(pkg string) (int, bool) {
	for p := pkg; ; {
		if r, ok := layer[p]; ok {
			return r, true
		}
		i := strings.LastIndex(p, "/")
		if i < 0 {
			return 0, false
		}
		p = p[:i]
	}
}

type pkgInfo struct {
	path        string
	imports     []string
	testImports []string // of its tests (in package and external)
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found:", err)
	}
	out, err := exec.Command(gobin, "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}} | {{join .TestImports \" \"}} {{join .XTestImports \" \"}}", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkgInfo
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		code, tests, _ := strings.Cut(line, "|")
		f := strings.Fields(code)
		if len(f) > 0 {
			pkgs = append(pkgs, pkgInfo{path: f[0], imports: f[1:], testImports: strings.Fields(tests)})
		}
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// TestLayers checks that every package imports only lower layers: storage
// never reaches the broker or a front end, the cores do no I/O, the SDK
// depends on nothing internal, and only one package each talks to Pebble
// and to Prometheus.
func TestLayers(t *testing.T) {
	ioFree := []string{"internal/queue", "internal/group"}
	ioPkgs := []string{"os", "net", "net/http", "os/exec", "syscall", module + "internal/vfs", module + "internal/state", module + "internal/seglog"}
	for _, p := range listPackages(t) {
		rel, ok := strings.CutPrefix(p.path, module)
		sdk := rel == "client" || strings.HasPrefix(rel, "client/")
		if !ok || strings.HasPrefix(rel, "gen/") || sdk || rel == "compat" || strings.HasPrefix(rel, "compat/") {
			if sdk {
				for _, imp := range p.imports {
					if strings.HasPrefix(imp, module+"internal") || strings.HasPrefix(imp, module+"server") {
						t.Errorf("client imports %s: the SDK depends on the API only", imp)
					}
				}
			}
			continue
		}
		r, ok := rankOf(rel)
		if !ok {
			t.Errorf("package %s has no layer: add it to the layer table in internal/arch/layers_test.go (and to DESIGN.md)", rel)
			continue
		}
		if strings.HasPrefix(rel, "examples/") {
			for _, imp := range p.imports {
				if strings.HasPrefix(imp, module+"internal") || strings.HasPrefix(imp, module+"server") {
					t.Errorf("%s imports %s: examples use the SDK only, as users' programs do (their tests may start a server)", rel, imp)
				}
			}
		}
		for _, imp := range p.imports {
			switch {
			case strings.HasPrefix(imp, "github.com/cockroachdb/pebble") && rel != "internal/state":
				t.Errorf("%s imports %s: only internal/state talks to the storage engine", rel, imp)
			case strings.HasPrefix(imp, "github.com/prometheus/") && rel != "internal/telemetry":
				t.Errorf("%s imports %s: only internal/telemetry imports Prometheus", rel, imp)
			}
			if slices.Contains(ioFree, rel) && slices.Contains(ioPkgs, imp) {
				t.Errorf("%s imports %s: the deterministic cores do no I/O", rel, imp)
			}
			dep, ok := strings.CutPrefix(imp, module)
			if !ok || strings.HasPrefix(dep, "gen/") || dep == "client" {
				continue
			}
			if strings.HasPrefix(dep, rel+"/") {
				continue // its own subpackage
			}
			dr, ok := rankOf(dep)
			if !ok {
				continue // reported for the package itself
			}
			if dr >= r {
				t.Errorf("%s (layer %d) imports %s (layer %d): a package imports only lower layers", rel, r, dep, dr)
			}
		}
	}
}

// rankOf gives a subpackage its parent's rank and an unknown package none;
// the table keeps storage below the broker below the front ends.
func TestLayersRankOf(t *testing.T) {
	if r, ok := rankOf("internal/kafka/kgroup"); !ok || r != layer["internal/kafka"] {
		t.Errorf("subpackage rank %d %v", r, ok)
	}
	if _, ok := rankOf("internal/nowhere"); ok {
		t.Error("an unknown package has a rank")
	}
	if layer["internal/seglog"] >= layer["internal/broker"] || layer["internal/broker"] >= layer["internal/kafka"] {
		t.Error("storage below the broker below the front ends")
	}
}

// TestStorageTestsStayLow checks that the tests of the storage and core
// packages (layers 0 to 2) import nothing above their package's layer, so
// that they test the package on its own rather than through the server.
func TestStorageTestsStayLow(t *testing.T) {
	for _, p := range listPackages(t) {
		rel, _ := strings.CutPrefix(p.path, module)
		r, ok := rankOf(rel)
		if !ok || r > 2 {
			continue
		}
		for _, imp := range p.testImports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok || dep == rel || strings.HasPrefix(dep, "gen/") {
				continue
			}
			if dr, ok := rankOf(dep); ok && dr > r {
				t.Errorf("the tests of %s (layer %d) import %s (layer %d)", rel, r, dep, dr)
			}
		}
	}
}

// TestSDKDependencies: the public SDK (client and every package under it)
// depends, directly or through others, on none of Spool's internal
// packages nor the server (its tests may, to start a real server), and on
// OpenTelemetry's API only: the application chooses the SDK.
func TestSDKDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found:", err)
	}
	out, err := exec.Command(gobin, "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", module+"client/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 5 {
		t.Fatalf("go list found only %d SDK packages", len(lines))
	}
	for _, line := range lines {
		f := strings.Fields(line)
		for _, dep := range f[1:] {
			if strings.HasPrefix(dep, "go.opentelemetry.io/otel/sdk") {
				t.Errorf("%s depends on %s: the SDK uses only OpenTelemetry's API", f[0], dep)
			}
			rel, ok := strings.CutPrefix(dep, module)
			if ok && (strings.Contains("/"+rel+"/", "/internal/") || rel == "server" || strings.HasPrefix(rel, "server/")) {
				t.Errorf("%s depends on %s: the SDK must not import internal/ packages or the server", f[0], dep)
			}
		}
	}
}

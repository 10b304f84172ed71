// Command vulndb serves scripts/vulncheck.sh, which runs govulncheck
// without reaching vuln.go.dev: the Go vulnerability database's OSV
// records come from the module golang.org/x/vulndb (its data/osv), fetched
// through the Go module proxy like any module.
//
//	vulndb build -osv DIR -out DIR
//
// writes a database in the v1 layout govulncheck reads with -db file://DIR:
// index/db.json, index/modules.json, index/vulns.json and ID/<id>.json.
//
//	vulndb check [-ack FILE] < govulncheck.json
//
// reads govulncheck's -format json output, prints every vulnerability the
// code calls (and counts those it only imports or requires), and exits 1
// if any called one is not acknowledged in FILE: lines "ID MODULE@VERSION"
// ('#' starts a comment), such as "GO-2026-6600 stdlib@v1.26.8", each
// holding only for that exact module version, so that upgrading the
// module (or Go) retires it.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vulndb build -osv DIR -out DIR | vulndb check [-ack FILE] < govulncheck.json")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "build":
		fs := flag.NewFlagSet("build", flag.ExitOnError)
		osvDir := fs.String("osv", "", "directory of OSV records (GO-*.json)")
		out := fs.String("out", "", "directory to write the database to (created)")
		fs.Parse(args)
		if *osvDir == "" || *out == "" {
			err = errors.New("build needs -osv and -out")
			break
		}
		var n int
		n, err = build(*osvDir, *out)
		if err == nil {
			fmt.Printf("vulndb: %d entries written to %s\n", n, *out)
		}
	case "check":
		fs := flag.NewFlagSet("check", flag.ExitOnError)
		ackFile := fs.String("ack", "", "acknowledged findings: lines \"ID MODULE@VERSION\"")
		fs.Parse(args)
		var acks map[string]bool
		if acks, err = readAcks(*ackFile); err == nil {
			var failed bool
			failed, err = check(os.Stdin, os.Stdout, acks)
			if err == nil && failed {
				os.Exit(1)
			}
		}
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(2)
	}
}

// entry is what the index needs of an OSV record.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

// moduleVuln is an element of a module's list in index/modules.json. Its
// optional "fixed" (the latest fix) is left out: govulncheck uses it only
// to skip fetching entries that cannot apply, and without it reads each of
// the module's entries and decides from their ranges, as it always does.
type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

type module struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

// build writes the v1 database of the OSV records in osvDir to out and
// returns the number of entries.
func build(osvDir, out string) (int, error) {
	names, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return 0, err
	}
	if len(names) == 0 {
		return 0, fmt.Errorf("no OSV records (*.json) in %s", osvDir)
	}
	if err := os.MkdirAll(filepath.Join(out, "index"), 0o755); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Join(out, "ID"), 0o755); err != nil {
		return 0, err
	}
	var (
		latest  time.Time
		vulns   []vuln
		modules = map[string]*module{}
		seen    = map[string]bool{}
	)
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return 0, err
		}
		var e entry
		if err := json.Unmarshal(data, &e); err != nil {
			return 0, fmt.Errorf("%s: %v", name, err)
		}
		if e.ID == "" || seen[e.ID] {
			return 0, fmt.Errorf("%s: missing or repeated id %q", name, e.ID)
		}
		seen[e.ID] = true
		if e.Modified.After(latest) {
			latest = e.Modified
		}
		vulns = append(vulns, vuln{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
		for _, a := range e.Affected {
			m := modules[a.Package.Name]
			if m == nil {
				m = &module{Path: a.Package.Name}
				modules[a.Package.Name] = m
			}
			if n := len(m.Vulns); n == 0 || m.Vulns[n-1].ID != e.ID {
				m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified})
			}
		}
		// The record as published: govulncheck parses it itself.
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), data, 0o644); err != nil {
			return 0, err
		}
	}
	sort.Slice(vulns, func(i, j int) bool { return vulns[i].ID < vulns[j].ID })
	mods := make([]*module, 0, len(modules))
	for _, m := range modules {
		sort.Slice(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	for file, v := range map[string]any{
		"db.json":      map[string]time.Time{"modified": latest},
		"modules.json": mods,
		"vulns.json":   vulns,
	} {
		data, err := json.Marshal(v)
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(out, "index", file), data, 0o644); err != nil {
			return 0, err
		}
	}
	return len(vulns), nil
}

// readAcks reads the acknowledged findings: "ID MODULE@VERSION" a line.
func readAcks(name string) (map[string]bool, error) {
	acks := map[string]bool{}
	if name == "" {
		return acks, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	for i, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 || !strings.Contains(f[1], "@") {
			return nil, fmt.Errorf("%s:%d: want \"ID MODULE@VERSION\"", name, i+1)
		}
		acks[f[0]+" "+f[1]] = true
	}
	return acks, nil
}

// frame is one step of a finding's trace in govulncheck's JSON: the first
// is the vulnerable symbol (or only its package or module), the last the
// caller in the scanned code.
type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
	Receiver string `json:"receiver"`
	Position *struct {
		Filename string `json:"filename"`
		Line     int    `json:"line"`
	} `json:"position"`
}

func (f frame) symbol() string {
	s := f.Package
	if f.Receiver != "" {
		s += "." + strings.TrimPrefix(f.Receiver, "*")
	}
	if f.Function != "" {
		s += "." + f.Function
	}
	return s
}

type finding struct {
	OSV          string  `json:"osv"`
	FixedVersion string  `json:"fixed_version"`
	Trace        []frame `json:"trace"`
}

type message struct {
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *finding `json:"finding"`
}

// called is a vulnerability the scanned code calls.
type called struct {
	id, module, fixed string
	example           string // a trace, caller first
	depth             int    // its frames
}

// check reads govulncheck's JSON stream from r, reports to w, and says
// whether a called vulnerability is not acknowledged.
func check(r io.Reader, w io.Writer, acks map[string]bool) (failed bool, err error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	summaries := map[string]string{}
	calls := map[string]*called{}
	imported, required := map[string]bool{}, map[string]bool{}
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return false, fmt.Errorf("reading govulncheck's output: %v", err)
		}
		if m.OSV != nil {
			summaries[m.OSV.ID] = m.OSV.Summary
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 {
			continue
		}
		top := f.Trace[0]
		switch {
		case top.Function != "":
			// The shortest trace as the example: govulncheck's order varies.
			if c := calls[f.OSV]; c == nil || len(f.Trace) < c.depth {
				var steps []string
				for i := len(f.Trace) - 1; i >= 0; i-- {
					s := f.Trace[i].symbol()
					if p := f.Trace[i].Position; p != nil && i == len(f.Trace)-1 {
						s = fmt.Sprintf("%s (%s:%d)", s, p.Filename, p.Line)
					}
					steps = append(steps, s)
				}
				calls[f.OSV] = &called{id: f.OSV, module: top.Module + "@" + top.Version, fixed: f.FixedVersion,
					example: strings.Join(steps, " -> "), depth: len(f.Trace)}
			}
		case top.Package != "":
			imported[f.OSV] = true
		default:
			required[f.OSV] = true
		}
	}
	ids := make([]string, 0, len(calls))
	for id := range calls {
		ids = append(ids, id)
		delete(imported, id)
		delete(required, id)
	}
	for id := range imported {
		delete(required, id)
	}
	sort.Strings(ids)
	var open, acked int
	used := map[string]bool{}
	for _, id := range ids {
		c := calls[id]
		state := "CALLED"
		if key := c.id + " " + c.module; acks[key] {
			state = "acknowledged"
			used[key] = true
			acked++
		} else {
			open++
		}
		fixed := "fixed in " + c.fixed
		if c.fixed == "" {
			fixed = "no fix yet"
		}
		fmt.Fprintf(w, "%s %s in %s (%s): %s\n    %s\n", state, c.id, c.module, fixed, summaries[c.id], c.example)
	}
	var stale []string
	for key := range acks {
		if !used[key] {
			stale = append(stale, key)
		}
	}
	sort.Strings(stale)
	for _, key := range stale {
		fmt.Fprintf(w, "note: the acknowledgement %q matches no finding any more: remove it\n", key)
	}
	fmt.Fprintf(w, "govulncheck: %d vulnerabilities called (%d acknowledged, %d not); %d more in imported packages%s and %d in required modules%s that the code does not call\n",
		len(ids), acked, open, len(imported), idList(imported), len(required), idList(required))
	return open > 0, nil
}

// idList returns " (ID, ID)" of the ids in set, "" if none.
func idList(set map[string]bool) string {
	if len(set) == 0 {
		return ""
	}
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return " (" + strings.Join(ids, ", ") + ")"
}

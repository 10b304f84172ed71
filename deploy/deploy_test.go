// Package deploy holds no code: its tests check the files beside them, the
// Prometheus scrape configuration and alerting rules (prometheus/) and the
// Grafana dashboard (grafana/), against docs/metrics.md, a real server's
// /metrics and promtool.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	alertsFile    = "prometheus/alerts.yml"
	alertTests    = "prometheus/alerts_test.yml"
	configFile    = "prometheus/prometheus.yml"
	dashboardFile = "grafana/spool.json"
	metricsDoc    = "../docs/metrics.md"
)

// promtool returns the path of promtool (Debian's prometheus package;
// scripts/test.sh installs it) or skips the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (apt-get install prometheus; scripts/test.sh installs it as root): the rules are not evaluated")
	}
	return p
}

// runPromtool runs promtool with args and fails the test, with its
// output, when it fails.
func runPromtool(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The scrape configuration and the rules are valid, and every alert
// behaves as its unit tests say (a firing and a quiet case each).
func TestPromtool(t *testing.T) {
	bin := promtool(t)
	runPromtool(t, bin, "check", "config", configFile)
	runPromtool(t, bin, "check", "rules", alertsFile)
	runPromtool(t, bin, "test", "rules", alertTests)
}

// docSeries is one line of docs/metrics.md's tables.
type docSeries struct {
	typ    string
	labels []string // sorted
	text   string   // the meaning column
}

// readDocs parses the series tables of docs/metrics.md.
func readDocs(t *testing.T) map[string]docSeries {
	t.Helper()
	doc, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]docSeries{}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `spool_") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		if len(cells) < 4 {
			t.Fatalf("docs/metrics.md: a table line with %d cells: %s", len(cells), line)
		}
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		var labels []string
		for _, l := range strings.Split(cells[2], ",") {
			if f := strings.Fields(l); len(f) > 0 {
				labels = append(labels, f[0])
			}
		}
		slices.Sort(labels)
		m[name] = docSeries{typ: strings.TrimSpace(cells[1]), labels: labels, text: strings.Join(cells[3:], "|")}
	}
	if len(m) < 50 {
		t.Fatalf("docs/metrics.md: only %d series", len(m))
	}
	return m
}

// baseName returns the documented series a sample name belongs to (a
// histogram's _bucket, _sum and _count are the histogram's), and whether
// it is a histogram's bucket.
func baseName(docs map[string]docSeries, name string) (string, bool) {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suffix); ok && docs[b].typ == "histogram" {
			return b, suffix == "_bucket"
		}
	}
	return name, false
}

var seriesName = regexp.MustCompile(`spool_[a-z0-9_]+`)

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readRules(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, alertsFile, &f)
	var rules []rule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) < 10 {
		t.Fatalf("%s: only %d rules", alertsFile, len(rules))
	}
	return rules
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// dashboardExprs returns every query of the dashboard (panels' targets and
// template variables).
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query") && strings.Contains(s, "spool_") {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return exprs
}

// usedNames returns every series name the rules and the dashboard query,
// as docs/metrics.md names it (histograms without their suffixes), with
// where each is used.
func usedNames(t *testing.T, docs map[string]docSeries) map[string]string {
	t.Helper()
	used := map[string]string{}
	for _, r := range readRules(t) {
		for _, n := range seriesName.FindAllString(r.Expr, -1) {
			n, _ = baseName(docs, n)
			used[n] = alertsFile + " " + r.Alert
		}
	}
	for _, e := range dashboardExprs(t) {
		for _, n := range seriesName.FindAllString(e, -1) {
			n, _ = baseName(docs, n)
			used[n] = dashboardFile
		}
	}
	return used
}

// inputSeries is one series of alerts_test.yml: its name and labels.
type inputSeries struct {
	name   string
	labels map[string]string
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseSeries(t *testing.T, s string) inputSeries {
	t.Helper()
	name, rest, _ := strings.Cut(s, "{")
	in := inputSeries{name: strings.TrimSpace(name), labels: map[string]string{}}
	for _, m := range labelPair.FindAllStringSubmatch(rest, -1) {
		in.labels[m[1]] = m[2]
	}
	return in
}

func (in inputSeries) labelNames() []string {
	var ns []string
	for k := range in.labels {
		ns = append(ns, k)
	}
	slices.Sort(ns)
	return ns
}

func readInputSeries(t *testing.T) []inputSeries {
	t.Helper()
	var f struct {
		RuleFiles          []string `yaml:"rule_files"`
		EvaluationInterval string   `yaml:"evaluation_interval"`
		Tests              []struct {
			Interval    string `yaml:"interval"`
			InputSeries []struct {
				Series string `yaml:"series"`
				Values string `yaml:"values"`
			} `yaml:"input_series"`
			AlertRuleTest []yaml.Node `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, alertTests, &f)
	var all []inputSeries
	for _, tg := range f.Tests {
		for _, s := range tg.InputSeries {
			all = append(all, parseSeries(t, s.Series))
		}
	}
	return all
}

// Every series the rules and the dashboard query is one of
// docs/metrics.md, and the input series of the rules' unit tests have the
// names and labels Spool exports, with label values the page names.
func TestSeriesAreDocumented(t *testing.T) {
	docs := readDocs(t)
	for n, where := range usedNames(t, docs) {
		if _, ok := docs[n]; !ok {
			t.Errorf("%s queries %s, which docs/metrics.md does not list", where, n)
		}
	}
	rules := readRules(t)
	tested := map[string]bool{}
	for _, in := range readInputSeries(t) {
		base, bucket := baseName(docs, in.name)
		d, ok := docs[base]
		if !ok {
			t.Errorf("%s: input series %s is not in docs/metrics.md", alertTests, in.name)
			continue
		}
		want := slices.Clone(d.labels)
		if bucket {
			want = append(want, "le")
			slices.Sort(want)
		}
		if got := in.labelNames(); !slices.Equal(got, want) {
			t.Errorf("%s: input series %s has labels %v, Spool exports %v", alertTests, in.name, got, want)
		}
		for k, v := range in.labels {
			switch k {
			case "reason", "op":
				if !strings.Contains(d.text, "`"+v+"`") {
					t.Errorf("%s: %s{%s=%q}: docs/metrics.md names no such %s", alertTests, in.name, k, v, k)
				}
			case "mode":
				if v != "queue" && v != "stream" {
					t.Errorf("%s: %s{mode=%q}", alertTests, in.name, v)
				}
			}
		}
		for _, r := range rules {
			if strings.Contains(r.Expr, base) {
				tested[r.Alert] = true
			}
		}
	}
	for _, r := range rules {
		if !tested[r.Alert] {
			t.Errorf("%s: no input series for %s", alertTests, r.Alert)
		}
		if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
			t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: a summary and a description are needed", r.Alert)
		}
	}
}

// absPath returns path made absolute (promtool resolves rule files
// relative to the file naming them).
func absPath(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

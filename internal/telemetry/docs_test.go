package telemetry

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every series Spool exports has its line in docs/metrics.md, and the
// page lists nothing that is not exported.
func TestDocsListEveryMetric(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	tel := New(nil)
	cs := append(tel.own, &brokerCollector{})
	ch := make(chan *prometheus.Desc, 256)
	go func() {
		for _, c := range cs {
			c.Describe(ch)
		}
		close(ch)
	}()
	name := regexp.MustCompile(`fqName: "([a-z0-9_]+)"`)
	exported := map[string]bool{}
	for d := range ch {
		m := name.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		exported[m[1]] = true
		if !strings.Contains(string(doc), "| `"+m[1]+"` |") {
			t.Errorf("docs/metrics.md has no line for %s", m[1])
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `(spool_[a-z_]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		if !exported[m[1]] {
			t.Errorf("docs/metrics.md lists %s, which is not exported", m[1])
		}
	}
	if len(exported) < 50 {
		t.Fatalf("only %d series described", len(exported))
	}
}

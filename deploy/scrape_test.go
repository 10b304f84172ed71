package deploy

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

func startServer(t *testing.T, cfg func(*server.Config)) *spooltest.Server {
	t.Helper()
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	return spooltest.StartServer(t, spooltest.Config(func(c *server.Config) {
		c.KafkaAddr = "127.0.0.1:0"
		c.SchemaRegistryAddr = "-"
		if cfg != nil {
			cfg(c)
		}
	}))
}

func scrape(t *testing.T, srv *spooltest.Server) string {
	t.Helper()
	resp, err := http.Get(srv.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// busyScrape drives a queue subscription (orders/billing, max in flight
// 1) through a delivery and its ack, a reject (a dead letter), and a lease
// held while another message waits behind max in flight, and returns the
// server's /metrics.
func busyScrape(t *testing.T) string {
	t.Helper()
	srv := startServer(t, nil)
	b := srv.Broker()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := srv.Client()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription("orders", "billing", catalog.SubConfig{Mode: catalog.ModeQueue,
		Queue: catalog.QueueConfig{AckTimeout: time.Minute, MaxDeliveries: 3, MaxInFlight: 1}}); err != nil {
		t.Fatal(err)
	}
	// A stream subscription, read by nobody.
	if _, err := b.CreateSubscription("orders", "audit", catalog.SubConfig{Mode: catalog.ModeStream}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Publish(ctx, "orders", client.Message{Value: []byte("m" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	// One more through Kafka, for the Kafka series.
	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.Server().KafkaAddr()), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if err := kc.ProduceSync(ctx, &kgo.Record{Value: []byte("kafka")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	s, err := b.Join(broker.JoinRequest{Topic: "orders", Subscription: "billing", Credits: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	next := func() broker.Delivered {
		t.Helper()
		for {
			ev, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			switch len(ev.Deliveries) {
			case 0:
				continue
			case 1:
				return ev.Deliveries[0]
			default:
				t.Fatalf("%d deliveries at once with max in flight 1", len(ev.Deliveries))
			}
		}
	}
	d := next()
	if err := s.Ack(1, []broker.OffsetRange{{Partition: d.Partition, From: d.Offset, To: d.Offset + 1}}); err != nil {
		t.Fatal(err)
	}
	d = next()
	if err := s.Reject(2, d.Partition, d.Offset, "bad payload"); err != nil {
		t.Fatal(err)
	}
	next() // leased and kept: the fourth message waits behind max in flight
	b.QueueTick()
	return scrape(t, srv)
}

// sample is one line of a scrape: name, the label block as written
// (without braces), value, and the type of its family.
type sample struct {
	name, labels, typ string
	value             float64
}

func parseScrape(t *testing.T, body string) []sample {
	t.Helper()
	types := map[string]string{}
	var out []sample
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]] = f[3]
			continue
		}
		if !strings.HasPrefix(line, "spool_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		s := sample{name: line[:i], value: v}
		if n, l, ok := strings.Cut(line[:i], "{"); ok {
			s.name, s.labels = n, strings.TrimSuffix(l, "}")
		}
		s.typ = types[s.name]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(s.name, suffix); ok && s.typ == "" {
				s.typ = types[b]
			}
		}
		if s.typ == "" {
			t.Fatalf("no TYPE for %s", line)
		}
		out = append(out, s)
	}
	return out
}

// The series the rules and the dashboard query are exported by a real
// server (or, for those that exist only while something fails, listed in
// docs/metrics.md); the unit tests' input series have the labels (and
// bucket bounds) of the real ones; and every rule evaluates without error
// over a real server's series, firing where that server's state says it
// must: a queue held at max in flight, a dead letter, a data directory
// below its watermark.
func TestRulesOnRealScrape(t *testing.T) {
	docs := readDocs(t)
	busy := parseScrape(t, busyScrape(t))
	// A second server, not ready: its data directory is below the
	// free-space watermark.
	full := parseScrape(t, scrape(t, startServer(t, func(c *server.Config) { c.Storage.MinFreeBytes = 1 << 62 })))

	labelSets := map[string][][]string{} // name → label names of its samples
	les := map[string]map[string]bool{}  // bucket name → le values
	for _, s := range slices.Concat(busy, full) {
		in := parseSeries(t, s.name+"{"+s.labels+"}")
		names := in.labelNames()
		if !slices.ContainsFunc(labelSets[s.name], func(l []string) bool { return slices.Equal(l, names) }) {
			labelSets[s.name] = append(labelSets[s.name], names)
		}
		if le, ok := in.labels["le"]; ok {
			if les[s.name] == nil {
				les[s.name] = map[string]bool{}
			}
			les[s.name][le] = true
		}
	}
	exported := func(name string) bool {
		return len(labelSets[name]) > 0 || len(labelSets[name+"_count"]) > 0
	}
	for n, where := range usedNames(t, docs) {
		if !exported(n) {
			if _, ok := docs[n]; !ok {
				t.Errorf("%s queries %s: neither exported by a running server nor listed in docs/metrics.md", where, n)
			} else {
				t.Logf("%s: not in these scrapes (exported only while it happens), listed in docs/metrics.md", n)
			}
		}
	}
	for _, in := range readInputSeries(t) {
		sets, ok := labelSets[in.name]
		if !ok {
			continue // checked against docs/metrics.md by TestSeriesAreDocumented
		}
		if names := in.labelNames(); !slices.ContainsFunc(sets, func(l []string) bool { return slices.Equal(l, names) }) {
			t.Errorf("%s: %s has labels %v, a real server's %v", alertTests, in.name, names, sets)
		}
		if le, ok := in.labels["le"]; ok && !les[in.name][le] {
			t.Errorf("%s: %s{le=%q}: no such bucket in a real scrape", alertTests, in.name, le)
		}
	}

	bin := promtool(t)
	// The scrapes as promtool input series, one per server (instance a,
	// b), 30 minutes of them: gauges as they were all along, counters and
	// histograms at 0 first and at their value from 1m on.
	type series struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	}
	var input []series
	for inst, samples := range map[string][]sample{"a": busy, "b": full} {
		for _, s := range samples {
			labels := `instance="` + inst + `"`
			if s.labels != "" {
				labels = s.labels + "," + labels
			}
			v := strconv.FormatFloat(s.value, 'g', -1, 64)
			values := v + "x30"
			if s.typ == "counter" || s.typ == "histogram" {
				values = "0 " + v + "x29"
			}
			input = append(input, series{Series: s.name + "{" + labels + "}", Values: values})
		}
	}
	type sampleExp struct {
		Labels string  `yaml:"labels"`
		Value  float64 `yaml:"value"`
	}
	type exprTest struct {
		Expr       string      `yaml:"expr"`
		EvalTime   string      `yaml:"eval_time"`
		ExpSamples []sampleExp `yaml:"exp_samples"`
	}
	firing := `count by (alertname, instance, topic, subscription, reason) (ALERTS{alertstate="firing",alertname!="SpoolFsyncSlow"})`
	// The dashboard's queries as recording rules, with Grafana's
	// variables given values: they must parse and evaluate too.
	dir := t.TempDir()
	dash := dashboardRules(t)
	dashPath := filepath.Join(dir, "dashboard_rules.yml")
	if err := os.WriteFile(dashPath, dash, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, bin, "check", "rules", dashPath)
	test := map[string]any{
		"rule_files":          []string{absPath(t, alertsFile), dashPath},
		"evaluation_interval": "1m",
		"tests": []map[string]any{{
			"interval":     "1m",
			"input_series": input,
			"promql_expr_test": []exprTest{
				// The reject is in the last 10 minutes: its dead letter alerts.
				// Server b has been below its watermark and not ready from
				// the start, past the rules' 1 and 5 minutes.
				{Expr: firing, EvalTime: "5m", ExpSamples: []sampleExp{
					{Labels: `{alertname="SpoolDeadLetters",topic="orders",subscription="billing",reason="rejected"}`, Value: 1},
					{Labels: `{alertname="SpoolDiskLow",instance="b",reason="disk"}`, Value: 1},
					{Labels: `{alertname="SpoolNotReady",instance="b"}`, Value: 1},
				}},
				// Max in flight for 10 minutes too; the dead letter is
				// older than 10 minutes. Nothing else (the fsync alert
				// depends on this machine's disk and is left out).
				{Expr: firing, EvalTime: "15m", ExpSamples: []sampleExp{
					{Labels: `{alertname="SpoolQueueAtMaxInFlight",topic="orders",subscription="billing"}`, Value: 1},
					{Labels: `{alertname="SpoolDiskLow",instance="b",reason="disk"}`, Value: 1},
					{Labels: `{alertname="SpoolNotReady",instance="b"}`, Value: 1},
				}},
			},
		}},
	}
	b, err := yaml.Marshal(test)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "real_test.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, bin, "test", "rules", path)
	if t.Failed() {
		t.Logf("%s:\n%s\n%s:\n%s", path, b, dashPath, dash)
	}
}

// dashboardRules returns the dashboard's queries as a rule file of
// recording rules, Grafana's variables replaced by values.
func dashboardRules(t *testing.T) []byte {
	t.Helper()
	vars := strings.NewReplacer("$__rate_interval", "5m", "$topic", ".*", "$subscription", ".*")
	type record struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []record
	for i, e := range dashboardExprs(t) {
		if strings.HasPrefix(e, "label_values(") {
			continue // a template variable's query, not PromQL
		}
		rules = append(rules, record{Record: "dashboard:query_" + strconv.Itoa(i), Expr: vars.Replace(e)})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []map[string]any{{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

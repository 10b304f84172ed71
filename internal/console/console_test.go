package console

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/avro"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/schema/sreg"
	"github.com/spoolmq/spool/internal/state"
)

var quiet = slog.New(slog.DiscardHandler)

// env is a console over a real broker and registry, served by httptest.
type env struct {
	t   *testing.T
	b   *broker.Broker
	reg *sreg.Registry
	c   *Console
	srv *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: dir, State: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := sreg.New(sreg.Config{Space: b.Space("schema"), Formats: sreg.Formats(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b.SetSchemaValidator(reg)
	e := &env{t: t, b: b, reg: reg, c: New(Config{Broker: b, Registry: reg, Logger: quiet})}
	mux := http.NewServeMux()
	e.c.Mount(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.Close()
		b.Close()
		st.Close()
	})
	return e
}

// get returns a page's status and body.
func (e *env) get(path string) (int, string) {
	e.t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// post sends a form with an Origin header ("" for none).
func (e *env) post(path, origin string, form url.Values) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (e *env) publish(topic string, msgs ...broker.Message) {
	e.t.Helper()
	for i := range msgs {
		if msgs[i].Partition == 0 {
			msgs[i].Partition = -1
		}
	}
	if _, err := e.b.Publish(topic, msgs); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) topic(name string, cfg catalog.TopicConfig) {
	e.t.Helper()
	if _, err := e.b.CreateTopic(name, cfg); err != nil {
		e.t.Fatal(err)
	}
}

func TestPages(t *testing.T) {
	e := newEnv(t)
	e.topic("orders", catalog.TopicConfig{Partitions: 2})
	if _, err := e.b.CreateSubscription("orders", "billing", catalog.SubConfig{Mode: catalog.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("orders", "audit", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	e.publish("orders", broker.Message{Key: []byte("k1"), Value: []byte("hello")}, broker.Message{Value: []byte{0xff, 0x00, 0x01}})
	for path, want := range map[string][]string{
		"/":                                    {`href="/topics/orders"`, "<td class=\"num\">2</td>"},
		"/topics/orders":                       {"billing", "audit", "queue", "stream", `data-chart="rates"`},
		"/topics/orders/subscriptions/billing": {"Reset subscription", `name="to"`, "dead-letters", "No members"},
		"/topics/orders/subscriptions/audit":   {"Halted", "Reset subscription"},
		"/topics/orders/messages":              {"hello", "k1", "00000000  ff 00 01"},
		"/topics/orders/subscriptions/billing/dead-letters": {"No dead letters", "Redrive"},
		"/schemas":         {"no subjects"},
		"/console/catalog": {"orders", "billing (queue)"},
	} {
		code, body := e.get(path)
		if code != 200 {
			t.Errorf("%s: %d\n%s", path, code, body)
			continue
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: no %q in\n%s", path, w, body)
			}
		}
		for _, w := range []string{`<html lang="en">`, "<main", `<nav aria-label="Main">`} {
			if !strings.Contains(body, w) {
				t.Errorf("%s: no %q", path, w)
			}
		}
	}
}

// TestNotFoundAndBadInput: unknown names are 404 pages, bad parameters 400
// pages saying what is wrong; nothing panics.
func TestNotFoundAndBadInput(t *testing.T) {
	e := newEnv(t)
	e.topic("orders", catalog.TopicConfig{Partitions: 2})
	if _, err := e.b.CreateSubscription("orders", "w", catalog.SubConfig{Mode: catalog.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/topics/nope", 404, "not found"},
		{"/topics/nope/messages", 404, "not found"},
		{"/topics/orders/subscriptions/nope", 404, "not found"},
		{"/topics/nope/subscriptions/w/dead-letters", 404, "not found"},
		{"/schemas/nope", 404, "not found"},
		{"/topics/orders/extra/path", 404, "There is no page"},
		{"/topics/orders/messages?partition=7", 400, "out of range"},
		{"/topics/orders/messages?partition=-1", 400, "out of range"},
		{"/topics/orders/messages?partition=x", 400, "not a partition"},
		{"/topics/orders/messages?offset=-5", 400, "not an offset"},
		{"/topics/orders/messages?offset=1e99", 400, "not an offset"},
		{"/topics/orders/messages?time=yesterday", 400, "not a time"},
		{"/topics/orders/messages?time=99999999999999999", 400, "not a time"},
		{"/topics/orders/messages?offset=1&time=1", 400, "not both"},
		{"/topics/orders/messages?limit=0", 400, "at least 1"},
		{"/topics/orders/messages?limit=-3", 400, "at least 1"},
		{"/topics/orders/messages?limit=abc", 400, "not a number"},
		{"/topics/orders/subscriptions/w/dead-letters?from=-1", 400, "not an offset"},
		{"/schemas/x?version=zero", 404, "not found"},
		{"/console/api/stats", 400, "topic is required"},
		{"/console/api/stats?topic=nope", 404, "not found"},
		{"/console/api/stats?topic=orders&sub=nope", 404, "not found"},
	} {
		code, body := e.get(tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d, want %d with %q:\n%s", tc.path, code, tc.code, tc.want, body)
		}
	}
	if _, err := e.reg.Register("s", sreg.SchemaInput{Type: "JSON", Text: `{"type":"object"}`}, 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/schemas/s?version=zero", "/schemas/s?from=0", "/schemas/s?to=-7"} {
		if code, body := e.get(p); code != 400 || !strings.Contains(body, "not a version") {
			t.Errorf("%s: %d\n%s", p, code, body)
		}
	}
	if code, body := e.get("/schemas/s?version=9"); code != 404 {
		t.Errorf("missing version: %d\n%s", code, body)
	}
}

// TestLimitClamped: a page holds at most maxLimit messages whatever the
// limit asked for, and at most about maxPageBytes; long values are cut for
// display with a note.
func TestLimitClamped(t *testing.T) {
	e := newEnv(t)
	e.topic("many", catalog.TopicConfig{Partitions: 1})
	var msgs []broker.Message
	for range 700 {
		msgs = append(msgs, broker.Message{Value: []byte("m")})
	}
	e.publish("many", msgs...)
	rows := func(body string) int { return strings.Count(body, `<th scope="row" class="num">`) }
	for _, limit := range []string{"1000", "99999999999999999999999"} {
		code, body := e.get("/topics/many/messages?partition=0&limit=" + limit)
		if code != 200 || rows(body) != maxLimit || !strings.Contains(body, "showing at most 500") {
			t.Errorf("limit %s: %d, %d rows", limit, code, rows(body))
		}
	}
	code, body := e.get("/topics/many/messages?partition=0")
	if code != 200 || rows(body) != defaultLimit || !strings.Contains(body, "offset=50&amp;limit=50") {
		t.Errorf("default: %d, %d rows, next link missing", code, rows(body))
	}

	e.topic("big", catalog.TopicConfig{Partitions: 1, MaxMessageBytes: 2 << 20})
	for range 4 {
		e.publish("big", broker.Message{Value: []byte(strings.Repeat("x", 1500<<10))})
	}
	code, body = e.get("/topics/big/messages")
	if code != 200 || rows(body) != 3 || !strings.Contains(body, "stopped after 4 MiB") || !strings.Contains(body, "Showing part of 1.5 MiB") {
		t.Errorf("big: %d, %d rows", code, rows(body))
	}
	if len(body) > maxPageBytes/10 {
		t.Errorf("big: a page of %d bytes", len(body))
	}
}

// TestEscaping: names, keys, headers and values are escaped; nothing a
// message carries becomes markup.
func TestEscaping(t *testing.T) {
	e := newEnv(t)
	const evil = `<script>alert("x")</script>'"&`
	e.topic("t", catalog.TopicConfig{Partitions: 1, Owner: evil, Description: evil, Labels: map[string]string{evil: evil}})
	e.publish("t", broker.Message{Key: []byte(evil), Value: []byte(evil),
		Headers: []batch.RecordHeader{{Key: evil, Value: []byte(evil)}}})
	if _, err := e.reg.Register(evil, sreg.SchemaInput{Type: "JSON", Text: `{"type":"object","description":"<script>alert(1)</script>"}`}, 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/topics/t/messages", "/console/catalog", "/schemas", "/schemas/" + url.PathEscape(evil), "/topics/" + url.PathEscape(evil)} {
		_, body := e.get(p)
		if strings.Contains(body, "<script>") || strings.Contains(body, `alert("x")`) {
			t.Errorf("%s: unescaped:\n%s", p, body)
		}
		if n := strings.Count(body, "<script"); n > 1 {
			t.Errorf("%s: %d script elements", p, n)
		}
	}
	_, body := e.get("/topics/t/messages")
	if !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#39;&#34;&amp;") {
		t.Errorf("the value is not shown escaped:\n%s", body)
	}
	resp, err := http.Get(e.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
}

// TestCrossSitePostRefused: a form POST needs an Origin (or Referer)
// naming this server; GET never changes state.
func TestCrossSitePostRefused(t *testing.T) {
	e := newEnv(t)
	e.topic("t", catalog.TopicConfig{Partitions: 1})
	if _, err := e.b.CreateSubscription("t", "s", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	e.publish("t", broker.Message{Value: []byte("a")}, broker.Message{Value: []byte("b")})
	committed := func() int64 {
		si, err := e.b.DescribeSubscription("t", "s")
		if err != nil {
			t.Fatal(err)
		}
		return si.Partitions[0].Committed
	}
	latest := url.Values{"to": {"latest"}, "partition": {"all"}}
	host := strings.TrimPrefix(e.srv.URL, "http://")
	for _, origin := range []string{"", "http://evil.example", "null", "http://" + host + ".evil.example", "file://" + host} {
		if code, body := e.post("/topics/t/subscriptions/s/reset", origin, latest); code != 403 || !strings.Contains(body, "refused") {
			t.Errorf("origin %q: %d\n%s", origin, code, body)
		}
		if code, _ := e.post("/topics/t/subscriptions/s/redrive", origin, url.Values{}); code != 403 {
			t.Errorf("redrive, origin %q: %d", origin, code)
		}
	}
	// Referer from another site, no Origin.
	req, _ := http.NewRequest("POST", e.srv.URL+"/topics/t/subscriptions/s/reset", strings.NewReader(latest.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", "http://evil.example/page")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("cross-site referer: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	if code, _ := e.get("/topics/t/subscriptions/s/reset?to=latest"); code != 405 {
		t.Errorf("GET reset: %d", code)
	}
	if c := committed(); c != 0 {
		t.Fatalf("committed moved to %d by a refused request", c)
	}
	// A same-origin Referer without Origin is accepted.
	req, _ = http.NewRequest("POST", e.srv.URL+"/topics/t/subscriptions/s/reset", strings.NewReader(latest.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", e.srv.URL+"/topics/t/subscriptions/s")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("same-origin reset: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if c := committed(); c != 2 {
		t.Fatalf("committed %d after a reset to latest", c)
	}
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"to": {"offset"}, "offset": {"-1"}}, "not an offset"},
		{url.Values{"to": {"offset"}, "offset": {"zz"}}, "not an offset"},
		{url.Values{"to": {"time"}, "time": {"soon"}}, "not a time"},
		{url.Values{"to": {"time"}}, "give a time"},
		{url.Values{"to": {"sideways"}}, "choose earliest"},
		{url.Values{"to": {"earliest"}, "partition": {"x"}}, "not a partition"},
		{url.Values{"to": {"earliest"}, "partition": {"5"}}, "does not exist"},
		{url.Values{"to": {"offset"}, "offset": {"99"}, "partition": {"0"}}, ""},
	} {
		code, body := e.post("/topics/t/subscriptions/s/reset", e.srv.URL, tc.form)
		if code != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("reset %v: %d\n%s", tc.form, code, body)
		}
	}
	for _, f := range []url.Values{{"target": {"x"}}, {"limit": {"-2"}}, {"limit": {"many"}}} {
		if code, _ := e.post("/topics/t/subscriptions/s/redrive", e.srv.URL, f); code != 400 {
			t.Errorf("redrive %v: %d", f, code)
		}
	}
	code, body := e.post("/topics/t/subscriptions/s/reset", e.srv.URL, url.Values{"to": {"offset"}, "offset": {"1"}, "partition": {"0"}})
	if code != 200 || !strings.Contains(body, "Reset to 1 done") || committed() != 1 {
		t.Errorf("reset to offset 1: %d, committed %d\n%s", code, committed(), body)
	}
}

// TestSchemaDecodingAndDiff: values of a bound topic are decoded with the
// schema they name; the subject page shows versions and their diff.
func TestSchemaDecodingAndDiff(t *testing.T) {
	e := newEnv(t)
	v1 := `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}`
	v2 := `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"qty","type":"int","default":1}]}`
	id1, err := e.reg.Register("orders-value", sreg.SchemaInput{Type: "AVRO", Text: v1}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Register("orders-value", sreg.SchemaInput{Type: "AVRO", Text: v2}, 0, 0); err != nil {
		t.Fatal(err)
	}
	e.topic("orders", catalog.TopicConfig{Partitions: 1, SchemaSubject: "orders-value"})
	s, _ := avro.Parse(v1)
	payload, err := s.Encode(map[string]any{"id": int64(42), "item": "tea <b>"})
	if err != nil {
		t.Fatal(err)
	}
	wire := append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id1)), payload...)
	e.publish("orders", broker.Message{Value: wire})
	_, body := e.get("/topics/orders/messages")
	if !strings.Contains(body, `&#34;id&#34;: 42`) || !strings.Contains(body, "tea &lt;b&gt;") || !strings.Contains(body, "Decoded with schema 1") {
		t.Errorf("decoded value missing:\n%s", body)
	}
	_, body = e.get("/schemas/orders-value?from=1&to=2")
	if !strings.Contains(body, "<ins>&#43;") || !strings.Contains(body, "qty") || !strings.Contains(body, "@@") {
		t.Errorf("diff missing:\n%s", body)
	}
	_, body = e.get("/schemas/orders-value?version=1")
	if !strings.Contains(body, "Version 1 (id 1, AVRO)") || strings.Contains(body, "qty") && !strings.Contains(body, "<ins>") {
		t.Errorf("version 1:\n%s", body)
	}
	_, body = e.get("/schemas")
	if !strings.Contains(body, `href="/schemas/orders-value"`) || !strings.Contains(body, `href="/topics/orders"`) {
		t.Errorf("subjects:\n%s", body)
	}
}

// TestRatesFromOffsets: without Stats, the stats endpoint derives the
// publish and consume rates from offsets between samples; series of
// deleted topics are dropped.
func TestRatesFromOffsets(t *testing.T) {
	e := newEnv(t)
	now := time.Unix(1000, 0)
	e.c.rates.now = func() time.Time { return now }
	e.topic("t", catalog.TopicConfig{Partitions: 1})
	if _, err := e.b.CreateSubscription("t", "s", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	stats := func() statsReply {
		code, body := e.get("/console/api/stats?topic=t&sub=s")
		if code != 200 {
			t.Fatalf("stats: %d %s", code, body)
		}
		var r statsReply
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	stats()
	for range 10 {
		e.publish("t", broker.Message{Value: []byte("x")})
	}
	now = now.Add(2 * time.Second)
	if _, err := e.b.ResetSubscription("t", "s", catalog.Position{Kind: catalog.AtOffset, Offset: 4}, 0); err != nil {
		t.Fatal(err)
	}
	r := stats()
	pub, cons := r.Rates.Series[0].Points, r.Rates.Series[1].Points
	if len(pub) != 1 || *pub[0][1] != 5 || len(cons) != 1 || *cons[0][1] != 2 {
		t.Fatalf("rates %s", mustJSON(r.Rates))
	}
	if r.Latency.Available || r.Latency.Note == "" {
		t.Errorf("latency without telemetry: %+v", r.Latency)
	}
	if err := e.b.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	e.get("/")
	e.c.rates.mu.Lock()
	n := len(e.c.rates.series)
	e.c.rates.mu.Unlock()
	if n != 0 {
		t.Errorf("%d series left after the topic was deleted", n)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// fakeStats is telemetry for TestRatesFromStats.
type fakeStats struct{ n uint64 }

func (f *fakeStats) TopicPublished(string) (uint64, uint64) { return f.n, f.n * 10 }
func (f *fakeStats) Subscription(string, string) (SubCounters, float64, float64, bool) {
	return SubCounters{Delivered: f.n, Acked: f.n / 2, Redelivered: 3, DeadLettered: 4}, 0.002, 0.05, true
}

func TestRatesFromStats(t *testing.T) {
	e := newEnv(t)
	fs := &fakeStats{}
	now := time.Unix(1000, 0)
	e.c = New(Config{Broker: e.b, Registry: e.reg, Stats: fs, Now: func() time.Time { return now }})
	e.topic("t", catalog.TopicConfig{Partitions: 1})
	if _, err := e.b.CreateSubscription("t", "s", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		rec := httptest.NewRecorder()
		e.c.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), "GET", path, nil))
		if rec.Code != 200 {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		return rec.Body.String()
	}
	get("/console/api/stats?topic=t&sub=s")
	fs.n, now = 100, now.Add(4*time.Second)
	var r statsReply
	json.Unmarshal([]byte(get("/console/api/stats?topic=t&sub=s")), &r)
	if r.Source != "telemetry" || len(r.Rates.Series) != 3 || *r.Rates.Series[0].Points[0][1] != 25 || *r.Rates.Series[2].Points[0][1] != 12.5 {
		t.Fatalf("rates %s", mustJSON(r))
	}
	if !r.Latency.Available || *r.Latency.Series[1].Points[1][1] != 0.05 {
		t.Fatalf("latency %s", mustJSON(r.Latency))
	}
	json.Unmarshal([]byte(get("/console/api/stats?topic=t")), &r)
	if !r.Latency.Available || len(r.Latency.Series) != 2 {
		t.Fatalf("topic latency %s", mustJSON(r.Latency))
	}
	if body := get("/topics/t"); !strings.Contains(body, `data-chart="latency"`) || !strings.Contains(body, "<td class=\"num\">3</td>") {
		t.Errorf("topic page with telemetry:\n%s", body)
	}
}

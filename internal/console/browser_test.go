package console_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/spooltest"
)

const chromium = "/usr/bin/chromium"

const (
	paymentV1 = `{"type":"record","name":"Payment","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}`
	paymentV2 = `{"type":"record","name":"Payment","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"qty","type":"int","default":1}]}`
	evil      = `<script>window.__pwned=1</script>"quoted" 'single' & <img src=x onerror="window.__pwned=2">`
)

// artifactsDir is where the screenshots go: $SPOOL_ARTIFACTS/console if
// set, else a directory of the test.
func artifactsDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "screenshots")
	if a := os.Getenv("SPOOL_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fixture fills a server with what the console shows: a topic with a
// queue subscription holding dead letters and a stream subscription with a
// member, a schema-bound topic with an Avro message in the wire format,
// and a topic whose message carries markup.
func fixture(t *testing.T, s *spooltest.Server) (streamMember *broker.Session) {
	t.Helper()
	b := s.Broker()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.CreateTopic("orders", catalog.TopicConfig{Partitions: 2})
	must(err)
	_, err = b.CreateSubscription("orders", "billing", catalog.SubConfig{Mode: catalog.ModeQueue})
	must(err)
	_, err = b.CreateSubscription("orders", "audit", catalog.SubConfig{})
	must(err)
	var msgs []broker.Message
	for i := range 20 {
		msgs = append(msgs, broker.Message{Key: fmt.Appendf(nil, "customer-%d", i%4), Value: fmt.Appendf(nil, `{"order":%d}`, i), Partition: -1})
	}
	_, err = b.Publish("orders", msgs)
	must(err)
	// Three messages of partition 0 rejected: dead-lettered at once.
	l, err := b.Lease("orders", "billing", "browser-test", 0, broker.LeaseOptions{MaxRecords: 3, MaxBytes: 1 << 20})
	must(err)
	if l.Leased != 3 {
		t.Fatalf("leased %d", l.Leased)
	}
	_, err = b.SettleLeases("orders", "billing", "browser-test", 0, []broker.LeaseOp{{First: l.Runs[0].First, Last: l.Runs[len(l.Runs)-1].Last, Action: broker.LeaseReject, Reason: "payment <declined>"}})
	must(err)
	deadline := time.Now().Add(5 * time.Second)
	for {
		dls, _, err := b.ListDeadLetters("orders", "billing", 0, 10)
		must(err)
		if len(dls) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters", len(dls))
		}
		time.Sleep(20 * time.Millisecond)
	}
	sess, err := b.Join(broker.JoinRequest{Topic: "orders", Subscription: "audit", ClientID: "browser-test-client", SessionTimeout: time.Minute})
	must(err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	sess.Next(ctx) // the assignment
	cancel()

	rcl, err := sr.NewClient(sr.URLs("http://" + s.Server().SchemaRegistryAddr()))
	must(err)
	v1, err := rcl.CreateSchema(context.Background(), "payments-value", sr.Schema{Schema: paymentV1, Type: sr.TypeAvro})
	must(err)
	_, err = rcl.CreateSchema(context.Background(), "payments-value", sr.Schema{Schema: paymentV2, Type: sr.TypeAvro})
	must(err)
	_, err = b.CreateTopic("payments", catalog.TopicConfig{Partitions: 1, SchemaSubject: "payments-value"})
	must(err)
	as, err := avro.Parse(paymentV1)
	must(err)
	payload, err := as.Encode(map[string]any{"id": int64(4242), "item": "green tea"})
	must(err)
	_, err = b.Publish("payments", []broker.Message{{Value: append(binary.BigEndian.AppendUint32([]byte{0}, uint32(v1.ID)), payload...), Partition: -1}})
	must(err)

	_, err = b.CreateTopic("evil", catalog.TopicConfig{Partitions: 1, Description: evil})
	must(err)
	_, err = b.Publish("evil", []broker.Message{{Key: []byte(evil), Value: []byte(evil), Partition: -1,
		Headers: []batch.RecordHeader{{Key: "x-" + evil, Value: []byte(evil)}}}})
	must(err)
	return sess
}

// TestBrowser loads every page of the console in headless Chromium, checks
// what it shows, redrives dead letters and resets a subscription through
// the forms, checks that markup in messages stays text, and saves a
// screenshot of each page.
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s is not installed (apt-get install chromium; scripts/test.sh installs it): the browser test of the console needs it", chromium)
	}
	s := spooltest.StartServer(t)
	member := fixture(t, s)
	defer member.Leave()
	b := s.Broker()
	base := s.URL()
	shots := artifactsDir(t)
	t.Logf("screenshots in %s", shots)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, tcancel := context.WithTimeout(ctx, 25*time.Second)
	defer tcancel()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	click := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
	textOf := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(expr string) int {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// page loads path, waits for sel, screenshots it and returns the text
	// of its main landmark.
	page := func(name, path, sel string, more ...chromedp.Action[chromedp.Void]) string {
		t.Helper()
		do(name, append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(base + path), visible(sel)}, more...)...)
		shot(name)
		return textOf("main")
	}
	contains := func(page, text string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: %q not shown in:\n%s", page, w, text)
			}
		}
	}

	// Overview.
	text := page("01-overview", "/", "main table")
	contains("overview", text, "orders", "payments", "payments-value", "dlq.orders.billing", "evil")
	if !strings.Contains(text, "orders\t2\t20\t") {
		t.Errorf("overview: orders' partitions and depth not shown:\n%s", text)
	}

	// Topic page, with a live chart drawn from two samples.
	text = page("02-topic", "/topics/orders", "main table", visible(`figure[data-chart="rates"] svg polyline`))
	contains("topic", text, "billing", "audit", "queue", "stream", "Start offset", "End offset")

	// Subscription page: lag, members, no latency without telemetry.
	text = page("03-subscription", "/topics/orders/subscriptions/audit", "#reset", visible(`figure[data-chart="latency"] .nodata`))
	contains("subscription", text, "20 messages", "browser-test-client", "Reset subscription", "no data")

	// Messages of the bound topic, decoded with the schema.
	text = page("04-messages", "/topics/payments/messages", "table.messages")
	contains("messages", text, `"id": 4242`, `"item": "green tea"`, "Decoded with schema 1")

	// Schemas, a subject's versions and their diff, the catalog.
	text = page("05-schemas", "/schemas", "main table")
	contains("schemas", text, "payments-value", "AVRO")
	text = page("06-subject-diff", "/schemas/payments-value", "#diff-from", click(`#diff + form button`), visible("pre.diff"))
	contains("subject", text, "Version 2 (id 2, AVRO)", `+      "name": "qty",`, "@@")
	text = page("07-catalog", "/console/catalog", "main table")
	contains("catalog", text, "orders", "billing (queue)", "payments-value v2")

	// Dead letters, then a redrive through the form.
	endBefore := totalEnd(t, b, "orders")
	text = page("08-dead-letters", "/topics/orders/subscriptions/billing/dead-letters", "main table")
	contains("dead letters", text, "rejected", "payment <declined>", "3 dead letters")
	do("redrive", click(`form[action$="/redrive"] button`), visible("#redrive-moved"))
	shot("09-redriven")
	if moved := textOf("#redrive-moved"); moved != "3" {
		t.Errorf("redrive moved %q", moved)
	}
	if got := totalEnd(t, b, "orders"); got != endBefore+3 {
		t.Errorf("orders end %d after the redrive, want %d", got, endBefore+3)
	}
	dls, _, err := b.ListDeadLetters("orders", "billing", 0, 10)
	if err != nil || len(dls) != 3 || !dls[0].Redriven || !dls[2].Redriven {
		t.Errorf("dead letters after the redrive: %+v %v", dls, err)
	}

	// A reset of the stream subscription to the end.
	page("10-subscription-before-reset", "/topics/orders/subscriptions/audit", "#to-latest")
	do("reset", click("#to-latest"), click(`form[action$="/reset"] button`), visible("#reset-done"))
	shot("11-reset")
	si, err := b.DescribeSubscription("orders", "audit")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range si.Partitions {
		if p.Committed != p.End || p.End == 0 {
			t.Errorf("partition %d: committed %d, end %d after a reset to latest", p.Partition, p.Committed, p.End)
		}
	}

	// Markup in a message, its key, a header and a topic's description is
	// shown as text and never runs.
	text = page("12-escaping", "/topics/evil/messages", "table.messages")
	if pwned, n := eval(`window.__pwned === undefined ? 0 : window.__pwned`), eval(`document.querySelectorAll("main script, main img").length`); pwned != 0 || n != 0 {
		t.Errorf("markup from a message ran: __pwned=%d, %d script or img elements", pwned, n)
	}
	contains("escaping", text, `<script>window.__pwned=1</script>"quoted" 'single' &`)
	text = page("13-escaping-catalog", "/console/catalog", "main table")
	if pwned := eval(`window.__pwned === undefined ? 0 : window.__pwned`); pwned != 0 {
		t.Errorf("markup of a description ran: __pwned=%d", pwned)
	}
	contains("escaping catalog", text, `<img src=x onerror="window.__pwned=2">`)
}

// totalEnd is the sum of a topic's partitions' end offsets.
func totalEnd(t *testing.T, b *broker.Broker, topic string) int64 {
	t.Helper()
	info, err := b.DescribeTopic(topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range info.Partitions {
		n += p.EndOffset
	}
	return n
}

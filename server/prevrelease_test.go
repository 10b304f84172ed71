package server

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/internal/state"
)

// TestPreviousReleaseDataDir opens a data directory written by release
// 7e44b4f, whose state-store records were version-0 JSON
// (docs/format/state.md), and checks that every topic and subscription
// config, committed offset, queue floor, parked message and dead letter
// reads back with its meaning then, and that the server works on it:
// publishing, consuming, acknowledging, restarting. The directory and the
// values below come from scripts/prev-release-fixture.sh, which says how
// the state was made; regenerating it changes the ids and times below.
func TestPreviousReleaseDataDir(t *testing.T) {
	dir := t.TempDir()
	untar(t, filepath.Join("testdata", "prev-release-7e44b4f.tar.gz"), dir)
	data := filepath.Join(dir, "data")
	// The server's clock runs at least an hour after the fixture was made,
	// whatever this machine's clock says, so that what the old server
	// parked for minutes is due (and what it parked for ten years is not).
	clk := laterClock{max(0, time.Until(utc("2026-12-06T21:30:45Z").Add(time.Hour)))}
	started := clk.Now()
	srv := startAt(t, data, clk)
	b := serverhook.Broker(srv)

	checkTopics(t, b, map[string][]int64{"orders": {5, 4, 2}, "jobs": {4, 5}})
	checkSubs(t, b)
	checkOffsets(t, b, map[string][]int64{"orders/billing": {4, 4, 2}, "orders/audit": {2, 2, 2}, "orders/replay": {1, 1, 1}, "metrics/dash": {0}})
	// workers: job-0 and job-1 acked, the redriven copy not for it, job-2
	// parked; delayed-soon and delayed-far parked, expires dropped, leased
	// delivered once. retry: job-0 and job-1 dead-lettered; delayed-soon
	// and delayed-far parked, expires dead-lettered.
	checkQueue(t, b, "workers", []queueWant{{floor: 4, parked: 1}, {floor: 3, parked: 2}})
	checkQueue(t, b, "retry", []queueWant{{floor: 2}, {floor: 3, parked: 2}})
	checkDeadLetters(t, b)

	c, err := client.New("http://"+srv.HTTPAddr(), client.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Publish(ctx, "orders", client.Message{Value: []byte("o-11"), Subject: "orders.eu.created"}.ToPartition(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "jobs", client.Message{Value: []byte("new")}.ToPartition(0)); err != nil {
		t.Fatal(err)
	}

	// billing is at the end of its matches but for o-10, which its filter
	// skips: o-11 is all it gets.
	got := consume(t, c, "orders", "billing", 1)
	if want := []delivery{{0, 5, "o-11", 1, 0}}; !reflect.DeepEqual(got, want) {
		t.Errorf("billing received %v, want %v", got, want)
	}
	// audit was reset to offset 2 in every partition.
	got = consume(t, c, "orders", "audit", 6)
	if want := []delivery{{0, 2, "o-2", 1, 0}, {0, 3, "o-6", 1, 0}, {0, 4, "o-10", 1, 0}, {0, 5, "o-11", 1, 0},
		{1, 2, "o-7", 1, 0}, {1, 3, "o-8", 1, 0}}; !reflect.DeepEqual(got, want) {
		t.Errorf("audit received %v, want %v", got, want)
	}
	// workers: the parked messages now due (job-2 with its two earlier
	// deliveries, delayed-soon), the message leased when the old server
	// stopped (its delivery counted), the one not yet read and the new one.
	got = consume(t, c, "jobs", "workers", 5)
	if want := []delivery{{0, 3, "job-2", 3, 1796592651164}, {0, 4, "new", 1, -1}, {1, 0, "delayed-soon", 1, -1},
		{1, 3, "leased", 2, 1796592656275}, {1, 4, "waiting", 1, -1}}; !sameDeliveries(got, want, started) {
		t.Errorf("workers received %v, want %v (-1: first delivered now)", got, want)
	}
	c.Close()
	checkQueue(t, b, "workers", []queueWant{{floor: 5}, {floor: 5, parked: 1}})

	// Restart: what the current code wrote reads back beside the records
	// it did not rewrite.
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv = startAt(t, data, clk)
	b = serverhook.Broker(srv)
	checkTopics(t, b, map[string][]int64{"orders": {6, 4, 2}, "jobs": {5, 5}})
	checkSubs(t, b)
	checkOffsets(t, b, map[string][]int64{"orders/billing": {6, 4, 2}, "orders/audit": {6, 4, 2}, "orders/replay": {1, 1, 1}, "metrics/dash": {0}})
	checkQueue(t, b, "workers", []queueWant{{floor: 5}, {floor: 5, parked: 1}})
	checkQueue(t, b, "retry", []queueWant{{floor: 2}, {floor: 3, parked: 2}})
	checkDeadLetters(t, b)
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	checkVersions(t, data)
}

// laterClock is the wall clock moved forward.
type laterClock struct{ offset time.Duration }

func (c laterClock) Now() time.Time { return time.Now().Add(c.offset) }

func startAt(t *testing.T, dir string, clk clock.Clock) *Server {
	t.Helper()
	srv, err := New(Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	serverhook.SetClock(srv, clk)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	return srv
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if !filepath.IsLocal(name) {
			t.Fatalf("%s: path outside the archive", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(path, b, 0o644)
			}
		default:
			err = fmt.Errorf("%s: unexpected entry type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func utc(s string) time.Time {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return tm
}

// checkTopics checks the topics' configs and ids, and where their
// partitions end (ends: of orders and jobs).
func checkTopics(t *testing.T, b *broker.Broker, ends map[string][]int64) {
	t.Helper()
	want := map[string]struct {
		topic catalog.Topic
		ends  []int64
	}{
		"orders": {catalog.Topic{Name: "orders", ID: "98626a6a-49f6-49c5-9806-9c62f025c733", Created: utc("2026-12-06T21:30:43.439530402Z"),
			Config: catalog.TopicConfig{Partitions: 3, Retention: 168 * time.Hour, RetentionBytes: 64 << 20, DedupWindow: 10 * time.Minute,
				Durability: seglog.SyncAlways, MaxMessageBytes: 256 << 10}}, ends["orders"]},
		"metrics": {catalog.Topic{Name: "metrics", ID: "54807c9c-f137-4cf8-96df-09913c503bfe", Created: utc("2026-12-06T21:30:43.503859213Z"),
			Config: catalog.TopicConfig{Partitions: 1, MaxMessages: 1000, MaxBytes: 256 << 20, Discard: catalog.DiscardNew,
				DedupWindow: 30 * time.Second, MessageTTL: time.Hour, Durability: seglog.SyncInterval, MaxMessageBytes: 1 << 20}}, []int64{2}},
		"jobs": {catalog.Topic{Name: "jobs", ID: "d898356b-36fb-4023-aea2-c8ccc73701f6", Created: utc("2026-12-06T21:30:43.534820952Z"),
			Config: catalog.TopicConfig{Partitions: 2, DedupWindow: 2 * time.Minute, Durability: seglog.SyncNone, MaxMessageBytes: 1 << 20}}, ends["jobs"]},
		"jobs-dead": {catalog.Topic{Name: "jobs-dead", ID: "5e5567bd-5753-4ff1-a0a4-e9b436474209", Created: utc("2026-12-06T21:30:44.679461769Z"),
			Config: catalog.TopicConfig{Partitions: 1, DedupWindow: 7 * 24 * time.Hour, Durability: seglog.SyncAlways, MaxMessageBytes: 1 << 20}}, []int64{3}},
		"dlq.jobs.workers": {catalog.Topic{Name: "dlq.jobs.workers", ID: "d26ab332-732f-47be-a8d2-a62c39b5fd7b", Created: utc("2026-12-06T21:30:44.51020795Z"),
			Config: catalog.TopicConfig{Partitions: 1, DedupWindow: 7 * 24 * time.Hour, Durability: seglog.SyncAlways, MaxMessageBytes: 1 << 20}}, []int64{0}},
	}
	topics := b.Topics()
	if len(topics) != len(want) {
		t.Errorf("%d topics, want %d: %+v", len(topics), len(want), topics)
	}
	for name, w := range want {
		info, err := b.DescribeTopic(name)
		if err != nil {
			t.Errorf("topic %s: %v", name, err)
			continue
		}
		got := info.Topic
		if !got.Created.Equal(w.topic.Created) {
			t.Errorf("topic %s created %v, want %v", name, got.Created, w.topic.Created)
		}
		got.Created = w.topic.Created
		if !reflect.DeepEqual(got, w.topic) {
			t.Errorf("topic %s:\n%+v\nwant\n%+v", name, got, w.topic)
		}
		// The logs live in topics/<name>-<id>: a misread id would open
		// empty ones.
		var ends []int64
		for _, p := range info.Partitions {
			ends = append(ends, p.EndOffset)
		}
		if !reflect.DeepEqual(ends, w.ends) {
			t.Errorf("topic %s ends at %v, want %v", name, ends, w.ends)
		}
	}
}

func checkSubs(t *testing.T, b *broker.Broker) {
	t.Helper()
	want := []catalog.Subscription{
		{Topic: "orders", Name: "audit", Created: utc("2026-12-06T21:30:44.067456939Z"),
			Config: catalog.SubConfig{Start: catalog.Position{Kind: catalog.AtTime, Time: utc("2024-06-01T12:00:00Z")}}},
		{Topic: "orders", Name: "billing", Created: utc("2026-12-06T21:30:44.019262296Z"),
			Config: catalog.SubConfig{Filter: "orders.eu.#", Start: catalog.Position{Kind: catalog.Latest}}},
		{Topic: "orders", Name: "replay", Created: utc("2026-12-06T21:30:44.100200939Z"),
			Config: catalog.SubConfig{Start: catalog.Position{Kind: catalog.AtOffset, Offset: 1}}},
		{Topic: "metrics", Name: "dash", Created: utc("2026-12-06T21:30:44.407800789Z")},
		{Topic: "jobs", Name: "retry", Created: utc("2026-12-06T21:30:44.682178042Z"),
			Config: catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{MaxDeliveries: 1,
				Backoff:         queue.Backoff{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Multiplier: 3, Jitter: queue.JitterNone},
				DeadLetterTopic: "jobs-dead"}}},
		{Topic: "jobs", Name: "workers", Created: utc("2026-12-06T21:30:44.513081522Z"),
			Config: catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{AckTimeout: 45 * time.Second, MaxDeliveries: 3,
				Backoff:  queue.Backoff{Jitter: queue.JitterEqual, Delays: []time.Duration{2 * time.Second, 10 * time.Minute}},
				Ordering: queue.OrderKey, OnExpired: queue.ExpireDrop, MaxInFlight: 100, RateLimit: 50, RateBurst: 5}}},
	}
	var got []catalog.Subscription
	for _, topic := range []string{"orders", "metrics", "jobs", "jobs-dead", "dlq.jobs.workers"} {
		subs, err := b.Subscriptions(topic)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, subs...)
	}
	if len(got) != len(want) {
		t.Fatalf("subscriptions %+v\nwant %+v", got, want)
	}
	for i, g := range got {
		w := want[i]
		if !g.Created.Equal(w.Created) || !g.Config.Start.Time.Equal(w.Config.Start.Time) {
			t.Errorf("subscription %s/%s created %v, start %v; want %v, %v", g.Topic, g.Name, g.Created, g.Config.Start.Time, w.Created, w.Config.Start.Time)
		}
		g.Created, g.Config.Start.Time = w.Created, w.Config.Start.Time
		if !reflect.DeepEqual(g, w) {
			t.Errorf("subscription %s/%s:\n%+v\nwant\n%+v", w.Topic, w.Name, g, w)
		}
	}
}

func checkOffsets(t *testing.T, b *broker.Broker, want map[string][]int64) {
	t.Helper()
	for ts, w := range want {
		topic, sub, _ := strings.Cut(ts, "/")
		info, err := b.DescribeSubscription(topic, sub)
		if err != nil {
			t.Errorf("%s: %v", ts, err)
			continue
		}
		var got []int64
		for _, p := range info.Partitions {
			got = append(got, p.Committed)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s committed %v, want %v", ts, got, w)
		}
	}
}

type queueWant struct {
	floor, parked int64
}

func checkQueue(t *testing.T, b *broker.Broker, sub string, want []queueWant) {
	t.Helper()
	info, err := b.DescribeSubscription("jobs", sub)
	if err != nil {
		t.Fatal(err)
	}
	var got []queueWant
	for _, p := range info.Partitions {
		got = append(got, queueWant{p.Queue.Floor, p.Queue.Parked})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("jobs/%s floors and parked %+v, want %+v", sub, got, want)
	}
}

func checkDeadLetters(t *testing.T, b *broker.Broker) {
	t.Helper()
	type dead struct {
		offset      int64
		value       string
		reason      string
		deliveries  int
		err         string
		origin      string
		redriven    bool
		originTopic string
	}
	dls, _, err := b.ListDeadLetters("jobs", "retry", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []dead
	for _, d := range dls {
		got = append(got, dead{d.Offset, string(d.Message.Value), d.Reason, d.DeliveryCount, d.Error,
			fmt.Sprintf("%s/%d/%d", d.OriginSub, d.OriginPartition, d.OriginOffset), d.Redriven, d.OriginTopic})
	}
	want := []dead{
		{0, "job-0", "max-deliveries", 1, "nacked by spool consume --nack", "retry/0/0", false, "jobs"},
		{1, "job-1", "rejected", 1, "rejected by spool consume --reject", "retry/0/1", true, "jobs"},
		{2, "expires", "expired", 0, "", "retry/1/2", false, "jobs"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dead letters of jobs/retry:\n%+v\nwant\n%+v", got, want)
	}
	if dls, _, err := b.ListDeadLetters("jobs", "workers", 0, 100); err != nil || len(dls) != 0 {
		t.Errorf("dead letters of jobs/workers: %+v, %v", dls, err)
	}
}

// delivery is a message as a consumer saw it; first is when it was first
// delivered (ms; 0 in stream mode).
type delivery struct {
	partition  int32
	offset     int64
	value      string
	deliveries int32
	first      int64
}

// consume runs a consumer of topic/sub until it has handled n messages
// (acknowledging or committing each), and returns them by partition and
// offset.
func consume(t *testing.T, c *client.Client, topic, sub string, n int) []delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []delivery
	k, err := c.NewConsumer(topic, sub, func(_ context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		var first int64
		if !m.FirstDeliveredAt.IsZero() {
			first = m.FirstDeliveredAt.UnixMilli()
		}
		got = append(got, delivery{m.Partition, m.Offset, string(m.Value), m.DeliveryCount, first})
		if len(got) == n {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Run(ctx); err != nil {
		t.Fatalf("consume %s/%s: %v", topic, sub, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < n {
		t.Fatalf("consume %s/%s: %d messages in 30 s, want %d: %v", topic, sub, len(got), n, got)
	}
	sort.Slice(got, func(i, j int) bool {
		return got[i].partition < got[j].partition || got[i].partition == got[j].partition && got[i].offset < got[j].offset
	})
	return got
}

// sameDeliveries compares deliveries; a wanted first of -1 means a first
// delivery by this server (at or after started).
func sameDeliveries(got, want []delivery, started time.Time) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if w.first == -1 && g.first >= started.UnixMilli() {
			g.first = -1
		}
		if g != w {
			return false
		}
	}
	return true
}

// checkVersions reads the state store the test left: records the current
// code wrote are of the current versions, those it never rewrote still of
// version 0, side by side.
func checkVersions(t *testing.T, data string) {
	t.Helper()
	st, err := state.Open(filepath.Join(data, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	firstBytes := map[string]string{}
	err = st.ScanRange(nil, nil, func(k, v []byte) error {
		kind := string(k[:2])
		if len(v) > 0 && (kind == "t/" || kind == "s/" || kind == "q/" || kind == "w/") {
			firstBytes[kind] += string(v[:1])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"t/": "{{{{{",  // never rewritten
		"s/": "{{{{{{", // never rewritten
		// retry's partition 0 never changed; the others did (retry's
		// partition 1 when delayed-soon came due).
		"q/": "{\x01\x01\x01",
		// delayed-far in both subscriptions; delayed-soon in retry, due
		// but not finished.
		"w/": "{{{",
	}
	if !reflect.DeepEqual(firstBytes, want) {
		t.Errorf("first bytes of the records by kind %q, want %q", firstBytes, want)
	}
}

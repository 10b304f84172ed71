package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/spooltest"
)

func TestTopCounterRate(t *testing.T) {
	for _, c := range []struct {
		name      string
		prev, cur []int64
		dt        time.Duration
		want      float64
	}{
		{"steady", []int64{10, 20}, []int64{30, 20}, time.Second, 20},
		{"half a second", []int64{0}, []int64{50}, 500 * time.Millisecond, 100},
		{"no change", []int64{7}, []int64{7}, time.Second, 0},
		{"went back: recreated or reset", []int64{1000, 5}, []int64{3, 9}, time.Second, 4},
		{"all back", []int64{1000}, []int64{0}, 2 * time.Second, 0},
		{"partition added", []int64{10}, []int64{10, 6}, 2 * time.Second, 3},
		{"counted from zero (prev nil)", nil, []int64{4, 6}, time.Second, 10},
		{"no time passed", []int64{0}, []int64{100}, 0, 0},
		{"time went back", []int64{0}, []int64{100}, -time.Second, 0},
	} {
		if got := counterRate(c.prev, c.cur, c.dt); got != c.want {
			t.Errorf("%s: counterRate(%v, %v, %v) = %v, want %v", c.name, c.prev, c.cur, c.dt, got, c.want)
		}
	}
}

// twoPolls are two polls a second apart: "orders" grows by 100 messages
// and 10,000 bytes; "audit" was deleted and created again between them
// (a new id, its end offset back from 500 to 20); "billing" consumed 30,
// "tail" was reset back.
func twoPolls() (prev, cur *topPoll) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	prev = &topPoll{at: t0,
		topics: []topicPoll{
			{name: "audit", id: "a1", partitions: 1, messages: 500, bytes: 50000, ends: []int64{500}, sizes: []int64{50000}},
			{name: "orders", id: "o1", partitions: 2, messages: 100, bytes: 1000, ends: []int64{60, 40}, sizes: []int64{600, 400}},
		},
		subs: []subPoll{
			{topic: "audit", topicID: "a1", name: "tail", mode: client.ModeStream, positions: []int64{490}},
			{topic: "orders", topicID: "o1", name: "billing", mode: client.ModeStream, positions: []int64{50, 20}},
		},
	}
	cur = &topPoll{at: t0.Add(time.Second),
		topics: []topicPoll{
			{name: "audit", id: "a2", partitions: 1, messages: 20, bytes: 2000, ends: []int64{20}, sizes: []int64{2000}},
			{name: "orders", id: "o1", partitions: 2, messages: 200, bytes: 11000, ends: []int64{110, 90}, sizes: []int64{5600, 5400}},
			{name: "zeta", id: "z1", partitions: 1, ends: []int64{0}, sizes: []int64{0}},
		},
		subs: []subPoll{
			{topic: "audit", topicID: "a2", name: "tail", mode: client.ModeStream, lag: 5, positions: []int64{15}},
			{topic: "orders", topicID: "o1", name: "billing", mode: client.ModeStream, lag: 120, positions: []int64{60, 40}},
			{topic: "orders", topicID: "o1", name: "jobs", mode: client.ModeQueue, lag: 3, inFlight: 2, positions: []int64{1, 0}},
		},
	}
	return prev, cur
}

func TestTopBuildView(t *testing.T) {
	prev, cur := twoPolls()
	v := buildView(prev, cur)
	topics := map[string]topicRow{}
	for _, r := range v.topics {
		topics[r.name] = r
	}
	if r := topics["orders"]; !r.hasRate || r.msgRate != 100 || r.byteRate != 10000 || r.lag != 123 {
		t.Errorf("orders: %+v, want 100 msg/s, 10000 B/s, lag 123", r)
	}
	// Created again: everything it has was published since the last poll.
	if r := topics["audit"]; !r.hasRate || r.msgRate != 20 || r.byteRate != 2000 {
		t.Errorf("audit (created again): %+v, want 20 msg/s, 2000 B/s", r)
	}
	if r := topics["zeta"]; r.hasRate {
		t.Errorf("zeta (new): %+v, want no rate yet", r)
	}
	subs := map[string]subRow{}
	for _, r := range v.subs {
		subs[r.name] = r
		if r.rate < 0 {
			t.Errorf("%s: negative rate %v", r.name, r.rate)
		}
	}
	if r := subs["billing"]; !r.hasRate || r.rate != 30 {
		t.Errorf("billing: %+v, want 30 msg/s", r)
	}
	if r := subs["tail"]; !r.hasRate || r.rate != 15 {
		t.Errorf("tail (topic created again): %+v, want 15 msg/s", r)
	}
	if r := subs["jobs"]; r.hasRate {
		t.Errorf("jobs (new): %+v, want no rate yet", r)
	}

	// The same topic id with counters gone back (retention, a reset): no
	// negative rate.
	cur.topics[0].id, cur.subs[0].topicID = "a1", "a1"
	v = buildView(prev, cur)
	if r := v.topics[0]; r.msgRate != 0 || r.byteRate != 0 {
		t.Errorf("audit gone back: %+v, want rates 0", r)
	}
	if r := v.subs[0]; r.rate != 0 {
		t.Errorf("tail gone back: %+v, want rate 0", r)
	}

	if v := buildView(nil, cur); v.topics[1].hasRate || v.subs[1].hasRate {
		t.Errorf("a first poll has rates: %+v", v)
	}
}

func TestTopSortFilter(t *testing.T) {
	prev, cur := twoPolls()
	names := func(v topView) string {
		var ts, ss []string
		for _, r := range v.topics {
			ts = append(ts, r.name)
		}
		for _, r := range v.subs {
			ss = append(ss, r.topic+"/"+r.name)
		}
		return strings.Join(ts, ",") + " " + strings.Join(ss, ",")
	}
	for _, c := range []struct {
		by   topSort
		want string
	}{
		{sortName, "audit,orders,zeta audit/tail,orders/billing,orders/jobs"},
		{sortRate, "orders,audit,zeta orders/billing,audit/tail,orders/jobs"},
		{sortLag, "orders,audit,zeta orders/billing,audit/tail,orders/jobs"},
	} {
		v := buildView(prev, cur)
		v.sort(c.by)
		if got := names(v); got != c.want {
			t.Errorf("sort by %s: %s, want %s", c.by, got, c.want)
		}
	}
	v := buildView(prev, cur).filter("or")
	v.sort(sortLag)
	if got, want := names(v), "orders orders/billing,orders/jobs"; got != want {
		t.Errorf("filter or: %s, want %s", got, want)
	}
	if got := names(buildView(prev, cur).filter("nothing")); got != " " {
		t.Errorf("filter nothing: %q", got)
	}
	if s := sortName.next().next().next(); s != sortName {
		t.Errorf("s pressed three times: %s", s)
	}
	if s, ok := parseTopSort("lag"); !ok || s != sortLag {
		t.Errorf("parseTopSort(lag) = %v, %v", s, ok)
	}
}

func TestTopTruncate(t *testing.T) {
	for _, c := range []struct {
		s     string
		width int
		want  string
	}{
		{"orders", 10, "orders"},
		{"orders", 6, "orders"},
		{"orders", 5, "orde…"},
		{"orders", 0, "orders"},
		{"ordersü", 6, "order…"},
	} {
		if got := truncate(c.s, c.width); got != c.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.s, c.width, got, c.want)
		}
	}
	if got := textBytes(512); got != "512B" {
		t.Errorf("textBytes(512) = %s", got)
	}
	if got := textBytes(1536); got != "1.5KiB" {
		t.Errorf("textBytes(1536) = %s", got)
	}
	if got := textBytes(200 << 20); got != "200MiB" {
		t.Errorf("textBytes(200MiB) = %s", got)
	}
}

// manyTopics is a view of n topics with long names and one subscription
// each.
func manyTopics(n int) topView {
	var v topView
	for i := range n {
		name := fmt.Sprintf("topic-%04d-with-a-rather-long-name-that-will-not-fit", i)
		v.topics = append(v.topics, topicRow{name: name, partitions: 3, messages: int64(i), hasRate: true, msgRate: 1.5})
		v.subs = append(v.subs, subRow{topic: name, name: "subscription-with-a-long-name", mode: client.ModeQueue, lag: int64(i)})
	}
	return v
}

func TestTopRenderScreen(t *testing.T) {
	v := manyTopics(300)
	s := topScreen{server: "http://127.0.0.1:7070", interval: 2 * time.Second, updated: time.Now()}
	for _, size := range [][2]int{{80, 24}, {60, 20}, {40, 10}, {120, 50}, {20, 3}} {
		width, height := size[0], size[1]
		out := renderTopScreen(v, s, width, height)
		ls := strings.Split(out, "\n")
		if len(ls) > height {
			t.Errorf("%dx%d: %d lines", width, height, len(ls))
		}
		for _, l := range ls {
			if w := ansi.StringWidth(l); w > width {
				t.Errorf("%dx%d: line of width %d: %q", width, height, w, l)
			}
		}
		if !strings.Contains(ls[len(ls)-1], "q quit") {
			t.Errorf("%dx%d: no keys line last:\n%s", width, height, out)
		}
	}

	out := renderTopScreen(v, s, 80, 24)
	mustContain(t, "80x24 screen", out, "TOPICS 1-8 of 300", "SUBSCRIPTIONS 1-8 of 300", "topic-0000-with-a-rather-long…", "topic-0007", "topic-0000-…  subscription…", "updated ")
	if strings.Contains(out, "topic-0008") {
		t.Errorf("80x24 shows more rows than fit:\n%s", out)
	}
	// The numeric columns are not truncated; the name columns are.
	mustContain(t, "80x24 screen", out, "PARTITIONS", "MESSAGES", "MSG/S", "1.5", "IN FLIGHT")

	if got := maxScroll(v, 24); got != 292 {
		t.Errorf("maxScroll = %d, want 292", got)
	}
	s.scroll = 292
	out = renderTopScreen(v, s, 80, 24)
	mustContain(t, "scrolled to the end", out, "TOPICS 293-300 of 300", "topic-0299")

	// Few subscriptions: the topics get the rest of the rows.
	v.subs = v.subs[:2]
	s.scroll = 0
	out = renderTopScreen(v, s, 80, 24)
	mustContain(t, "two subscriptions", out, "TOPICS 1-14 of 300", "SUBSCRIPTIONS (2)")

	s.err = errors.New("dial tcp 127.0.0.1:7070: connect: connection refused")
	s.editing, s.filter = true, "top"
	out = renderTopScreen(manyTopics(2), s, 200, 24)
	mustContain(t, "error screen", out, "error: dial tcp", "retrying every 2s", "topic prefix: top_", "esc cancel")
}

func TestTopRenderText(t *testing.T) {
	prev, cur := twoPolls()
	v := buildView(prev, cur)
	v.sort(sortName)
	out := renderTopText(v)
	want := `TOPIC   PARTITIONS  MESSAGES   BYTES  MSG/S  BYTES/S  LAG
audit            1        20  2.0KiB   20.0   2.0KiB    5
orders           2       200   11KiB    100   9.8KiB  123
zeta             1         0      0B      -        -    0

TOPIC   SUBSCRIPTION  MODE    MEMBERS  LAG  OLDEST  IN FLIGHT  MSG/S  DEAD
audit   tail          stream        0    5       -          -   15.0     0
orders  billing       stream        0  120       -          -   30.0     0
orders  jobs          queue         0    3       -          2      -     0
`
	if out != want {
		t.Errorf("text:\n%s\nwant:\n%s", out, want)
	}
}

// fakeTop is a topSource of fixed answers, with errors on demand.
type fakeTop struct {
	mu      sync.Mutex
	topics  map[string]*client.TopicInfo
	subs    map[string]*client.SubscriptionInfo // by "topic/name"
	listErr error
	polls   atomic.Int32
}

func (f *fakeTop) ListTopics(ctx context.Context) ([]client.Topic, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls.Add(1)
	if f.listErr != nil {
		return nil, f.listErr
	}
	var out []client.Topic
	for name := range f.topics {
		out = append(out, client.Topic{Name: name})
	}
	// A topic deleted after the list: left out of the poll.
	return append(out, client.Topic{Name: "deleted"}), nil
}

func (f *fakeTop) DescribeTopic(ctx context.Context, name string) (*client.TopicInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ti, ok := f.topics[name]; ok {
		return ti, nil
	}
	return nil, fmt.Errorf("describe %s: %w", name, client.ErrTopicNotFound)
}

func (f *fakeTop) DescribeSubscription(ctx context.Context, topic, name string) (*client.SubscriptionInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if si, ok := f.subs[topic+"/"+name]; ok {
		return si, nil
	}
	return nil, client.ErrSubscriptionNotFound
}

func newFakeTop() *fakeTop {
	f := &fakeTop{topics: map[string]*client.TopicInfo{}, subs: map[string]*client.SubscriptionInfo{}}
	for i, name := range []string{"orders", "audit", "jobs"} {
		f.topics[name] = &client.TopicInfo{
			Topic:         client.Topic{Name: name, ID: name + "-id"},
			Partitions:    []client.PartitionInfo{{Partition: 0, EndOffset: int64(10 * i), Bytes: int64(100 * i)}},
			Messages:      int64(10 * i),
			Bytes:         int64(100 * i),
			Subscriptions: []string{"s1", "gone"},
		}
		f.subs[name+"/s1"] = &client.SubscriptionInfo{
			Subscription: client.Subscription{Topic: name, Name: "s1", Config: client.SubscriptionConfig{Mode: client.ModeQueue}},
			Members:      []client.Member{{MemberID: "m"}},
			Partitions: []client.SubscriptionPartition{{Partition: 0, EndOffset: int64(10 * i), Lag: int64(i),
				OldestUnconsumedAge: time.Minute, Queue: &client.QueuePartition{InFlight: 2}}},
			Lag:          int64(i),
			DeadLettered: 7,
		}
	}
	return f
}

func TestTopPoll(t *testing.T) {
	f := newFakeTop()
	at := time.Now()
	p, err := pollTop(t.Context(), f, "", at)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tp := range p.topics {
		got = append(got, fmt.Sprintf("%s:%d:%v", tp.name, tp.partitions, tp.ends))
	}
	for _, s := range p.subs {
		got = append(got, fmt.Sprintf("%s/%s:%d:%d:%v:%d:%d:%v", s.topic, s.name, s.members, s.lag, s.positions, s.inFlight, s.deadLettered, s.oldest))
	}
	want := "audit:1:[10] jobs:1:[20] orders:1:[0] audit/s1:1:1:[9]:2:7:1m0s jobs/s1:1:2:[18]:2:7:1m0s orders/s1:1:0:[0]:2:7:1m0s"
	if strings.Join(got, " ") != want || !p.at.Equal(at) {
		t.Errorf("poll:\n%s\nwant:\n%s", strings.Join(got, " "), want)
	}

	p, err = pollTop(t.Context(), f, "jo", at)
	if err != nil || len(p.topics) != 1 || p.topics[0].name != "jobs" || len(p.subs) != 1 {
		t.Errorf("poll with prefix jo: %+v, %v", p, err)
	}

	f.listErr = &client.Error{Code: client.CodeUnavailable, Message: "connection refused", Retriable: true}
	if _, err := pollTop(t.Context(), f, "", at); !errors.Is(err, f.listErr) {
		t.Errorf("poll of an unreachable server: %v", err)
	}
}

// TestTopModel drives the bubbletea model's Update without a program:
// polls, an error, keys.
func TestTopModel(t *testing.T) {
	f := newFakeTop()
	m := newTopModel(t.Context(), f, "http://spool:7070", topOptions{interval: time.Second}, sortName)
	update := func(msg tea.Msg) tea.Cmd {
		t.Helper()
		_, cmd := m.Update(msg)
		return cmd
	}
	content := func() string { return m.View().Content }

	update(tea.WindowSizeMsg{Width: 100, Height: 16})
	mustContain(t, "before the first poll", content(), "connecting…")
	msg := m.Init()()
	if cmd := update(msg); cmd == nil {
		t.Fatal("no tick scheduled after a poll")
	}
	mustContain(t, "after a poll", content(), "TOPICS (3)", "audit", "jobs", "orders", "updated ")

	update(topPolledMsg{err: errors.New("connection refused")})
	mustContain(t, "after a failed poll", content(), "error: connection refused; retrying every 1s", "orders")

	key := func(s string) tea.Cmd {
		t.Helper()
		var k tea.KeyPressMsg
		switch s {
		case "enter":
			k.Code = tea.KeyEnter
		case "esc":
			k.Code = tea.KeyEscape
		case "down":
			k.Code = tea.KeyDown
		case "backspace":
			k.Code = tea.KeyBackspace
		case "ctrl+c", "ctrl+u":
			k.Code, k.Mod = rune(s[5]), tea.ModCtrl
		default:
			k.Code, k.Text = rune(s[0]), s
		}
		return update(k)
	}
	key("s")
	if m.screen.sort != sortRate {
		t.Errorf("sort after s: %s", m.screen.sort)
	}
	key("/")
	key("j")
	key("o")
	key("q") // typed, not quitting
	key("backspace")
	if !m.screen.editing || m.screen.filter != "jo" {
		t.Errorf("editing %v, filter %q", m.screen.editing, m.screen.filter)
	}
	key("enter")
	out := content()
	if strings.Contains(out, "orders") || !strings.Contains(out, "jobs") || !strings.Contains(out, "topic prefix: jo") {
		t.Errorf("filtered screen:\n%s", out)
	}
	if p := m.poll()().(topPolledMsg); p.err != nil || len(p.poll.topics) != 1 {
		t.Errorf("a poll with the filter: %+v", p)
	}
	key("f")
	key("x")
	key("esc")
	if m.screen.editing || m.screen.filter != "jo" {
		t.Errorf("after esc: editing %v, filter %q", m.screen.editing, m.screen.filter)
	}

	// Scrolling stops at the last row.
	key("/")
	key("ctrl+u")
	key("enter")
	if m.screen.filter != "" {
		t.Errorf("filter after ctrl+u: %q", m.screen.filter)
	}
	update(tea.WindowSizeMsg{Width: 100, Height: 12})
	for range 10 {
		key("down")
	}
	if m.screen.scroll != 1 || maxScroll(m.view(), m.height) != 1 {
		t.Errorf("scroll %d, max %d", m.screen.scroll, maxScroll(m.view(), m.height))
	}
	if cmd := key("q"); cmd == nil || cmd() != tea.Quit() {
		t.Error("q does not quit")
	}
	key("/")
	if cmd := key("ctrl+c"); cmd == nil || cmd() != tea.Quit() {
		t.Error("ctrl+c while editing does not quit")
	}
}

// TestTopProgram runs the bubbletea program on a fake terminal: it polls,
// takes the s key and quits on q.
func TestTopProgram(t *testing.T) {
	f := newFakeTop()
	m := newTopModel(t.Context(), f, "http://spool:7070", topOptions{interval: 50 * time.Millisecond}, sortName)
	in, keys := io.Pipe()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(&out),
		tea.WithWindowSize(100, 20), tea.WithoutSignals())
	done := make(chan error, 1)
	var final tea.Model
	go func() {
		var err error
		final, err = p.Run()
		done <- err
	}()
	for f.polls.Load() < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := keys.Write([]byte("s")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := keys.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("program: %v", err)
	}
	keys.Close()
	if s := final.(*topModel).screen.sort; s != sortRate {
		t.Errorf("sort after s: %s", s)
	}
	if cur := final.(*topModel).cur; cur == nil || len(cur.topics) != 3 {
		t.Errorf("the model's last poll: %+v", cur)
	}
	// The renderer writes only what changed between frames: whole words,
	// not whole lines.
	mustContain(t, "terminal output", out.String(), "orders", "audit", "rate")
}

// TestTopOnce runs `spool top --once` against a server with topics, a
// stream and a queue subscription, and messages published while it runs.
func TestTopOnce(t *testing.T) {
	s := spooltest.StartServer(t)
	c := s.Client()
	ctx := t.Context()
	for _, name := range []string{"orders", "audit", "other.topic"} {
		if _, err := c.CreateTopic(ctx, name, client.TopicConfig{Partitions: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "audit", "work", client.SubscriptionConfig{Mode: client.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	msgs := make([]client.Message, 10)
	for i := range msgs {
		msgs[i] = client.Message{Value: []byte("m" + strconv.Itoa(i))}
	}
	if _, err := c.Publish(ctx, "audit", msgs...); err != nil {
		t.Fatal(err)
	}
	// Publish to orders all along, so that its rate is not zero.
	pubCtx, stop := context.WithCancel(ctx)
	published := make(chan error, 1)
	go func() {
		for pubCtx.Err() == nil {
			if _, err := c.Publish(pubCtx, "orders", msgs...); err != nil && pubCtx.Err() == nil {
				published <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		published <- nil
	}()
	r := ok(t, s.URL(), "", "top", "--once", "--interval", "200ms")
	stop()
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	ls := lines(r.stdout)
	mustContain(t, "top --once", r.stdout, "TOPIC", "SUBSCRIPTION", "audit", "other.topic", "dlq.audit.work", "billing", "work", "queue", "stream")
	row := func(prefix string) []string {
		for _, l := range ls {
			if strings.HasPrefix(l, prefix) {
				return strings.Fields(l)
			}
		}
		t.Fatalf("no line %q in:\n%s", prefix, r.stdout)
		return nil
	}
	// TOPIC PARTITIONS MESSAGES BYTES MSG/S BYTES/S LAG
	if f := row("orders "); f[1] != "2" || f[4] == "0" || f[4] == "-" || f[5] == "0B" {
		t.Errorf("orders: %v, want 2 partitions and a publish rate:\n%s", f, r.stdout)
	}
	if f := row("audit "); f[2] != "10" || f[4] != "0" || f[6] != "10" {
		t.Errorf("audit: %v, want 10 messages, rate 0, lag 10:\n%s", f, r.stdout)
	}
	// TOPIC SUBSCRIPTION MODE MEMBERS LAG OLDEST IN-FLIGHT MSG/S DEAD
	if f := row("audit   work"); f[2] != "queue" || f[4] != "10" || f[6] != "0" || f[7] != "0" {
		t.Errorf("audit/work: %v, want queue, lag 10, nothing in flight, rate 0:\n%s", f, r.stdout)
	}
	if f := row("orders  billing"); f[2] != "stream" || f[4] == "0" || f[6] != "-" {
		t.Errorf("orders/billing: %v, want stream with lag:\n%s", f, r.stdout)
	}

	r = ok(t, s.URL(), "", "top", "--once", "--interval", "10ms", "--topic", "aud", "--sort", "lag")
	if strings.Contains(r.stdout, "orders") || !strings.Contains(r.stdout, "audit") {
		t.Errorf("--topic aud:\n%s", r.stdout)
	}

	url := s.URL()
	fails(t, exitUsage, url, "", "top", "--once", "--watch")
	fails(t, exitUsage, url, "", "top", "--interval", "0s")
	fails(t, exitUsage, url, "", "top", "--sort", "size")
	s.Stop()
	fails(t, exitUnavailable, url, "", "top", "--once", "--interval", "10ms")
}

// TestTopWatch runs --watch on a non-terminal: snapshots every interval,
// errors reported and retried, until the context ends.
func TestTopWatch(t *testing.T) {
	f := newFakeTop()
	ctx, cancel := context.WithCancel(t.Context())
	var out, errw syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- topWatch(ctx, f, &out, &errw, topOptions{interval: 20 * time.Millisecond}, sortName)
	}()
	for strings.Count(out.String(), "TOPIC  ") < 4 {
		time.Sleep(10 * time.Millisecond)
	}
	f.mu.Lock()
	f.listErr = errors.New("connection refused")
	f.mu.Unlock()
	for !strings.Contains(errw.String(), "connection refused; retrying in 20ms") {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("topWatch: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
)

// smallSegments makes the env's partition logs roll every 64 KiB.
func smallSegments(e *env) {
	e.opts = func(c *Config) {
		c.Log.SegmentBytes = 64 << 10
		c.Log.Limits.MaxBatchBytes = 32 << 10
	}
	e.restart()
}

func publishValues(t *testing.T, b *Broker, topic string, n, size int) {
	t.Helper()
	ms := make([]Message, n)
	for i := range ms {
		ms[i] = Message{Value: make([]byte, size), Partition: -1}
	}
	if _, err := b.Publish(topic, ms); err != nil {
		t.Fatal(err)
	}
}

func startOffset(t *testing.T, b *Broker, topic string) int64 {
	t.Helper()
	info, err := b.DescribeTopic(topic)
	if err != nil {
		t.Fatal(err)
	}
	return info.Partitions[0].StartOffset
}

// A shorter retention is enforced by the next maintenance pass.
func TestAlterTopicRetentionEnforced(t *testing.T) {
	e := newEnv(t)
	smallSegments(e)
	e.b.CreateTopic("t", catalog.TopicConfig{MaxMessageBytes: 16 << 10})
	publishValues(t, e.b, "t", 100, 4000) // several 64 KiB segments
	e.clk.Advance(2 * time.Hour)
	e.b.Maintain()
	if s := startOffset(t, e.b, "t"); s != 0 {
		t.Fatalf("start %d with retention forever", s)
	}
	if _, err := e.b.UpdateTopicConfig("t", func(c *catalog.TopicConfig) error { c.Retention = time.Hour; return nil }); err != nil {
		t.Fatal(err)
	}
	e.b.Maintain()
	if s := startOffset(t, e.b, "t"); s == 0 {
		t.Fatal("old segments kept after retention was shortened")
	}
}

// Limits, discard, the de-duplication window, the message TTL and
// work-queue retention apply at once, and every change survives a restart.
func TestAlterTopicSettingsApplyLive(t *testing.T) {
	e := newEnv(t)
	smallSegments(e)
	e.b.CreateTopic("t", catalog.TopicConfig{MaxMessageBytes: 16 << 10})
	e.b.CreateSubscription("t", "q", queueCfg(func(q *catalog.QueueConfig) { q.OnExpired = queue.ExpireDrop }))
	alter := func(f func(*catalog.TopicConfig)) catalog.Topic {
		t.Helper()
		m, err := e.b.UpdateTopicConfig("t", func(c *catalog.TopicConfig) error { f(c); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	// The largest message.
	alter(func(c *catalog.TopicConfig) { c.MaxMessageBytes = 1000 })
	if _, err := e.b.Publish("t", []Message{{Value: make([]byte, 2000), Partition: -1}}); !errs.Is(err, errs.MessageTooLarge) {
		t.Fatalf("message above the new limit: %v", err)
	}

	// A bound with discard=new refuses publishes at once; lifting it lets
	// them in again.
	publishValues(t, e.b, "t", 3, 10)
	alter(func(c *catalog.TopicConfig) { c.MaxMessages, c.Discard = 3, catalog.DiscardNew })
	if _, err := e.b.Publish("t", msgs("x", 1)); !errs.Is(err, errs.TopicFull) {
		t.Fatalf("publish into the full topic: %v", err)
	}
	alter(func(c *catalog.TopicConfig) { c.MaxMessages = 0 })
	if _, err := e.b.Publish("t", msgs("x", 1)); err != nil {
		t.Fatalf("publish after lifting the bound: %v", err)
	}

	// A shorter de-duplication window forgets sooner; a longer one keeps
	// ids for longer.
	alter(func(c *catalog.TopicConfig) { c.DedupWindow = time.Second })
	dup := func(id string) bool {
		t.Helper()
		r, err := e.b.Publish("t", []Message{{Value: []byte(id), ID: id, Partition: -1}})
		if err != nil {
			t.Fatal(err)
		}
		return r[0].Duplicate
	}
	dup("a")
	e.clk.Advance(2 * time.Second)
	if dup("a") {
		t.Fatal("id remembered beyond the 1 s window")
	}
	alter(func(c *catalog.TopicConfig) { c.DedupWindow = time.Hour })
	dup("b")
	e.clk.Advance(10 * time.Minute)
	if !dup("b") {
		t.Fatal("id forgotten within the 1 h window")
	}

	// A TTL applies to messages queue subscriptions read from then on
	// (everything so far is read and acknowledged first).
	s, err := e.b.Join(JoinRequest{Topic: "t", Subscription: "q", Credits: 1000, SessionTimeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	got := deliveries(t, s, 3*time.Second)
	ackAll(t, s, got)
	alter(func(c *catalog.TopicConfig) { c.MessageTTL = time.Minute })
	publishValues(t, e.b, "t", 2, 10)
	e.clk.Advance(2 * time.Minute)
	if late := deliveries(t, s, 300*time.Millisecond); len(late) != 0 {
		t.Fatalf("expired messages delivered: %+v", late)
	}
	if info, _ := e.b.DescribeSubscription("t", "q"); info.Dropped != 2 {
		t.Fatalf("dropped %d, want the 2 expired", info.Dropped)
	}

	// Work-queue retention: once turned on, finished segments go.
	alter(func(c *catalog.TopicConfig) { c.MessageTTL, c.MaxMessageBytes = 0, 16<<10 })
	publishValues(t, e.b, "t", 60, 4000)
	for n := 0; n < 60; {
		got := deliveries(t, s, 3*time.Second)
		if len(got) == 0 {
			t.Fatalf("consumed %d of 60", n)
		}
		ackAll(t, s, got)
		n += len(got)
	}
	e.b.QueueTick()
	e.b.Maintain()
	if st := startOffset(t, e.b, "t"); st != 0 {
		t.Fatalf("segments deleted without work-queue retention: start %d", st)
	}
	want := alter(func(c *catalog.TopicConfig) {
		c.WorkQueue, c.Retention, c.RetentionBytes, c.MaxBytes = true, 48*time.Hour, 1<<30, 1<<40
	})
	e.b.Maintain()
	if st := startOffset(t, e.b, "t"); st == 0 {
		t.Fatal("finished segments kept with work-queue retention")
	}

	s.Leave()
	e.restart()
	if m, _ := e.b.Topic("t"); !m.Config.Equal(want.Config) {
		t.Fatalf("after restart %+v, want %+v", m.Config, want.Config)
	}
	if _, err := e.b.Publish("t", []Message{{Value: make([]byte, 17<<10), Partition: -1}}); !errs.Is(err, errs.MessageTooLarge) {
		t.Fatalf("limit after restart: %v", err)
	}
}

// Invalid changes are refused and change nothing.
func TestAlterTopicRefused(t *testing.T) {
	e := newEnv(t)
	before, _ := e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2, Retention: time.Hour})
	for name, c := range map[string]struct {
		f    func(*catalog.TopicConfig)
		want string
	}{
		"durability":          {func(c *catalog.TopicConfig) { c.Durability = seglog.SyncNone }, "durability cannot change"},
		"partitions":          {func(c *catalog.TopicConfig) { c.Partitions = 3 }, "adding partitions"},
		"negative retention":  {func(c *catalog.TopicConfig) { c.Retention = -time.Second }, "retention must not be negative"},
		"negative bytes":      {func(c *catalog.TopicConfig) { c.RetentionBytes = -1 }, "must not be negative"},
		"negative max bytes":  {func(c *catalog.TopicConfig) { c.MaxBytes = -1 }, "must not be negative"},
		"negative ttl":        {func(c *catalog.TopicConfig) { c.MessageTTL = -1 }, "must not be negative"},
		"tiny dedup window":   {func(c *catalog.TopicConfig) { c.DedupWindow = time.Microsecond }, "dedup window"},
		"huge messages":       {func(c *catalog.TopicConfig) { c.MaxMessageBytes = 1 << 30 }, "max message bytes"},
		"several, one wrong":  {func(c *catalog.TopicConfig) { c.Retention, c.MaxMessages = 5*time.Hour, -1 }, "must not be negative"},
		"unknown discard":     {func(c *catalog.TopicConfig) { c.Discard = 9 }, "discard"},
		"unknown durability":  {func(c *catalog.TopicConfig) { c.Durability = 9 }, "durability"},
		"unknown schema mode": {func(c *catalog.TopicConfig) { c.SchemaMode = 9 }, "schema mode"},
		"long owner":          {func(c *catalog.TopicConfig) { c.Owner = strings.Repeat("o", catalog.MaxOwnerBytes+1) }, "owner longer"},
		"empty label key":     {func(c *catalog.TopicConfig) { c.Labels = map[string]string{"": "x"} }, "label"},
		"error of the update": {func(c *catalog.TopicConfig) { c.Retention = 0 }, ""},
	} {
		_, err := e.b.UpdateTopicConfig("t", func(cfg *catalog.TopicConfig) error {
			c.f(cfg)
			if c.want == "" {
				return errs.New(errs.InvalidArgument, "refused by the caller")
			}
			return nil
		})
		if !errs.Is(err, errs.InvalidArgument) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if m, _ := e.b.Topic("t"); !m.Config.Equal(before.Config) {
		t.Fatalf("config changed by refused updates: %+v", m.Config)
	}
	e.restart()
	if m, _ := e.b.Topic("t"); !m.Config.Equal(before.Config) {
		t.Fatalf("stored config changed by refused updates: %+v", m.Config)
	}
	// Creation checks the schema binding and catalog description too.
	if _, err := e.b.CreateTopic("u", catalog.TopicConfig{SchemaSubject: strings.Repeat("s", catalog.MaxSubjectBytes+1)}); !errs.Is(err, errs.InvalidArgument) || !strings.Contains(err.Error(), "schema subject") {
		t.Errorf("create with a long subject: %v", err)
	}
	// The same labels are not a change (nil and empty alike).
	if _, err := e.b.UpdateTopicConfig("t", func(c *catalog.TopicConfig) error { c.Labels = map[string]string{}; return nil }); err != nil {
		t.Fatal(err)
	}
	// The same durability is not a change.
	if _, err := e.b.UpdateTopicConfig("t", func(c *catalog.TopicConfig) error { c.Durability = seglog.SyncAlways; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.UpdateTopicConfig("nope", func(*catalog.TopicConfig) error { return nil }); !errs.Is(err, errs.TopicNotFound) {
		t.Fatalf("unknown topic: %v", err)
	}
}

func TestAddPartitionsRefusalMessages(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 3})
	for n, want := range map[int32]string{2: "only be added", 3: "already has 3", 0: "only be added", -1: "only be added", catalog.MaxPartitions + 1: "limit of 1024"} {
		if _, err := e.b.AddPartitions("t", n); !errs.Is(err, errs.InvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("%d partitions: %v", n, err)
		}
	}
	if m, _ := e.b.Topic("t"); m.Config.Partitions != 3 {
		t.Fatalf("partitions %d after refusals", m.Config.Partitions)
	}
	if _, err := e.b.AddPartitions("nope", 4); !errs.Is(err, errs.TopicNotFound) {
		t.Fatalf("unknown topic: %v", err)
	}
}

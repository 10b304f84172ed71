package catalog

import (
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/state"
)

func openStore(t *testing.T, dir string) *state.Store {
	st, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	c, err := Load(st)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultDefaults().Fill(TopicConfig{Partitions: 3, Retention: time.Hour, Discard: DiscardNew, MaxMessages: 10})
	topic := Topic{Name: "orders", ID: "id-1", Config: cfg, Created: time.Unix(1, 0).UTC()}
	if err := c.PutTopic(topic, true); err != nil {
		t.Fatal(err)
	}
	if err := c.PutTopic(topic, true); !errs.Is(err, errs.TopicExists) {
		t.Fatalf("duplicate topic: %v", err)
	}
	sub := Subscription{Topic: "orders", Name: "billing", Config: SubConfig{Filter: "orders.#", Start: Position{Kind: AtTime, Time: time.Unix(5, 0).UTC()}}}
	if err := c.CreateSub(sub, []int64{0, 5, 9}); err != nil {
		t.Fatal(err)
	}
	if err := c.CommitOffsets("orders", "billing", map[int32]int64{1: 7}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	c, err = Load(st)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := c.Topic("orders")
	if !ok || !reflect.DeepEqual(got, topic) {
		t.Fatalf("topic after reload: %+v", got)
	}
	gs, ok := c.Sub("orders", "billing")
	if !ok || gs.Config.Filter != "orders.#" || !gs.Config.Start.Time.Equal(time.Unix(5, 0)) {
		t.Fatalf("subscription after reload: %+v", gs)
	}
	offs, err := c.Offsets("orders", "billing")
	if err != nil || offs[0] != 0 || offs[1] != 7 || offs[2] != 9 {
		t.Fatalf("offsets %v %v", offs, err)
	}
	// Deleting the topic removes its subscriptions and offsets.
	if err := c.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	if len(c.Subs("orders")) != 0 {
		t.Fatal("subscriptions survived topic deletion")
	}
	if offs, _ := c.Offsets("orders", "billing"); len(offs) != 0 {
		t.Fatalf("offsets survived topic deletion: %v", offs)
	}
}

func TestValidation(t *testing.T) {
	good := DefaultDefaults().Fill(TopicConfig{})
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*TopicConfig){
		"zero partitions":     func(c *TopicConfig) { c.Partitions = 0 },
		"too many partitions": func(c *TopicConfig) { c.Partitions = MaxPartitions + 1 },
		"negative retention":  func(c *TopicConfig) { c.Retention = -1 },
		"tiny dedup window":   func(c *TopicConfig) { c.DedupWindow = time.Microsecond },
		"huge messages":       func(c *TopicConfig) { c.MaxMessageBytes = 1 << 30 },
		"bad discard":         func(c *TopicConfig) { c.Discard = 7 },
	} {
		c := good
		mut(&c)
		if err := c.Validate(); !errs.Is(err, errs.InvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, n := range []string{"ok", "a.b-c_d", "X9"} {
		if err := ValidateName("topic", n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", ".", "..", "a/b", "a b", "ü"} {
		if err := ValidateName("topic", n); err == nil {
			t.Errorf("%q accepted", n)
		}
	}
	if err := (SubConfig{Filter: "a.*.#"}).Validate(); err != nil {
		t.Error(err)
	}
	if err := (SubConfig{Filter: "a..b"}).Validate(); err == nil {
		t.Error("bad filter accepted")
	}
	if err := (SubConfig{Mode: ModeQueue}).Validate(); err != nil {
		t.Errorf("queue mode with defaults: %v", err)
	}
	for name, q := range map[string]QueueConfig{
		"negative in flight": {MaxInFlight: -1},
		"bad dlq name":       {DeadLetterTopic: "a b"},
		"backoff max < init": {Backoff: queue.Backoff{Initial: time.Minute, Max: time.Second}},
		"multiplier < 1":     {Backoff: queue.Backoff{Multiplier: 0.5}},
		"negative ack":       {AckTimeout: -time.Second},
	} {
		if err := (SubConfig{Mode: ModeQueue, Queue: q}).Validate(); !errs.Is(err, errs.InvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, c := range map[string]SubConfig{
		"ack timeout on stream":   {Queue: QueueConfig{AckTimeout: time.Second}},
		"ordering on stream":      {Queue: QueueConfig{Ordering: queue.OrderKey}},
		"rate limit on stream":    {Queue: QueueConfig{RateLimit: 5}},
		"max in flight on stream": {Queue: QueueConfig{MaxInFlight: 5}},
		"unknown failure action":  {OnFailure: "skip"},
		"stop on a queue":         {Mode: ModeQueue, OnFailure: FailStop},
		"bad stream backoff":      {Queue: QueueConfig{Backoff: queue.Backoff{Multiplier: 0.5}}},
		"bad stream dlq name":     {Queue: QueueConfig{DeadLetterTopic: "a b"}},
	} {
		if err := c.Validate(); !errs.Is(err, errs.InvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Attempts, backoff, dead-letter topic and failure action are stream settings too.
	ok := SubConfig{OnFailure: FailStop, Queue: QueueConfig{MaxDeliveries: 3, DeadLetterTopic: "failed", Backoff: queue.Backoff{Initial: time.Millisecond}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("stream failure policy: %v", err)
	}
	f := Subscription{Topic: "t", Name: "s", Config: SubConfig{}}.StreamFailure()
	if f.Action != FailDeadLetter || f.MaxAttempts != 5 || f.DeadLetter != "dlq.t.s" || f.Backoff.Initial != time.Second {
		t.Errorf("stream failure defaults: %+v", f)
	}
}

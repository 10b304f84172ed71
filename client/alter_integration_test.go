package client_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/spoolmq/spool/client"
	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

// Changing topics and subscriptions through the SDK against a real
// server: the changes take effect while clients are connected and survive
// a restart. (The server is started with small segments, so that retention
// has whole segments to delete.)

// startLiveServer starts a real server with small segments and batches; it
// keeps its data directory across restarts.
func startLiveServer(t *testing.T) *spooltest.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a real server")
	}
	return spooltest.StartServer(t, spooltest.Config(func(c *server.Config) {
		c.KafkaAddr = "-"
		c.Storage = server.StorageConfig{SegmentBytes: 64 << 10, MaxBatchBytes: 32 << 10}
	}))
}

func TestIntegrationAlterTopic(t *testing.T) {
	s := startLiveServer(t)
	c, ctx := s.Client(), context.Background()
	if _, err := c.CreateTopic(ctx, "logs", client.TopicConfig{MaxMessageBytes: 16 << 10}); err != nil {
		t.Fatal(err)
	}
	var msgs []client.Message
	for range 100 {
		msgs = append(msgs, client.Message{Value: make([]byte, 4000)})
	}
	publishValues(t, c, "logs", msgs...)
	start := func() int64 {
		info, err := c.DescribeTopic(ctx, "logs")
		if err != nil {
			t.Fatal(err)
		}
		return info.Partitions[0].StartOffset
	}
	if start() != 0 {
		t.Fatal("data deleted without retention")
	}

	// Retention by bytes, enforced by the server's next maintenance pass.
	tp, err := c.AlterTopic(ctx, "logs", client.TopicConfig{RetentionBytes: 100_000}, client.TopicFieldRetentionBytes)
	if err != nil || tp.Config.RetentionBytes != 100_000 || tp.Config.MaxMessageBytes != 16<<10 {
		t.Fatalf("AlterTopic: %+v %v", tp.Config, err)
	}
	waitFor(t, "retention to delete old segments", func() bool { return start() > 0 })

	// Several settings at once; the message limit applies to the next
	// publish.
	tp, err = c.AlterTopic(ctx, "logs", client.TopicConfig{MaxMessageBytes: 1000, Discard: client.DiscardNew, Retention: 72 * time.Hour,
		DedupWindow: time.Hour, MessageTTL: time.Minute, WorkQueue: true},
		client.TopicFieldMaxMessageBytes, client.TopicFieldDiscard, client.TopicFieldRetention, client.TopicFieldDedupWindow,
		client.TopicFieldMessageTTL, client.TopicFieldWorkQueue)
	if err != nil {
		t.Fatal(err)
	}
	want := client.TopicConfig{Partitions: 1, Retention: 72 * time.Hour, RetentionBytes: 100_000, Discard: client.DiscardNew,
		DedupWindow: time.Hour, MessageTTL: time.Minute, Durability: client.DurabilityAlways, MaxMessageBytes: 1000, WorkQueue: true,
		SchemaMode: client.SchemaModeReject}
	if !reflect.DeepEqual(tp.Config, want) {
		t.Fatalf("config %+v, want %+v", tp.Config, want)
	}
	if _, err := c.Publish(ctx, "logs", client.Message{Value: make([]byte, 2000)}); !errors.Is(err, client.ErrMessageTooLarge) {
		t.Fatalf("publish above the new limit: %v", err)
	}
	// A field named with its zero value takes the default: 1 MiB, capped
	// by this server's largest batch (32 KiB).
	tp, err = c.AlterTopic(ctx, "logs", client.TopicConfig{}, client.TopicFieldMaxMessageBytes)
	if err != nil || tp.Config.MaxMessageBytes != 32<<10 {
		t.Fatalf("back to the default limit: %+v %v", tp.Config, err)
	}
	want.MaxMessageBytes = 32 << 10

	// Refused, and nothing changes.
	for _, r := range []struct {
		cfg    client.TopicConfig
		fields []client.TopicField
		want   string
	}{
		{client.TopicConfig{Durability: client.DurabilityNone}, []client.TopicField{client.TopicFieldDurability}, "durability cannot change"},
		{client.TopicConfig{Partitions: 4}, []client.TopicField{"partitions"}, "AddPartitions"},
		{client.TopicConfig{}, []client.TopicField{"retention", "colour"}, `unknown field "colour"`},
		{client.TopicConfig{}, nil, "no fields"},
		{client.TopicConfig{Retention: -time.Hour}, []client.TopicField{client.TopicFieldRetention}, "negative"},
		{client.TopicConfig{DedupWindow: time.Microsecond, Retention: time.Hour}, []client.TopicField{client.TopicFieldRetention, client.TopicFieldDedupWindow}, "dedup window"},
	} {
		if _, err := c.AlterTopic(ctx, "logs", r.cfg, r.fields...); !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%v: %v", r.fields, err)
		}
	}
	if _, err := c.AlterTopic(ctx, "nope", client.TopicConfig{}, client.TopicFieldRetention); !errors.Is(err, client.ErrTopicNotFound) {
		t.Errorf("unknown topic: %v", err)
	}

	s.Restart()
	info, err := s.Client().DescribeTopic(ctx, "logs")
	if err != nil || !reflect.DeepEqual(info.Topic.Config, want) {
		t.Fatalf("after restart %+v %v, want %+v", info.Topic.Config, err, want)
	}
}

func TestIntegrationCreateTopicWorkQueue(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	tp, err := c.CreateTopic(ctx, "wq", client.TopicConfig{WorkQueue: true})
	if err != nil || !tp.Config.WorkQueue {
		t.Fatalf("created %+v %v", tp.Config, err)
	}
	if info, _ := c.DescribeTopic(ctx, "wq"); !info.Topic.Config.WorkQueue {
		t.Fatalf("described %+v", info.Topic.Config)
	}
}

// A topic's schema binding and catalog description: set at creation,
// described, changed one by one, checked, and kept across a restart.
func TestIntegrationTopicSchemaAndCatalog(t *testing.T) {
	s := startLiveServer(t)
	c, ctx := s.Client(), context.Background()
	tp, err := c.CreateTopic(ctx, "orders", client.TopicConfig{SchemaSubject: "orders-value", SchemaMode: client.SchemaModeDeadLetter,
		Owner: "payments", Description: "One event per order placed.", Labels: map[string]string{"tier": "1", "pii": "no"}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got client.TopicConfig, subject string, mode client.SchemaMode, owner, desc string, labels map[string]string) {
		t.Helper()
		if got.SchemaSubject != subject || got.SchemaMode != mode || got.Owner != owner || got.Description != desc || !reflect.DeepEqual(got.Labels, labels) {
			t.Errorf("%s: subject %q mode %s owner %q description %q labels %v", what, got.SchemaSubject, got.SchemaMode, got.Owner, got.Description, got.Labels)
		}
	}
	labels := map[string]string{"tier": "1", "pii": "no"}
	check("created", tp.Config, "orders-value", client.SchemaModeDeadLetter, "payments", "One event per order placed.", labels)
	info, err := c.DescribeTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	check("described", info.Topic.Config, "orders-value", client.SchemaModeDeadLetter, "payments", "One event per order placed.", labels)
	if ts, _ := c.ListTopics(ctx); len(ts) != 1 {
		t.Fatalf("listed %d topics", len(ts))
	} else {
		check("listed", ts[0].Config, "orders-value", client.SchemaModeDeadLetter, "payments", "One event per order placed.", labels)
	}
	// Unset: no subject, the default mode (reject), no labels.
	plain, _ := c.CreateTopic(ctx, "plain", client.TopicConfig{})
	check("defaults", plain.Config, "", client.SchemaModeReject, "", "", nil)

	// Each field alone; the others stay.
	alter := func(name string, cfg client.TopicConfig, fields ...client.TopicField) client.Topic {
		t.Helper()
		tp, err := c.AlterTopic(ctx, name, cfg, fields...)
		if err != nil {
			t.Fatalf("alter %v: %v", fields, err)
		}
		return tp
	}
	tp = alter("orders", client.TopicConfig{SchemaMode: client.SchemaModeReject}, client.TopicFieldSchemaMode)
	check("mode", tp.Config, "orders-value", client.SchemaModeReject, "payments", "One event per order placed.", labels)
	tp = alter("orders", client.TopicConfig{SchemaSubject: "orders-v2"}, client.TopicFieldSchemaSubject)
	check("subject", tp.Config, "orders-v2", client.SchemaModeReject, "payments", "One event per order placed.", labels)
	tp = alter("orders", client.TopicConfig{Owner: "billing"}, client.TopicFieldOwner)
	check("owner", tp.Config, "orders-v2", client.SchemaModeReject, "billing", "One event per order placed.", labels)
	tp = alter("orders", client.TopicConfig{Description: "Orders."}, client.TopicFieldDescription)
	check("description", tp.Config, "orders-v2", client.SchemaModeReject, "billing", "Orders.", labels)
	labels = map[string]string{"tier": "2"}
	tp = alter("orders", client.TopicConfig{Labels: labels}, client.TopicFieldLabels)
	check("labels replaced", tp.Config, "orders-v2", client.SchemaModeReject, "billing", "Orders.", labels)
	// A field named with its zero value: unbound, no labels.
	tp = alter("plain", client.TopicConfig{Labels: map[string]string{"a": "b"}, SchemaSubject: "s"}, client.TopicFieldLabels, client.TopicFieldSchemaSubject)
	check("plain labelled", tp.Config, "s", client.SchemaModeReject, "", "", map[string]string{"a": "b"})
	tp = alter("plain", client.TopicConfig{}, client.TopicFieldLabels, client.TopicFieldSchemaSubject)
	check("plain cleared", tp.Config, "", client.SchemaModeReject, "", "", nil)

	// Refused, at creation and on change, and nothing changes.
	many := map[string]string{}
	for i := range 65 {
		many[strconv.Itoa(i)] = "x"
	}
	for _, r := range []struct {
		cfg   client.TopicConfig
		field client.TopicField
		want  string
	}{
		{client.TopicConfig{Owner: strings.Repeat("o", 257)}, client.TopicFieldOwner, "owner longer than 256 bytes"},
		{client.TopicConfig{Description: strings.Repeat("d", 16<<10+1)}, client.TopicFieldDescription, "description longer than"},
		{client.TopicConfig{SchemaSubject: strings.Repeat("s", 256)}, client.TopicFieldSchemaSubject, "schema subject longer than 255 bytes"},
		{client.TopicConfig{Labels: many}, client.TopicFieldLabels, "more than 64 labels"},
		{client.TopicConfig{Labels: map[string]string{"": "x"}}, client.TopicFieldLabels, "label"},
		{client.TopicConfig{Labels: map[string]string{"k": strings.Repeat("v", 257)}}, client.TopicFieldLabels, "label"},
		{client.TopicConfig{SchemaMode: 7}, client.TopicFieldSchemaMode, "SchemaMode"},
	} {
		if _, err := c.AlterTopic(ctx, "orders", r.cfg, r.field); !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), r.want) {
			t.Errorf("alter %s: %v", r.field, err)
		}
		if _, err := c.CreateTopic(ctx, "refused", r.cfg); !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), r.want) {
			t.Errorf("create with %s: %v", r.field, err)
		}
	}
	if _, err := c.DescribeTopic(ctx, "refused"); !errors.Is(err, client.ErrTopicNotFound) {
		t.Errorf("a refused topic was created: %v", err)
	}

	s.Restart()
	info, err = s.Client().DescribeTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	check("after restart", info.Topic.Config, "orders-v2", client.SchemaModeReject, "billing", "Orders.", labels)
}

func TestIntegrationAddPartitions(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 2})
	c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{})
	var mu sync.Mutex
	var got []int32
	k, _ := c.NewConsumer("orders", "billing", func(_ context.Context, m *client.Message) error {
		mu.Lock()
		got = append(got, m.Partition)
		mu.Unlock()
		return nil
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- k.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the consumer's assignment", func() bool {
		info, err := c.DescribeSubscription(ctx, "orders", "billing")
		return err == nil && len(info.Members) == 1 && len(info.Members[0].Partitions) == 2
	})

	tp, err := c.AddPartitions(ctx, "orders", 4)
	if err != nil || tp.Config.Partitions != 4 {
		t.Fatalf("AddPartitions: %+v %v", tp, err)
	}
	if _, err := c.Publish(ctx, "orders", client.Message{Value: []byte("new")}.ToPartition(3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a message from the new partition", func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(got, 3) })

	for n, want := range map[int32]string{4: "already has 4", 3: "only be added", 0: "only be added", 1025: "limit of 1024"} {
		if _, err := c.AddPartitions(ctx, "orders", n); !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("AddPartitions(%d): %v", n, err)
		}
	}
	if _, err := c.AddPartitions(ctx, "nope", 3); !errors.Is(err, client.ErrTopicNotFound) {
		t.Errorf("unknown topic: %v", err)
	}
	if info, _ := c.DescribeTopic(ctx, "orders"); len(info.Partitions) != 4 {
		t.Errorf("%d partitions after the refusals", len(info.Partitions))
	}
}

// A queue consumer holding every message it gets sees a new max in flight
// at once; a stream consumer sees a new filter.
func TestIntegrationAlterSubscriptionLive(t *testing.T) {
	s := startLiveServer(t)
	c, ctx := s.Client(), context.Background()
	c.CreateTopic(ctx, "jobs", client.TopicConfig{})
	cfg := client.SubscriptionConfig{Mode: client.ModeQueue, MaxInFlight: 2}
	if _, err := c.CreateSubscription(ctx, "jobs", "workers", cfg); err != nil {
		t.Fatal(err)
	}
	var msgs []client.Message
	for range 10 {
		msgs = append(msgs, client.Message{Value: []byte("job")})
	}
	publishValues(t, c, "jobs", msgs...)

	var mu sync.Mutex
	running, maxRunning := 0, 0
	release := make(chan struct{})
	runQueueConsumer(t, c, "jobs", "workers", func(context.Context, *client.Message) error {
		mu.Lock()
		running++
		maxRunning = max(maxRunning, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}, client.ConsumerConcurrency(8), client.ConsumerPrefetch(16))
	defer close(release)
	held := func() int { mu.Lock(); defer mu.Unlock(); return running }
	waitFor(t, "two handlers", func() bool { return held() == 2 })
	time.Sleep(200 * time.Millisecond) // room for a third, which must not come
	if mu.Lock(); maxRunning != 2 {
		t.Fatalf("%d handlers at once with max in flight 2", maxRunning)
	}
	mu.Unlock()

	sub, err := c.AlterSubscription(ctx, "jobs", "workers", client.SubscriptionConfig{MaxInFlight: 5}, client.SubFieldMaxInFlight)
	if err != nil || sub.Config.MaxInFlight != 5 || sub.Config.Mode != client.ModeQueue {
		t.Fatalf("AlterSubscription: %+v %v", sub.Config, err)
	}
	waitFor(t, "five handlers", func() bool { return held() == 5 })
	info, _ := c.DescribeSubscription(ctx, "jobs", "workers")
	if len(info.Members) != 1 || info.Partitions[0].Queue.InFlight != 5 {
		t.Fatalf("members %d, in flight %d", len(info.Members), info.Partitions[0].Queue.InFlight)
	}

	// A stream consumer's filter.
	c.CreateSubscription(ctx, "jobs", "audit", client.SubscriptionConfig{Filter: "a.#"})
	var seen []string
	k, _ := c.NewConsumer("jobs", "audit", func(_ context.Context, m *client.Message) error {
		mu.Lock()
		seen = append(seen, m.Subject)
		mu.Unlock()
		return nil
	}, client.ConsumerCommitInterval(20*time.Millisecond))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- k.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	publishValues(t, c, "jobs", client.Message{Subject: "a.1"}, client.Message{Subject: "b.1"})
	waitFor(t, "a.1", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 1 })
	if _, err := c.AlterSubscription(ctx, "jobs", "audit", client.SubscriptionConfig{Filter: "b.#"}, client.SubFieldFilter); err != nil {
		t.Fatal(err)
	}
	publishValues(t, c, "jobs", client.Message{Subject: "a.2"}, client.Message{Subject: "b.2"})
	waitFor(t, "b.2", func() bool { mu.Lock(); defer mu.Unlock(); return slices.Contains(seen, "b.2") })
	waitFor(t, "the audit lag to reach 0", func() bool {
		info, err := c.DescribeSubscription(ctx, "jobs", "audit")
		return err == nil && info.Lag == 0
	})
	mu.Lock()
	if !slices.Equal(seen, []string{"a.1", "b.2"}) {
		t.Errorf("stream consumer saw %v, want a.1 then b.2", seen)
	}
	mu.Unlock()
}

func TestIntegrationAlterSubscriptionSettings(t *testing.T) {
	s := startLiveServer(t)
	c, ctx := s.Client(), context.Background()
	c.CreateTopic(ctx, "jobs", client.TopicConfig{})
	orig, err := c.CreateSubscription(ctx, "jobs", "w", client.SubscriptionConfig{Mode: client.ModeQueue, Ordering: client.OrderingKey,
		Backoff: client.Backoff{Initial: time.Second, Max: time.Minute, Jitter: client.JitterNone}})
	if err != nil {
		t.Fatal(err)
	}
	c.CreateSubscription(ctx, "jobs", "s", client.SubscriptionConfig{})

	// One part of the backoff: the rest stays.
	sub, err := c.AlterSubscription(ctx, "jobs", "w", client.SubscriptionConfig{
		Backoff: client.Backoff{Initial: 2 * time.Second}, AckTimeout: time.Minute, MaxDeliveries: 9,
		OnExpired: client.ExpiredDrop, RateLimit: 50, RateBurst: 5, Filter: "jobs.#",
	}, client.SubFieldBackoffInitial, client.SubFieldAckTimeout, client.SubFieldMaxDeliveries, client.SubFieldOnExpired,
		client.SubFieldRateLimit, client.SubFieldRateBurst, client.SubFieldFilter)
	if err != nil {
		t.Fatal(err)
	}
	q := sub.Config
	if q.Backoff.Initial != 2*time.Second || q.Backoff.Max != time.Minute || q.Backoff.Jitter != client.JitterNone ||
		q.AckTimeout != time.Minute || q.MaxDeliveries != 9 || q.OnExpired != client.ExpiredDrop || q.RateLimit != 50 ||
		q.RateBurst != 5 || q.Filter != "jobs.#" || q.Ordering != client.OrderingKey || q.DeadLetterTopic != orig.Config.DeadLetterTopic {
		t.Fatalf("altered %+v", q)
	}
	// The stream failure policy of a stream subscription.
	st, err := c.AlterSubscription(ctx, "jobs", "s", client.SubscriptionConfig{OnFailure: client.FailureStop, MaxDeliveries: 3,
		Backoff: client.Backoff{Delays: []time.Duration{time.Second, 5 * time.Second}}},
		client.SubFieldOnFailure, client.SubFieldMaxDeliveries, client.SubFieldBackoff)
	if err != nil || st.Config.OnFailure != client.FailureStop || st.Config.MaxDeliveries != 3 || len(st.Config.Backoff.Delays) != 2 {
		t.Fatalf("stream failure policy %+v %v", st.Config, err)
	}

	// Refused, and nothing changes.
	for _, r := range []struct {
		sub    string
		cfg    client.SubscriptionConfig
		fields []client.SubField
		want   string
	}{
		{"w", client.SubscriptionConfig{}, []client.SubField{"ordering"}, "ordering cannot change"},
		{"w", client.SubscriptionConfig{}, []client.SubField{"mode"}, "mode cannot change"},
		{"w", client.SubscriptionConfig{}, []client.SubField{"start"}, "ResetSubscription"},
		{"w", client.SubscriptionConfig{}, []client.SubField{"dead_letter_topic"}, "dead_letter_topic cannot change"},
		{"w", client.SubscriptionConfig{}, []client.SubField{"filter", "speed"}, `unknown field "speed"`},
		{"w", client.SubscriptionConfig{}, nil, "no fields"},
		{"w", client.SubscriptionConfig{OnFailure: client.FailureStop}, []client.SubField{client.SubFieldOnFailure}, "stream subscriptions only"},
		{"w", client.SubscriptionConfig{Filter: "a..b"}, []client.SubField{client.SubFieldFilter}, "filter"},
		{"w", client.SubscriptionConfig{RateLimit: math.NaN()}, []client.SubField{client.SubFieldRateLimit}, "RateLimit"},
		{"w", client.SubscriptionConfig{Backoff: client.Backoff{Initial: time.Hour}}, []client.SubField{client.SubFieldBackoffInitial}, "Max"},
		{"s", client.SubscriptionConfig{MaxInFlight: 3}, []client.SubField{client.SubFieldMaxInFlight}, "queue subscriptions only"},
		{"s", client.SubscriptionConfig{AckTimeout: time.Second}, []client.SubField{client.SubFieldAckTimeout}, "queue subscriptions only"},
	} {
		if _, err := c.AlterSubscription(ctx, "jobs", r.sub, r.cfg, r.fields...); !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s %v: %v", r.sub, r.fields, err)
		}
	}
	if _, err := c.AlterSubscription(ctx, "jobs", "nope", client.SubscriptionConfig{}, client.SubFieldFilter); !errors.Is(err, client.ErrSubscriptionNotFound) {
		t.Errorf("unknown subscription: %v", err)
	}

	s.Restart()
	for _, want := range []client.Subscription{sub, st} {
		info, err := s.Client().DescribeSubscription(ctx, "jobs", want.Name)
		if err != nil {
			t.Fatal(err)
		}
		got := info.Subscription.Config
		if got.Filter != want.Config.Filter || got.AckTimeout != want.Config.AckTimeout || got.MaxDeliveries != want.Config.MaxDeliveries ||
			!slices.Equal(got.Backoff.Delays, want.Config.Backoff.Delays) || got.Backoff.Initial != want.Config.Backoff.Initial ||
			got.RateLimit != want.Config.RateLimit || got.OnFailure != want.Config.OnFailure || got.OnExpired != want.Config.OnExpired {
			t.Errorf("%s after restart %+v, want %+v", want.Name, got, want.Config)
		}
	}
}

// The server checks what the SDK would have caught: requests made with the
// generated client directly.
func TestIntegrationAlterServerValidation(t *testing.T) {
	s := startLiveServer(t)
	ctx := context.Background()
	s.Client().CreateTopic(ctx, "t", client.TopicConfig{Partitions: 2})
	s.Client().CreateSubscription(ctx, "t", "q", client.SubscriptionConfig{Mode: client.ModeQueue})
	topics := spoolv1connect.NewTopicServiceClient(http.DefaultClient, s.URL())
	subs := spoolv1connect.NewSubscriptionServiceClient(http.DefaultClient, s.URL())
	mask := func(p ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: p} }
	invalid := func(what string, err error, want string) {
		t.Helper()
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", what, err)
		}
	}
	_, err := topics.AlterTopic(ctx, connect.NewRequest(&spoolv1.AlterTopicRequest{Name: "t", Config: &spoolv1.TopicConfig{Retention: durationpb.New(time.Hour)}}))
	invalid("empty topic mask", err, "update_mask is empty")
	_, err = topics.AlterTopic(ctx, connect.NewRequest(&spoolv1.AlterTopicRequest{Name: "t", Config: &spoolv1.TopicConfig{RetentionBytes: -5}, UpdateMask: mask("retention_bytes")}))
	invalid("negative retention bytes", err, "must not be negative")
	_, err = topics.AlterTopic(ctx, connect.NewRequest(&spoolv1.AlterTopicRequest{Name: "t", Config: &spoolv1.TopicConfig{Retention: durationpb.New(-time.Hour)}, UpdateMask: mask("retention")}))
	invalid("negative retention", err, "must not be negative")
	_, err = topics.AlterTopic(ctx, connect.NewRequest(&spoolv1.AlterTopicRequest{Name: "t", Config: &spoolv1.TopicConfig{Discard: 7}, UpdateMask: mask("discard")}))
	invalid("unknown discard", err, "discard")
	_, err = topics.AlterTopic(ctx, connect.NewRequest(&spoolv1.AlterTopicRequest{Name: "t", Config: &spoolv1.TopicConfig{SchemaMode: 7}, UpdateMask: mask("schema_mode")}))
	invalid("unknown schema mode", err, "unknown schema mode 7")
	_, err = topics.AlterTopic(ctx, connect.NewRequest(&spoolv1.AlterTopicRequest{Name: "t", Config: &spoolv1.TopicConfig{Labels: []*spoolv1.Label{{Key: "", Value: "v"}}}, UpdateMask: mask("labels")}))
	invalid("empty label key", err, "label")
	_, err = topics.AlterTopic(ctx, connect.NewRequest(&spoolv1.AlterTopicRequest{Name: "t", Config: &spoolv1.TopicConfig{Labels: []*spoolv1.Label{{Key: "k", Value: "1"}, {Key: "k", Value: "2"}}}, UpdateMask: mask("labels")}))
	invalid("label given twice", err, "twice")
	_, err = topics.CreateTopic(ctx, connect.NewRequest(&spoolv1.CreateTopicRequest{Name: "u", Config: &spoolv1.TopicConfig{SchemaMode: 9}}))
	invalid("unknown schema mode at creation", err, "unknown schema mode 9")
	_, err = topics.CreateTopic(ctx, connect.NewRequest(&spoolv1.CreateTopicRequest{Name: "u", Config: &spoolv1.TopicConfig{Owner: strings.Repeat("o", 300)}}))
	invalid("long owner at creation", err, "owner longer")
	// A bad value in a field the mask does not name is ignored.
	r, err := topics.AlterTopic(ctx, connect.NewRequest(&spoolv1.AlterTopicRequest{Name: "t",
		Config: &spoolv1.TopicConfig{MaxMessages: 10, Discard: 7, RetentionBytes: -1}, UpdateMask: mask("max_messages")}))
	if err != nil || r.Msg.Topic.Config.MaxMessages != 10 {
		t.Fatalf("unnamed bad fields: %v", err)
	}
	_, err = topics.AddPartitions(ctx, connect.NewRequest(&spoolv1.AddPartitionsRequest{Name: "t", Partitions: 1}))
	invalid("shrinking", err, "only be added")

	_, err = subs.AlterSubscription(ctx, connect.NewRequest(&spoolv1.AlterSubscriptionRequest{Topic: "t", Name: "q"}))
	invalid("empty subscription mask", err, "update_mask is empty")
	_, err = subs.AlterSubscription(ctx, connect.NewRequest(&spoolv1.AlterSubscriptionRequest{Topic: "t", Name: "q",
		Config: &spoolv1.SubscriptionConfig{RateLimit: math.NaN()}, UpdateMask: mask("rate_limit")}))
	invalid("NaN rate limit", err, "rate limit")
	_, err = subs.AlterSubscription(ctx, connect.NewRequest(&spoolv1.AlterSubscriptionRequest{Topic: "t", Name: "q",
		Config: &spoolv1.SubscriptionConfig{RateLimit: math.Inf(1)}, UpdateMask: mask("rate_limit")}))
	invalid("infinite rate limit", err, "rate limit")
	_, err = subs.AlterSubscription(ctx, connect.NewRequest(&spoolv1.AlterSubscriptionRequest{Topic: "t", Name: "q",
		Config: &spoolv1.SubscriptionConfig{Backoff: &spoolv1.Backoff{Multiplier: math.Inf(1)}}, UpdateMask: mask("backoff.multiplier")}))
	invalid("infinite multiplier", err, "Multiplier")
	_, err = subs.AlterSubscription(ctx, connect.NewRequest(&spoolv1.AlterSubscriptionRequest{Topic: "t", Name: "q",
		Config: &spoolv1.SubscriptionConfig{Backoff: &spoolv1.Backoff{Multiplier: math.NaN()}}, UpdateMask: mask("backoff")}))
	invalid("NaN multiplier", err, "Multiplier")
	_, err = subs.AlterSubscription(ctx, connect.NewRequest(&spoolv1.AlterSubscriptionRequest{Topic: "t", Name: "q",
		Config: &spoolv1.SubscriptionConfig{MaxInFlight: -3, Filter: "x"}, UpdateMask: mask("filter", "max_in_flight")}))
	invalid("negative max in flight", err, "must not be negative")
	_, err = subs.AlterSubscription(ctx, connect.NewRequest(&spoolv1.AlterSubscriptionRequest{Topic: "t", Name: "q",
		Config: &spoolv1.SubscriptionConfig{}, UpdateMask: mask("start.latest")}))
	invalid("start", err, "start cannot change")

	info, err := s.Client().DescribeSubscription(ctx, "t", "q")
	if err != nil || info.Subscription.Config.Filter != "" || info.Subscription.Config.RateLimit != 0 || info.Subscription.Config.MaxInFlight != 0 {
		t.Fatalf("subscription changed by refused requests: %+v %v", info.Subscription.Config, err)
	}
}

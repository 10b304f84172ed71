package broker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

func TestAddPartitionsStreamSubscription(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2})
	e.b.CreateSubscription("t", "s", catalog.SubConfig{})
	sess, err := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, sess)
	if len(ev.Assignment.Partitions) != 2 {
		t.Fatalf("first assignment %+v", ev.Assignment)
	}
	meta, err := e.b.AddPartitions("t", 4)
	if err != nil || meta.Config.Partitions != 4 {
		t.Fatalf("add: %+v %v", meta, err)
	}
	ev = next(t, sess)
	if ev.Assignment == nil || len(ev.Assignment.Partitions) != 4 {
		t.Fatalf("assignment after adding partitions: %+v", ev)
	}
	gen := ev.Assignment.Generation
	if _, err := e.b.Publish("t", []Message{{Value: []byte("new"), Partition: 3}}); err != nil {
		t.Fatal(err)
	}
	ev = next(t, sess)
	if len(ev.Deliveries) != 1 || ev.Deliveries[0].Partition != 3 || string(ev.Deliveries[0].Value) != "new" {
		t.Fatalf("delivery from the new partition: %+v", ev)
	}
	if err := sess.Commit(1, gen, map[int32]int64{3: 1}); err != nil {
		t.Fatalf("commit on the new partition: %v", err)
	}
	info, err := e.b.DescribeSubscription("t", "s")
	if err != nil || len(info.Partitions) != 4 || info.Partitions[3].Committed != 1 {
		t.Fatalf("describe: %+v %v", info.Partitions, err)
	}
	sess.Leave()
	e.restart()
	if m, ok := e.b.Topic("t"); !ok || m.Config.Partitions != 4 {
		t.Fatalf("after restart %+v", m)
	}
	info, err = e.b.DescribeSubscription("t", "s")
	if err != nil || len(info.Partitions) != 4 || info.Partitions[3].Committed != 1 || info.Partitions[3].End != 1 {
		t.Fatalf("describe after restart: %+v %v", info.Partitions, err)
	}
}

func TestAddPartitionsQueueSubscription(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 1})
	if _, err := e.b.CreateSubscription("jobs", "w", queueCfg(nil)); err != nil {
		t.Fatal(err)
	}
	s, err := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	if _, err := e.b.AddPartitions("jobs", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Publish("jobs", []Message{{Value: []byte("a"), Partition: 2}, {Value: []byte("b"), Partition: 0}}); err != nil {
		t.Fatal(err)
	}
	var got []Delivered
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		got = append(got, deliveries(t, s, time.Second)...)
	}
	if len(got) != 2 {
		t.Fatalf("delivered %+v", got)
	}
	ackAll(t, s, got)
	e.b.QueueTick()
	info, err := e.b.DescribeSubscription("jobs", "w")
	if err != nil || len(info.Partitions) != 3 || info.Partitions[2].Queue == nil {
		t.Fatalf("describe: %+v %v", info.Partitions, err)
	}
}

func TestAddPartitionsRefusals(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2})
	for _, n := range []int32{1, 2, catalog.MaxPartitions + 1} {
		if _, err := e.b.AddPartitions("t", n); !errs.Is(err, errs.InvalidArgument) {
			t.Fatalf("AddPartitions(%d): %v", n, err)
		}
	}
	if _, err := e.b.AddPartitions("nope", 3); !errs.Is(err, errs.TopicNotFound) {
		t.Fatalf("unknown topic: %v", err)
	}
}

// Appends that queue several partitions of one topic before waiting (as a
// Kafka Produce does) run while partitions are added and configs changed:
// no deadlock, no race, nothing lost.
func TestAddPartitionsUnderLoad(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2})
	rec, err := batch.Encode(nil, batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{{Value: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var pas []*PendingAppend
				for p := range int32(2) {
					pa, err := e.b.AppendRaw("t", p, append([]byte(nil), rec...))
					if err != nil {
						t.Error(err)
						return
					}
					pas = append(pas, pa)
				}
				for _, pa := range pas {
					if _, err := pa.Wait(); err != nil {
						t.Error(err)
						return
					}
				}
				counts[w] += 2
				e.b.ReadRaw("t", 1, 0, 100)
				e.b.Topic("t")
			}
		}()
	}
	for n := int32(3); n <= 6; n++ {
		time.Sleep(20 * time.Millisecond)
		if _, err := e.b.AddPartitions("t", n); err != nil {
			t.Fatal(err)
		}
		if _, err := e.b.UpdateTopicConfig("t", func(c *catalog.TopicConfig) error { c.RetentionBytes = int64(n) << 20; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	info, _ := e.b.DescribeTopic("t")
	total := 0
	for _, c := range counts {
		total += c
	}
	if len(info.Partitions) != 6 || info.Messages != int64(total) {
		t.Fatalf("%d partitions, %d messages, want 6 and %d", len(info.Partitions), info.Messages, total)
	}
}

func TestUpdateTopicConfig(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{})
	meta, err := e.b.UpdateTopicConfig("t", func(c *catalog.TopicConfig) error {
		c.Retention, c.RetentionBytes, c.MaxMessageBytes = time.Hour, 1<<20, 4096
		return nil
	})
	if err != nil || meta.Config.Retention != time.Hour || meta.Config.MaxMessageBytes != 4096 {
		t.Fatalf("update: %+v %v", meta.Config, err)
	}
	if _, err := e.b.UpdateTopicConfig("t", func(c *catalog.TopicConfig) error { c.Partitions = 5; return nil }); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("changing partitions through configs: %v", err)
	}
	if _, err := e.b.UpdateTopicConfig("t", func(c *catalog.TopicConfig) error { c.MaxMessageBytes = -1; return nil }); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("invalid value: %v", err)
	}
	big, _ := batch.Encode(nil, batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, []batch.Record{{Value: make([]byte, 6000)}})
	if _, err := e.b.AppendRaw("t", 0, big); !errs.Is(err, errs.MessageTooLarge) {
		t.Fatalf("append above the new limit: %v", err)
	}
	e.restart()
	if m, _ := e.b.Topic("t"); m.Config.Retention != time.Hour || m.Config.RetentionBytes != 1<<20 || m.Config.MaxMessageBytes != 4096 {
		t.Fatalf("after restart: %+v", m.Config)
	}
	if _, err := e.b.UpdateTopicConfig("nope", func(*catalog.TopicConfig) error { return nil }); !errs.Is(err, errs.TopicNotFound) {
		t.Fatalf("unknown topic: %v", err)
	}
}

func TestDeleteRecordsBroker(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{})
	e.b.CreateSubscription("t", "s", catalog.SubConfig{})
	if _, err := e.b.Publish("t", msgs("m", 10)); err != nil {
		t.Fatal(err)
	}
	if start, err := e.b.DeleteRecords("t", 0, 4); err != nil || start != 4 {
		t.Fatalf("delete: %d %v", start, err)
	}
	if _, err := e.b.DeleteRecords("t", 0, 11); !errs.Is(err, errs.OffsetOutOfRange) {
		t.Fatalf("beyond the end: %v", err)
	}
	if _, err := e.b.DeleteRecords("t", 3, 1); !errs.Is(err, errs.TopicNotFound) {
		t.Fatalf("no such partition: %v", err)
	}
	// A subscription behind the start resumes at it.
	sess, err := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	next(t, sess)
	ev := next(t, sess)
	if len(ev.Deliveries) != 6 || ev.Deliveries[0].Offset != 4 {
		t.Fatalf("deliveries after delete: %+v", ev.Deliveries)
	}
	sess.Leave()
	e.restart()
	if start, _, _ := e.b.Offsets("t", 0); start != 4 {
		t.Fatalf("start after restart %d", start)
	}
	if start, err := e.b.DeleteRecords("t", 0, -1); err != nil || start != 10 {
		t.Fatalf("delete to the end: %d %v", start, err)
	}
}

func TestCreateTopicMessageLimitBoundedByLogs(t *testing.T) {
	e := newEnv(t)
	e.opts = func(c *Config) { c.Log.Limits.MaxBatchBytes = 32 << 10 }
	e.restart()
	if _, err := e.b.CreateTopic("big", catalog.TopicConfig{MaxMessageBytes: 64 << 10}); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("explicit limit above the logs' batch limit: %v", err)
	}
	if _, ok := e.b.Topic("big"); ok {
		t.Fatal("refused topic exists")
	}
	// The server default (1 MiB) is capped to what the logs store.
	m, err := e.b.CreateTopic("dflt", catalog.TopicConfig{})
	if err != nil || m.Config.MaxMessageBytes != 32<<10 {
		t.Fatalf("default limit: %+v %v", m.Config, err)
	}
	if _, err := e.b.UpdateTopicConfig("dflt", func(c *catalog.TopicConfig) error { c.MaxMessageBytes = 33 << 10; return nil }); !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("raising the limit above the logs' batch limit: %v", err)
	}
}

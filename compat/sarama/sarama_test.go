// Package sarama checks that IBM/sarama, with its default protocol version,
// produces to Spool and consumes back through a consumer group.
package sarama

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/spoolmq/spool/compat/check"
)

const partitions = 3

func TestProduceConsumeGroup(t *testing.T) {
	addrs := check.KafkaAddrs()
	topic, group := check.Name("topic", "sarama"), check.Name("group", "sarama")
	sent := check.Records(200)

	cfg := sarama.NewConfig()
	cfg.ClientID = "spool-compat-sarama"
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Return.Errors = true

	admin, err := sarama.NewClusterAdmin(addrs, cfg)
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: check.ReplicationFactor()}, false); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	producer, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	msgs := make([]*sarama.ProducerMessage, len(sent))
	for i, r := range sent {
		m := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(r.Value)}
		if r.Key != nil {
			m.Key = sarama.ByteEncoder(r.Key)
		}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
		}
		msgs[i] = m
	}
	if err := producer.SendMessages(msgs); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := producer.Close(); err != nil {
		t.Fatalf("close producer: %v", err)
	}

	got, err := consumeGroup(addrs, group, topic, cfg, len(sent))
	if err != nil {
		t.Fatalf("consume with group %s: %v (received %d of %d)", group, err, len(got), len(sent))
	}
	check.Same(t, sent, got)
	check.InKeyOrder(t, sent, got)

	// The group's committed offsets are the partitions' end offsets.
	cl, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer cl.Close()
	ids := []int32{0, 1, 2}
	offs, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: ids})
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	for _, p := range ids {
		end, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("end offset of partition %d: %v", p, err)
		}
		b := offs.GetBlock(topic, p)
		switch {
		case b == nil:
			t.Errorf("partition %d: no committed offset", p)
		case !errors.Is(b.Err, sarama.ErrNoError):
			t.Errorf("partition %d: committed offset error %v", p, b.Err)
		case b.Offset != end:
			t.Errorf("partition %d: committed offset %d, end offset %d", p, b.Offset, end)
		}
	}
}

// consumeGroup joins group and consumes topic until n records arrived,
// marking each; sarama commits the marked offsets when the session ends.
func consumeGroup(addrs []string, group, topic string, cfg *sarama.Config, n int) ([]check.Record, error) {
	cg, err := sarama.NewConsumerGroup(addrs, group, cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	h := &handler{n: n, done: cancel}
	firstErr := make(chan error, 1) // the group's first asynchronous error
	go func() {
		var first error
		for err := range cg.Errors() {
			if first == nil {
				first = err
			}
		}
		firstErr <- first
	}()
	var groupErr error
	for ctx.Err() == nil {
		if groupErr = cg.Consume(ctx, []string{topic}, h); groupErr != nil {
			break
		}
	}
	closeErr := cg.Close()
	if err := <-firstErr; groupErr == nil {
		groupErr = err
	}
	got := h.records()
	switch {
	case len(got) < n && groupErr != nil:
		return got, groupErr
	case len(got) < n:
		return got, ctx.Err()
	}
	return got, closeErr
}

type handler struct {
	n    int
	done func()

	mu  sync.Mutex
	got []check.Record
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		r := check.Record{Key: m.Key, Value: m.Value}
		for _, hd := range m.Headers {
			r.Headers = append(r.Headers, check.Header{Key: string(hd.Key), Value: hd.Value})
		}
		sess.MarkMessage(m, "")
		h.mu.Lock()
		h.got = append(h.got, r)
		if len(h.got) >= h.n {
			h.done()
		}
		h.mu.Unlock()
	}
	return nil
}

func (h *handler) records() []check.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]check.Record(nil), h.got...)
}

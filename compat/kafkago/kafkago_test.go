// Package kafkago checks that segmentio/kafka-go's Writer produces to Spool
// and its Reader consumes back through a consumer group, both with acks=all
// and with the Writer's default, acks=0 (no response at all).
package kafkago

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/spoolmq/spool/compat/check"
)

const partitions = 3

func TestWriterAcksAllReaderGroup(t *testing.T) {
	w := &kafka.Writer{RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{}, BatchTimeout: 10 * time.Millisecond}
	sent, got := roundTrip(t, w)
	check.Same(t, sent, got)
	check.InKeyOrder(t, sent, got) // Hash sends a key to one partition
}

func TestWriterDefaultsReaderGroup(t *testing.T) {
	w := &kafka.Writer{} // acks=0, round-robin partitions, 1 s batches
	sent, got := roundTrip(t, w)
	check.Same(t, sent, got)
}

// roundTrip creates a topic, writes records to it through w, and reads them
// back with a group Reader, committing each, then checks the group's
// committed offsets.
func roundTrip(t *testing.T, w *kafka.Writer) (sent, got []check.Record) {
	addr := kafka.TCP(check.KafkaAddrs()...)
	topic, group := check.Name("topic", "kafka-go"), check.Name("group", "kafka-go")
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: addr, Timeout: 10 * time.Second}

	resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: int(check.ReplicationFactor())}},
	})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}

	sent = check.Records(200)
	msgs := make([]kafka.Message, len(sent))
	for i, r := range sent {
		msgs[i] = kafka.Message{Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			msgs[i].Headers = append(msgs[i].Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
	}
	w.Addr, w.Topic = addr, topic
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}
	waitStored(ctx, t, cl, topic, len(sent))

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     check.KafkaAddrs(),
		GroupID:     group,
		Topic:       topic,
		StartOffset: kafka.FirstOffset,
		MaxWait:     200 * time.Millisecond,
		ErrorLogger: failOnError(t),
	})
	for len(got) < len(sent) {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			r.Close()
			t.Fatalf("read with group %s: %v (received %d of %d)", group, err, len(got), len(sent))
		}
		rec := check.Record{Key: m.Key, Value: m.Value}
		for _, h := range m.Headers {
			rec.Headers = append(rec.Headers, check.Header{Key: h.Key, Value: h.Value})
		}
		got = append(got, rec)
		if err := r.CommitMessages(ctx, m); err != nil {
			r.Close()
			t.Fatalf("commit: %v", err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close reader: %v", err)
	}
	checkCommitted(ctx, t, cl, group, topic)
	return sent, got
}

// waitStored fails t unless topic's partitions hold n records within a few
// seconds (with acks=0 the broker may still be appending when the Writer
// returns).
func waitStored(ctx context.Context, t *testing.T, cl *kafka.Client, topic string, n int) {
	t.Helper()
	var stored int64
	for range 50 {
		stored = 0
		for _, end := range endOffsets(ctx, t, cl, topic) {
			stored += end
		}
		if stored == int64(n) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("wrote %d records, the topic's end offsets add up to %d", n, stored)
}

// endOffsets returns the end offset of each partition of topic.
func endOffsets(ctx context.Context, t *testing.T, cl *kafka.Client, topic string) map[int]int64 {
	t.Helper()
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	end := map[int]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("end offset of partition %d: %v", po.Partition, po.Error)
		}
		end[po.Partition] = po.LastOffset
	}
	return end
}

// checkCommitted fails t unless group's committed offset of every partition
// of topic is the partition's end offset.
func checkCommitted(ctx context.Context, t *testing.T, cl *kafka.Client, group, topic string) {
	t.Helper()
	ids := []int{0, 1, 2}
	committed, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err == nil {
		err = committed.Error
	}
	if err != nil {
		t.Fatalf("committed offsets: %v", err)
	}
	end := endOffsets(ctx, t, cl, topic)
	for _, c := range committed.Topics[topic] {
		switch {
		case c.Error != nil:
			t.Errorf("partition %d: committed offset error %v", c.Partition, c.Error)
		case c.CommittedOffset != end[c.Partition]:
			t.Errorf("partition %d: committed offset %d, end offset %d", c.Partition, c.CommittedOffset, end[c.Partition])
		}
	}
	if n := len(committed.Topics[topic]); n != partitions {
		t.Errorf("committed offsets of %d partitions, want %d", n, partitions)
	}
}

// failOnError fails t with each distinct error the Reader logs: a protocol
// error the Reader recovered from is still an incompatibility.
func failOnError(t *testing.T) kafka.LoggerFunc {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		mu.Lock()
		defer mu.Unlock()
		if !seen[msg] {
			seen[msg] = true
			t.Errorf("kafka-go reader: %s", msg)
		}
	}
}

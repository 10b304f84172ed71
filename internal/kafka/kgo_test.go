package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

func startServer(t testing.TB) *server.Server {
	t.Helper()
	return spooltest.StartServer(t).Server()
}

func TestKgoProduceConsume(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.AllowAutoTopicCreation(), kgo.DisableIdempotentWrite(),
		kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 100 {
		r := &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprint(i)),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	got := 0
	for got < 100 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Headers) != 1 || r.Headers[0].Key != "h" {
				t.Errorf("headers lost: %+v", r.Headers)
			}
			got++
		})
	}
}

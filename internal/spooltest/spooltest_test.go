package spooltest_test

import (
	"context"
	"testing"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

// A topic created through the client survives a restart, is seen by the
// client after it, and a second server on the same directory (once the
// first stopped) finds it too.
func TestStartServerRestart(t *testing.T) {
	ctx := context.Background()
	s := spooltest.StartServer(t, spooltest.Config(func(c *server.Config) { c.KafkaAddr = "-" }))
	if _, err := s.Client().CreateTopic(ctx, "t", client.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	if info, err := s.Client().DescribeTopic(ctx, "t"); err != nil || len(info.Partitions) != 2 {
		t.Fatalf("after a restart: %+v, %v", info, err)
	}
	if s.Server().KafkaAddr() != "" {
		t.Errorf("Kafka listener on %s, though disabled", s.Server().KafkaAddr())
	}
	s.Stop()
	s.Stop() // stopping a stopped server does nothing

	again := spooltest.StartServer(t, spooltest.Dir(s.Dir()))
	if _, err := again.Client().DescribeTopic(ctx, "t"); err != nil {
		t.Fatalf("on the same directory: %v", err)
	}
}

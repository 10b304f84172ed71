package server

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// The server's default durability (topics.durability, spool serve
// --durability) is what a topic created without one gets — through the
// native API, through Kafka's CreateTopics and auto-creation, and for
// dead-letter topics — while an explicit choice, "always" included, is
// kept.
func TestDefaultDurabilityApplies(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Logger: quiet}
	cfg.Topics.Durability = DurabilityNone
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ctx := context.Background()
	topics := spoolv1connect.NewTopicServiceClient(h2c(), "http://"+srv.HTTPAddr())
	create := func(name string, d spoolv1.Durability) spoolv1.Durability {
		t.Helper()
		resp, err := topics.CreateTopic(ctx, connect.NewRequest(&spoolv1.CreateTopicRequest{Name: name, Config: &spoolv1.TopicConfig{Durability: d}}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.Topic.Config.Durability
	}
	if got := create("unset", spoolv1.Durability_DURABILITY_UNSPECIFIED); got != spoolv1.Durability_DURABILITY_NONE {
		t.Errorf("topic without a durability got %v, want the server's default (none)", got)
	}
	if got := create("explicit", spoolv1.Durability_DURABILITY_ALWAYS); got != spoolv1.Durability_DURABILITY_ALWAYS {
		t.Errorf("topic asking for always got %v", got)
	}
	subs := spoolv1connect.NewSubscriptionServiceClient(h2c(), "http://"+srv.HTTPAddr())
	if _, err := subs.CreateSubscription(ctx, connect.NewRequest(&spoolv1.CreateSubscriptionRequest{Topic: "explicit", Name: "q",
		Config: &spoolv1.SubscriptionConfig{Mode: spoolv1.Mode_MODE_QUEUE}})); err != nil {
		t.Fatal(err)
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if _, err := kadm.NewClient(kc).CreateTopic(ctx, 1, 1, nil, "from-kafka"); err != nil {
		t.Fatal(err)
	}
	if err := kc.ProduceSync(ctx, &kgo.Record{Topic: "auto", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"from-kafka", "auto", "dlq.explicit.q"} {
		resp, err := topics.DescribeTopic(ctx, connect.NewRequest(&spoolv1.DescribeTopicRequest{Name: name}))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Msg.Topic.Config.Durability; got != spoolv1.Durability_DURABILITY_NONE {
			t.Errorf("topic %s got durability %v, want the server's default (none)", name, got)
		}
	}
}

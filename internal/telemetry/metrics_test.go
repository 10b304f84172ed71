package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/spooltest"
)

func TestMetricsShowQueueState(t *testing.T) {
	srv := spooltest.StartServer(t)
	b := srv.Broker()
	b.CreateTopic("jobs", catalog.TopicConfig{})
	b.CreateSubscription("jobs", "w", catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{MaxInFlight: 2}})
	b.Publish("jobs", []broker.Message{{Value: []byte("a"), Partition: -1}, {Value: []byte("b"), Partition: -1}, {Value: []byte("c"), Partition: -1}})
	s, err := b.Join(broker.JoinRequest{Topic: "jobs", Subscription: "w", Credits: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for n := 0; n < 2; {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(ev.Deliveries)
	}
	resp, err := http.Get(srv.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	for _, want := range []string{
		`spool_topic_messages{topic="jobs"} 3`,
		`spool_queue_in_flight{partition="0",subscription="w",topic="jobs"} 2`,
		`spool_queue_in_flight_limited{partition="0",subscription="w",topic="jobs"} 1`,
		`spool_subscription_lag{mode="queue",subscription="w",topic="jobs"} 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/server"
)

func TestMetricsShowQueueState(t *testing.T) {
	srv, err := server.New(server.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	b := serverhook.Broker(srv)
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
	resp, err := http.Get("http://" + srv.HTTPAddr() + "/metrics")
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

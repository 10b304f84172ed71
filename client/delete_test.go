package client_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/spooltest"
)

// logRecorder is a slog handler that keeps the messages logged.
type logRecorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func (l logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.msgs = append(*l.msgs, r.Message)
	return nil
}
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logRecorder) WithGroup(string) slog.Handler      { return l }

func (l logRecorder) logged(substr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range *l.msgs {
		if strings.Contains(m, substr) {
			return true
		}
	}
	return false
}

// TestIntegrationConsumerDeleted: a consumer whose topic or subscription
// is deleted while it runs stops at once with ErrTopicNotFound or
// ErrSubscriptionNotFound, in both modes, without reconnecting.
func TestIntegrationConsumerDeleted(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts a real server")
	}
	rec := logRecorder{mu: &sync.Mutex{}, msgs: new([]string)}
	c := spooltest.StartServer(t, spooltest.ClientOptions(client.WithLogger(slog.New(rec)), client.WithBackoff(10*time.Millisecond, 50*time.Millisecond))).Client()
	ctx := context.Background()

	for _, mode := range []client.Mode{client.ModeStream, client.ModeQueue} {
		for _, del := range []string{"topic", "subscription"} {
			if _, err := c.CreateTopic(ctx, "t", client.TopicConfig{Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.CreateSubscription(ctx, "t", "s", client.SubscriptionConfig{Mode: mode}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Publish(ctx, "t", client.Message{Value: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			handled := make(chan struct{}, 1)
			k, err := c.NewConsumer("t", "s", func(context.Context, *client.Message) error {
				select {
				case handled <- struct{}{}:
				default:
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			done := make(chan error, 1)
			go func() { done <- k.Run(runCtx) }()
			<-handled

			want := client.ErrTopicNotFound
			if del == "topic" {
				err = c.DeleteTopic(ctx, "t")
			} else {
				want = client.ErrSubscriptionNotFound
				err = c.DeleteSubscription(ctx, "t", "s")
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, want) {
				t.Errorf("%s, %s deleted: Run returned %v, want %v", mode, del, err, want)
			}
			if runCtx.Err() != nil {
				t.Errorf("%s, %s deleted: Run returned only when its context ended", mode, del)
			}
			cancel()
			if rec.logged("reconnecting") {
				t.Errorf("%s, %s deleted: the consumer tried to reconnect", mode, del)
			}
			if del == "subscription" {
				c.DeleteTopic(ctx, "t")
			}
			c.DeleteTopic(ctx, "dlq.t.s")
		}
	}
}

package broker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// waitEnd calls Next until the session ends and returns why; it fails the
// test if the session is still open after a generous deadline (a session
// of a deleted topic used to wait for its member forever).
func waitEnd(t *testing.T, s *Session) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, err := s.Next(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("the session did not end")
			}
			return err
		}
	}
}

// TestDeleteEndsSessions: deleting a topic or a subscription ends every
// session on it, in both modes, with topic_not_found or
// subscription_not_found, and nobody joins it again.
func TestDeleteEndsSessions(t *testing.T) {
	for _, mode := range []catalog.SubConfig{{}, queueCfg(nil)} {
		e := newEnv(t)
		for _, name := range []string{"t", "u"} {
			if _, err := e.b.CreateTopic(name, catalog.TopicConfig{Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.b.CreateSubscription(name, "s", mode); err != nil {
				t.Fatal(err)
			}
		}
		join := func(topic string) *Session {
			s, err := e.b.Join(JoinRequest{Topic: topic, Subscription: "s", Credits: 10})
			if err != nil {
				t.Fatal(err)
			}
			next(t, s) // the assignment
			return s
		}
		a, b := join("t"), join("t")
		if err := e.b.DeleteTopic("t"); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Session{a, b} {
			if err := waitEnd(t, s); !errs.Is(err, errs.TopicNotFound) || !strings.Contains(err.Error(), "was deleted") {
				t.Errorf("mode %s, topic deleted: session ended with %v", mode.Mode, err)
			}
			s.Leave()
		}

		c := join("u")
		if err := e.b.DeleteSubscription("u", "s"); err != nil {
			t.Fatal(err)
		}
		if err := waitEnd(t, c); !errs.Is(err, errs.SubNotFound) {
			t.Errorf("mode %s, subscription deleted: session ended with %v", mode.Mode, err)
		}
		c.Leave()
		if _, err := e.b.Join(JoinRequest{Topic: "u", Subscription: "s"}); !errs.Is(err, errs.SubNotFound) {
			t.Errorf("mode %s: join after the delete: %v", mode.Mode, err)
		}
		e.close()
	}
}

// TestCloseEndsSessionsUnavailable: a broker shutting down ends sessions
// as unavailable (retriable), not as a deleted topic.
func TestCloseEndsSessionsUnavailable(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{})
	e.b.CreateSubscription("t", "s", catalog.SubConfig{})
	s, err := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", Credits: 10})
	if err != nil {
		t.Fatal(err)
	}
	next(t, s)
	e.close()
	if err := waitEnd(t, s); !errs.Is(err, errs.Unavailable) {
		t.Errorf("session ended with %v", err)
	}
	s.Leave()
}

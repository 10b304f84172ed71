package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// TestPublishWaitEndsWhenCutOff: a partition leader whose replicas stopped
// (the metadata group still has its majority) fails the publish waiting
// for them with a retriable error once it stops leading (check-quorum),
// instead of holding the topic for as long as the cut lasts — a waiting
// publish holds the topic's life lock, which the leader's metadata apply
// of a change of that topic needs, so the node's whole catalog would
// stand still with it.
func TestPublishWaitEndsWhenCutOff(t *testing.T) {
	c := newTestCluster(t, 5)
	m1 := c.members[1]
	if err := retry(t, func() error {
		_, err := m1.b.CreateTopic("q", catalog.TopicConfig{Partitions: 1, Replicas: 3})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.sameCatalog(m1)
	tm, _ := m1.b.Topic("q")
	voters := tm.Assignment[0].Voters
	eventuallyWithin(t, 30*time.Second, "the group as assigned", func() error { return c.groupMatches("q", 0, voters) })
	c.publishTo("q", 0, "before")
	lead := c.leaderOf("q", 0)
	var other *member // a node that is no replica: it makes the change
	for id, m := range c.members {
		if id != lead.id && slices.Contains(voters, id) {
			c.stop(m)
		}
		if !slices.Contains(voters, id) {
			other = m
		}
	}

	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := lead.b.Publish("q", []broker.Message{{Value: []byte("cut"), Partition: 0}})
		done <- err
	}()
	// The maintenance pass ends such waits (every second by default;
	// hourly in these tests).
	stopMaint, maintDone := make(chan struct{}), make(chan struct{})
	defer func() { close(stopMaint); <-maintDone }()
	go func() {
		defer close(maintDone)
		for {
			select {
			case <-stopMaint:
				return
			case <-time.After(200 * time.Millisecond):
				lead.b.Maintain()
			}
		}
	}()
	var took time.Duration
	select {
	case err := <-done:
		took = time.Since(start)
		if !errs.Is(err, errs.Unavailable) {
			t.Fatalf("publish to a leader without its replicas: %v, want unavailable", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the publish to a leader cut off from its replicas still waits after 20 s")
	}
	t.Logf("the publish failed %v after it was made", took.Round(time.Millisecond))

	// The catalog goes on on every running node, the cut-off leader's too.
	if err := retry(t, func() error {
		_, err := other.b.UpdateTopicConfig("q", func(cfg *catalog.TopicConfig) error {
			cfg.MaxMessages = 1234
			return nil
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 20*time.Second, "the change applied on the cut-off leader", func() error {
		if got, _ := lead.b.Topic("q"); got.Config.MaxMessages != 1234 {
			return errs.New(errs.Unavailable, "node %d has max messages %d", lead.id, got.Config.MaxMessages)
		}
		return nil
	})
}

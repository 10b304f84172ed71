package broker

import (
	"testing"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// TestSingleNodeReplicas: a single node takes replication factor 0 or 1
// and records none (its topic records stay version 1), refuses others and
// reassignments, and a topic's factor never changes by an alter.
func TestSingleNodeReplicas(t *testing.T) {
	e := newEnv(t)
	for _, rf := range []int32{2, 3, 5, -1} {
		if _, err := e.b.CreateTopic("t", catalog.TopicConfig{Replicas: rf}); !errs.Is(err, errs.InvalidArgument) {
			t.Fatalf("replication factor %d: %v", rf, err)
		}
	}
	tm, err := e.b.CreateTopic("t", catalog.TopicConfig{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tm.Config.Replicas != 0 || tm.Assignment != nil {
		t.Fatalf("a single node's topic recorded %d replicas, %+v", tm.Config.Replicas, tm.Assignment)
	}
	if err := e.b.ReassignPartitions("t", []Reassignment{{Partition: 0, Voters: []uint64{1}}}); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("reassign on a single node: %v", err)
	}
	_, err = e.b.UpdateTopicConfig("t", func(c *catalog.TopicConfig) error { c.Replicas = 3; return nil })
	if !errs.Is(err, errs.InvalidArgument) {
		t.Fatalf("alter the replication factor: %v", err)
	}
	e.restart()
	if got, _ := e.b.Topic("t"); got.Config.Replicas != 0 || got.Assignment != nil {
		t.Fatalf("after a restart: %+v", got)
	}
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterCommittedOffsetsFailover checks a consumer group's committed
// offsets as a register per partition with porcupine: three clients
// commit (OffsetCommit, outside any group generation) and read them back
// (OffsetFetch) through any node, which the client library sends to the
// group coordinator, the metadata leader; then the metadata leadership is
// moved to another node (TransferLeadership) and they go on. The history
// before the move must be linearizable, and so must the whole one
// (committedOffsetsReplicated).
func TestClusterCommittedOffsetsFailover(t *testing.T) {
	const topic, parts, records = "offsets", 2, 100
	c := newTestCluster(t, 3)
	c.createTopic(topic, parts)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.kafkaAddrs()...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range records {
		for p := range int32(parts) {
			prod.Produce(ctx, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%d", i)}, nil)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	prod.Close()

	l := newLedger()
	const group = "register"
	phase := func(d time.Duration) {
		var wg sync.WaitGroup
		for client := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				offsetClient(ctx, t, c, l, group, topic, client, parts, records, d)
			}()
		}
		wg.Wait()
	}
	load := 3 * time.Second
	if *soak {
		load = 15 * time.Second
	}
	coord, _ := c.leaderOf("metadata")
	phase(load)
	res, desc := l.checkOffsetsLinearizable(t.Name() + "-before")
	t.Logf("with node %d coordinating: %s", coord, desc)
	if res != porcupine.Ok {
		t.Fatalf("committed offsets are not linearizable with the coordinator in place: %s", desc)
	}
	next := coord%3 + 1
	c.transferMeta(next)
	phase(load)
	res, desc = l.checkOffsetsLinearizable(t.Name())
	t.Logf("across the move from node %d to node %d: %s", coord, next, desc)
	switch {
	case res == porcupine.Ok:
		if !committedOffsetsReplicated {
			t.Logf("committed offsets survived the coordinator's move: set committedOffsetsReplicated")
		}
	case !committedOffsetsReplicated:
		t.Skipf("known gap: committed offsets are not replicated yet (docs/cluster.md), and the new coordinator does not have them: %s", desc)
	default:
		t.Fatalf("committed offsets are not linearizable across a coordinator move: %s", desc)
	}
}

// offsetClient commits random offsets (a register: they may go down as
// well as up, unlike a consumer's) of random partitions and reads them
// back, one operation at a time, for d, into the ledger as client id.
func offsetClient(ctx context.Context, t *testing.T, c *testCluster, l *ledger, group, topic string, client, parts, records int, d time.Duration) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.kafkaAddrs()...), kgo.RequestTimeoutOverhead(2*time.Second), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rng := rand.New(rand.NewPCG(uint64(client), uint64(time.Now().UnixNano())))
	for end := time.Now().Add(d); time.Now().Before(end); {
		p := int32(rng.IntN(parts))
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if rng.IntN(2) == 0 {
			off := int64(1 + rng.IntN(records))
			op := l.offsetCall(group, client, p, true, off)
			resp, err := adm.CommitOffsets(octx, group, kadm.Offsets{topic: {p: {Topic: topic, Partition: p, At: off, LeaderEpoch: -1}}})
			var ke *kerr.Error
			switch {
			case err != nil:
				l.offsetDone(op, 0, err, errors.As(err, &ke))
			case resp[topic][p].Err != nil:
				l.offsetDone(op, 0, resp[topic][p].Err, true)
			default:
				l.offsetDone(op, 0, nil, true)
			}
		} else {
			op := l.offsetCall(group, client, p, false, 0)
			resp, err := adm.FetchOffsets(octx, group)
			switch o, ok := resp.Lookup(topic, p); {
			case err != nil:
				l.offsetDone(op, 0, err, true)
			case !ok:
				l.offsetDone(op, -1, nil, true)
			case o.Err != nil:
				l.offsetDone(op, 0, o.Err, true)
			default:
				l.offsetDone(op, o.At, nil, true)
			}
		}
		cancel()
	}
}

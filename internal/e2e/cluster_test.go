package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClusterKafkaFailover runs three `spool serve` processes as a
// cluster and an unmodified Kafka client against them: it finds the
// partition's leader through Metadata, produces with acks=all, goes on
// producing after the leader is killed (-9) by following the new leader,
// and a consumer then reads every acknowledged record, in order, from
// every node.
func TestClusterKafkaFailover(t *testing.T) {
	var peers, kafkaAddrs, httpAddrs []string
	for i := 1; i <= 3; i++ {
		peers = append(peers, fmt.Sprintf("%d=%s", i, freePort(t)))
		kafkaAddrs = append(kafkaAddrs, freePort(t))
		httpAddrs = append(httpAddrs, freePort(t))
	}
	dirs := make([]string, 3)
	procs := make([]*proc, 3)
	start := func(i int) {
		procs[i] = startSpool(t, dirs[i], httpAddrs[i], "--kafka", kafkaAddrs[i], "--node-id", fmt.Sprint(i+1),
			"--peers", strings.Join(peers, ","), "--log-level", "info")
	}
	for i := range procs {
		dirs[i] = filepath.Join(t.TempDir(), "data")
		start(i)
	}
	defer func() {
		for _, p := range procs {
			if p != nil {
				p.kill()
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	for {
		_, err := adm.CreateTopic(ctx, 1, -1, nil, "events")
		if err == nil || strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("create topic: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	leader := func() int32 {
		for ctx.Err() == nil {
			md, err := adm.Metadata(ctx, "events")
			if err == nil {
				if p, ok := md.Topics["events"].Partitions[0]; ok && p.Leader > 0 && len(md.Brokers) >= 2 {
					return p.Leader
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("no partition leader")
		return 0
	}

	producer, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddrs...), kgo.DefaultProduceTopic("events"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1000),
		kgo.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var acked []string
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			v := fmt.Sprintf("r%d", i)
			if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
			acked = append(acked, v)
		}
	}
	first := leader()
	produce(0, 100)
	procs[first-1].kill()
	procs[first-1] = nil
	t0 := time.Now()
	produce(100, 101)
	t.Logf("leader %d killed: the next record was acknowledged %v later", first, time.Since(t0).Round(time.Millisecond))
	produce(101, 200)
	start(int(first - 1))

	// Every node names the same group coordinator, and another node
	// refuses group requests with NOT_COORDINATOR.
	var coord int32
	for id := int32(1); id <= 3; id++ {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKeys = []string{"g"}
		var resp *kmsg.FindCoordinatorResponse
		var err error
		for range 50 { // the restarted node's old connection fails first
			if resp, err = req.RequestWith(ctx, admin.Broker(int(id))); err == nil && len(resp.Coordinators) == 1 && resp.Coordinators[0].ErrorCode == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || resp.ErrorCode != 0 || len(resp.Coordinators) != 1 || resp.Coordinators[0].ErrorCode != 0 ||
			(coord != 0 && resp.Coordinators[0].NodeID != coord) {
			t.Fatalf("FindCoordinator through node %d: %+v, %v (others: %d)", id, resp, err, coord)
		}
		coord = resp.Coordinators[0].NodeID
	}
	other := coord%3 + 1
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", "m", 1
	if resp, err := hb.RequestWith(ctx, admin.Broker(int(other))); err != nil || resp.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("Heartbeat to node %d, not the coordinator (%d): %+v, %v", other, coord, resp, err)
	}

	// A consumer group, started through every node: one coordinator (the
	// metadata leader) holds the group wherever its members connect.
	var members []*kgo.Client
	got := map[string]int{}
	for _, addr := range kafkaAddrs {
		m, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("events"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		members = append(members, m)
	}
	// Poll until every record arrived, then 2 s more: a member of another
	// group (a split) would get them again.
	var done time.Time
	for total := 0; ctx.Err() == nil && (done.IsZero() || time.Since(done) < 2*time.Second); {
		for _, m := range members {
			pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fs := m.PollFetches(pctx)
			pcancel()
			fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)]++; total++ })
		}
		if total >= len(acked) && done.IsZero() {
			done = time.Now()
		}
	}
	for _, v := range acked {
		if got[v] != 1 {
			t.Fatalf("the group of three members got %s %d times", v, got[v])
		}
	}

	for i, addr := range kafkaAddrs {
		consumer, err := kgo.NewClient(kgo.SeedBrokers(addr),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"events": {0: kgo.NewOffset().AtStart()}}))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for len(got) < len(acked) && ctx.Err() == nil {
			fs := consumer.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		consumer.Close()
		// The producer is idempotent: its retries to the new leader are
		// recognised, so every acknowledged record is there once, in order.
		if !slices.Equal(got, acked) {
			t.Fatalf("through node %d: read %d records (%v…), %d acknowledged", i+1, len(got), got[:min(5, len(got))], len(acked))
		}
	}
}

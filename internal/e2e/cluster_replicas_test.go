package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// TestClusterReplicasKafka: on three `spool serve` processes, Kafka's
// CreateTopics takes replication factors 1 and 3 (and -1, the default: 3)
// and refuses 2 and 5; Metadata lists each partition's replicas (one or
// three), its ISR, and a stopped replica as offline and out of the ISR;
// DescribeConfigs reports min.insync.replicas as a majority of the topic's
// factor; a record produced to a factor-1 topic is read through every node
// (each holds a copy).
func TestClusterReplicasKafka(t *testing.T) {
	c := newTestCluster(t, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.kafkaAddrs()...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	create := func(name string, rf int16) int16 {
		var code int16
		waitFor(t, 30*time.Second, "create topic "+name, func() error {
			req := kmsg.NewPtrCreateTopicsRequest()
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 3, rf
			req.Topics, req.TimeoutMillis = []kmsg.CreateTopicsRequestTopic{rt}, 10_000
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				return err
			}
			code = resp.Topics[0].ErrorCode
			if code == kerr.TopicAlreadyExists.Code {
				code = 0
			}
			if err := kerr.ErrorForCode(code); kerr.IsRetriable(err) {
				return err
			}
			if code == 0 && resp.Topics[0].ReplicationFactor != rf && rf > 0 {
				return fmt.Errorf("created with factor %d", resp.Topics[0].ReplicationFactor)
			}
			return nil
		})
		return code
	}
	for _, bad := range []int16{2, 5} {
		if code := create(fmt.Sprintf("bad-%d", bad), bad); code != kerr.InvalidReplicationFactor.Code {
			t.Fatalf("replication factor %d: code %d, want INVALID_REPLICATION_FACTOR", bad, code)
		}
	}
	for name, rf := range map[string]int16{"rf1": 1, "rf3": 3, "rfdefault": -1} {
		if code := create(name, rf); code != 0 {
			t.Fatalf("%s: code %d", name, code)
		}
	}

	// Metadata: replicas and ISR as the replication factors say.
	waitFor(t, 30*time.Second, "metadata of the replicated topics", func() error {
		md, err := adm.Metadata(ctx, "rf1", "rf3", "rfdefault")
		if err != nil {
			return err
		}
		firsts := map[int32]bool{}
		for name, want := range map[string]int{"rf1": 1, "rf3": 3, "rfdefault": 3} {
			for p, pd := range md.Topics[name].Partitions {
				if pd.Err != nil || pd.Leader <= 0 {
					return fmt.Errorf("%s/%d: leader %d, %v", name, p, pd.Leader, pd.Err)
				}
				if len(pd.Replicas) != want || !slices.Contains(pd.Replicas, pd.Leader) || len(pd.ISR) != want || len(pd.OfflineReplicas) != 0 {
					return fmt.Errorf("%s/%d: leader %d, replicas %v, isr %v, offline %v", name, p, pd.Leader, pd.Replicas, pd.ISR, pd.OfflineReplicas)
				}
				if name == "rf1" {
					firsts[pd.Replicas[0]] = true
				}
			}
		}
		if len(firsts) != 3 {
			return fmt.Errorf("the factor-1 topic's partitions are on nodes %v, want one on each", firsts)
		}
		return nil
	})

	// DescribeConfigs: min.insync.replicas is a majority of the factor.
	rcs, err := adm.DescribeTopicConfigs(ctx, "rf1", "rf3")
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		want := map[string]string{"rf1": "1", "rf3": "2"}[rc.Name]
		for _, cfg := range rc.Configs {
			if cfg.Key == "min.insync.replicas" && (cfg.Value == nil || *cfg.Value != want) {
				t.Fatalf("%s: min.insync.replicas %v, want %s", rc.Name, cfg.Value, want)
			}
		}
	}

	// A factor-1 partition: produced through its one replica, read from
	// every node's copy (the native API reads the local copy).
	res := cl.ProduceSync(ctx, &kgo.Record{Topic: "rf1", Partition: 0, Value: []byte("only-once")})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	md, err := adm.Metadata(ctx, "rf1")
	if err != nil {
		t.Fatal(err)
	}
	replica := md.Topics["rf1"].Partitions[0].Replicas[0]

	// A stopped replica of rf3 shows as offline and out of the ISR.
	victim := 1
	if int(replica) == victim {
		victim = 2
	}
	c.stop(victim)
	waitFor(t, 30*time.Second, "the stopped node offline", func() error {
		md, err := adm.Metadata(ctx, "rf3")
		if err != nil {
			return err
		}
		for p, pd := range md.Topics["rf3"].Partitions {
			if pd.Leader == int32(victim) || pd.Leader <= 0 {
				return fmt.Errorf("rf3/%d led by %d", p, pd.Leader)
			}
			if !slices.Contains(pd.OfflineReplicas, int32(victim)) || slices.Contains(pd.ISR, int32(victim)) || len(pd.ISR) != 2 {
				return fmt.Errorf("rf3/%d: replicas %v, isr %v, offline %v", p, pd.Replicas, pd.ISR, pd.OfflineReplicas)
			}
		}
		return nil
	})
	// acks=all goes on with two of three replicas.
	res = cl.ProduceSync(ctx, &kgo.Record{Topic: "rf3", Partition: 1, Value: []byte("two-of-three")})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	waitFor(t, 30*time.Second, "the restarted node back in the ISR", func() error {
		md, err := adm.Metadata(ctx, "rf3")
		if err != nil {
			return err
		}
		for p, pd := range md.Topics["rf3"].Partitions {
			if len(pd.ISR) != 3 || len(pd.OfflineReplicas) != 0 {
				return fmt.Errorf("rf3/%d: isr %v, offline %v", p, pd.ISR, pd.OfflineReplicas)
			}
		}
		return nil
	})
	// AlterPartitionReassignments moves rf1's partition 1 to another
	// node; ListPartitionReassignments lists it until it has moved.
	md, err = adm.Metadata(ctx, "rf1")
	if err != nil {
		t.Fatal(err)
	}
	from := md.Topics["rf1"].Partitions[1].Replicas[0]
	to := from%3 + 1
	alter := func(replicas []int32) int16 {
		req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		rt.Topic = "rf1"
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = 1, replicas
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	for _, bad := range [][]int32{{1, 2}, {9}, {to, to}} {
		if code := alter(bad); code != kerr.InvalidReplicaAssignment.Code {
			t.Fatalf("reassign to %v: code %d", bad, code)
		}
	}
	if code := alter(nil); code != kerr.NoReassignmentInProgress.Code {
		t.Fatalf("cancel without a reassignment: code %d", code)
	}
	if code := alter([]int32{to}); code != 0 {
		t.Fatalf("reassign to %d: code %d", to, code)
	}
	waitFor(t, 30*time.Second, "rf1/1 moved", func() error {
		md, err := adm.Metadata(ctx, "rf1")
		if err != nil {
			return err
		}
		if pd := md.Topics["rf1"].Partitions[1]; !slices.Equal(pd.Replicas, []int32{to}) || pd.Leader != to {
			return fmt.Errorf("rf1/1: leader %d, replicas %v", pd.Leader, pd.Replicas)
		}
		lreq := kmsg.NewPtrListPartitionReassignmentsRequest()
		lresp, err := lreq.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		if len(lresp.Topics) != 0 {
			return fmt.Errorf("reassignments in progress: %+v", lresp.Topics)
		}
		return nil
	})

	for _, nd := range c.nodes {
		waitFor(t, 30*time.Second, "the factor-1 record on every node", func() error {
			out, err := readTopicNative(nd.http, "rf1", 0)
			if err != nil {
				return err
			}
			if !slices.Equal(out, []string{"only-once"}) {
				return fmt.Errorf("node %d reads %v", nd.id, out)
			}
			return nil
		})
	}
}

// readTopicNative reads partition p of a topic through a node's native
// ReadTopic (its own copy): every value, in order.
func readTopicNative(addr, topic string, p int32) ([]string, error) {
	tc := spoolv1connect.NewTopicServiceClient(http.DefaultClient, "http://"+addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := tc.ReadTopic(ctx, connect.NewRequest(&spoolv1.ReadTopicRequest{Topic: topic, Partition: &p}))
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	var out []string
	for stream.Receive() {
		for _, m := range stream.Msg().GetMessages() {
			out = append(out, string(m.GetValue()))
		}
	}
	return out, stream.Err()
}

package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/kafka"
	"github.com/spoolmq/spool/internal/kafka/kwire"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/server"
)

// fakeCluster is what two Kafka front ends over one broker tell of a
// cluster of two: node 1 leads the metadata (coordinates groups), node 2
// leads every partition, as a partition leader that is not the metadata
// leader does on a real cluster, once leaderless (unix ns) has passed.
type fakeCluster struct {
	brokers    []kafka.Broker
	leaderless *atomic.Int64
}

func (f fakeCluster) Brokers() []kafka.Broker { return f.brokers }
func (f fakeCluster) PartitionLeader(string, int32) (int32, int32, []int32) {
	if time.Now().UnixNano() < f.leaderless.Load() {
		return 0, 0, []int32{1, 2}
	}
	return 2, 0, []int32{1, 2}
}
func (f fakeCluster) PartitionISR(string, int32) ([]int32, []int32) { return []int32{1, 2}, nil }
func (f fakeCluster) Nodes() int                                    { return 2 }
func (f fakeCluster) Controller() int32                             { return 1 }
func (f fakeCluster) ReplicationFactor() int32                      { return 2 }

// startFakeCluster serves nodes 1 and 2 of a fakeCluster over srv's
// broker and returns their Kafka addresses by node id.
func startFakeCluster(t *testing.T, srv *server.Server) func(node int) string {
	addr, _ := startFakeClusterView(t, srv)
	return addr
}

func startFakeClusterView(t *testing.T, srv *server.Server) (func(node int) string, fakeCluster) {
	t.Helper()
	var lns [2]net.Listener
	view := fakeCluster{leaderless: new(atomic.Int64)}
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		a := ln.Addr().(*net.TCPAddr)
		view.brokers = append(view.brokers, kafka.Broker{NodeID: int32(i + 1), Host: a.IP.String(), Port: int32(a.Port)})
	}
	for i, ln := range lns {
		k := kafka.New(serverhook.Broker(srv), kafka.Config{NodeID: int32(i + 1), Cluster: view, Logger: slog.New(slog.DiscardHandler)})
		go k.Serve(ln)
		t.Cleanup(func() { k.Close() })
	}
	return func(node int) string {
		br := view.brokers[node-1]
		return net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))
	}, view
}

// On a cluster CreateTopics takes -1 (the default: the cluster's size for
// this cluster of two) and refuses factors other than 1, 3 and 5 and
// factors above the number of nodes, and reports the factor it created.
func TestClusterCreateTopicsReplicationFactor(t *testing.T) {
	srv := startShareServer(t)
	addr := startFakeCluster(t, srv)
	createTopics(t, addr(1), "", 60_000)
}

// createTopics creates four topics on a fakeCluster, two of them with
// replication factors the cluster does not have, and checks the answers.
func createTopics(t *testing.T, addr, prefix string, timeoutMillis int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		topic string
		rf    int16
		code  int16
	}{{"rf-default", -1, 0}, {"rf-two", 2, kerr.InvalidReplicationFactor.Code}, {"rf-three", 3, kerr.InvalidReplicationFactor.Code},
		{"rf-seven", 7, kerr.InvalidReplicationFactor.Code}} {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = prefix+c.topic, 1, c.rf
		req.Topics = []kmsg.CreateTopicsRequestTopic{rt}
		req.TimeoutMillis = timeoutMillis
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Topics) != 1 {
			t.Fatalf("%s: %+v %v", c.topic, resp, err)
		}
		got := resp.Topics[0]
		if got.ErrorCode != c.code || (c.code == 0 && got.ReplicationFactor != 2) {
			t.Fatalf("%s with replication factor %d: code %d, factor %d, %v", c.topic, c.rf, got.ErrorCode, got.ReplicationFactor, got.ErrorMessage)
		}
	}
}

// On a cluster, CreateTopics and CreatePartitions answer once this node
// knows a leader of every new partition (up to the request's timeout), so
// that a client producing at once finds them in Metadata.
func TestClusterCreateWaitsForLeaders(t *testing.T) {
	srv := startShareServer(t)
	addr, view := startFakeClusterView(t, srv)
	const wait = 500 * time.Millisecond
	view.leaderless.Store(time.Now().Add(wait).UnixNano())
	t0 := time.Now()
	createTopics(t, addr(1), "", 60_000)
	if d := time.Since(t0); d < wait {
		t.Fatalf("CreateTopics answered after %v, before the partitions had leaders", d)
	}

	// A timeout of 0 does not wait; CreatePartitions waits like CreateTopics.
	view.leaderless.Store(time.Now().Add(time.Hour).UnixNano())
	t0 = time.Now()
	createTopics(t, addr(2), "no-wait-", 0)
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("CreateTopics with a timeout of 0 answered after %v", d)
	}
	view.leaderless.Store(time.Now().Add(wait).UnixNano())
	t0 = time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr(1)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "rf-default", 3
	req.Topics, req.TimeoutMillis = []kmsg.CreatePartitionsRequestTopic{rt}, 60_000
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions: %+v %v", resp, err)
	}
	if d := time.Since(t0); d < wait {
		t.Fatalf("CreatePartitions answered after %v, before the partitions had leaders", d)
	}
}

// On a cluster DescribeConfigs reports the cluster's replication facts
// (every node holds every partition; a majority acknowledges a write), and
// Metadata names the group coordinator as the leader of __consumer_offsets
// on every node.
func TestClusterConfigsAndOffsetsTopic(t *testing.T) {
	srv := startShareServer(t)
	addr := startFakeCluster(t, srv)
	shareCreateTopic(t, srv, "facts", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for node := 1; node <= 2; node++ {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr(node)))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		req := kmsg.NewPtrDescribeConfigsRequest()
		for _, r := range []struct {
			typ  kmsg.ConfigResourceType
			name string
		}{{kmsg.ConfigResourceTypeTopic, "facts"}, {kmsg.ConfigResourceTypeBroker, ""}} {
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = r.typ, r.name
			req.Resources = append(req.Resources, rr)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || len(resp.Resources) != 2 {
			t.Fatalf("node %d: describe configs: %+v %v", node, resp, err)
		}
		got := map[string]string{}
		for _, r := range resp.Resources {
			for _, c := range r.Configs {
				if c.Value != nil {
					got[fmt.Sprint(r.ResourceType, "/", c.Name)] = *c.Value
				}
			}
		}
		for k, want := range map[string]string{"TOPIC/min.insync.replicas": "2", "BROKER/min.insync.replicas": "2", "BROKER/default.replication.factor": "2"} {
			if got[k] != want {
				t.Fatalf("node %d: %s = %q, want %q", node, k, got[k], want)
			}
		}
		md := kmsg.NewPtrMetadataRequest()
		mresp, err := md.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range mresp.Topics {
			if rt.Topic != nil && *rt.Topic == "__consumer_offsets" {
				if p := rt.Partitions[0]; p.Leader != 1 || len(p.Replicas) != 2 {
					t.Fatalf("node %d: __consumer_offsets: %+v", node, p)
				}
			}
		}
	}
}

// On a cluster, Fetch, ListOffsets and OffsetForLeaderEpoch sent to a node
// that does not lead the partition are NOT_LEADER_OR_FOLLOWER, the fetch naming the leader
// and its address; a consumer seeded with that node reads from the leader.
func TestClusterFetchFromLeaderOnly(t *testing.T) {
	srv := startShareServer(t)
	addr := startFakeCluster(t, srv)
	shareCreateTopic(t, srv, "led", 1)
	shareProduce(t, srv, "led", "r", 10)
	meta, _ := serverhook.Broker(srv).Topic("led")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr(1), addr(2)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for node := 1; node <= 2; node++ {
		want := int16(0)
		if node == 1 {
			want = kerr.NotLeaderForPartition.Code
		}
		fetch := kmsg.NewPtrFetchRequest()
		fetch.MaxWaitMillis, fetch.MaxBytes = 100, 1<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic, ft.TopicID = "led", kwire.UUIDBytes(meta.ID)
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = []kmsg.FetchRequestTopicPartition{fp}
		fetch.Topics = []kmsg.FetchRequestTopic{ft}
		resp, err := cl.Broker(node).Request(ctx, fetch)
		if err != nil {
			t.Fatal(err)
		}
		fr := resp.(*kmsg.FetchResponse)
		p := fr.Topics[0].Partitions[0]
		if p.ErrorCode != want {
			t.Fatalf("fetch from node %d: code %d, want %d", node, p.ErrorCode, want)
		}
		if node == 1 && (p.CurrentLeader.LeaderID != 2 || len(fr.Brokers) != 1 || fr.Brokers[0].NodeID != 2) {
			t.Fatalf("fetch from node 1 names leader %+v, endpoints %+v", p.CurrentLeader, fr.Brokers)
		}
		list := kmsg.NewPtrListOffsetsRequest()
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = "led"
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Timestamp = -1
		lt.Partitions = []kmsg.ListOffsetsRequestTopicPartition{lp}
		list.Topics = []kmsg.ListOffsetsRequestTopic{lt}
		lresp, err := cl.Broker(node).Request(ctx, list)
		if err != nil {
			t.Fatal(err)
		}
		if lp := lresp.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; lp.ErrorCode != want || (want == 0 && lp.Offset != 10) {
			t.Fatalf("list offsets on node %d: %+v, want code %d", node, lp, want)
		}
		epochs := kmsg.NewPtrOffsetForLeaderEpochRequest()
		et := kmsg.NewOffsetForLeaderEpochRequestTopic()
		et.Topic = "led"
		ep := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		ep.CurrentLeaderEpoch, ep.LeaderEpoch = 0, 0
		et.Partitions = []kmsg.OffsetForLeaderEpochRequestTopicPartition{ep}
		epochs.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{et}
		eresp, err := cl.Broker(node).Request(ctx, epochs)
		if err != nil {
			t.Fatal(err)
		}
		if ep := eresp.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]; ep.ErrorCode != want || (want == 0 && ep.EndOffset != 10) {
			t.Fatalf("offset for leader epoch on node %d: %+v, want code %d", node, ep, want)
		}
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(addr(1)), kgo.ConsumeTopics("led"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := 0
	for got < 10 && ctx.Err() == nil {
		fs := consumer.PollFetches(ctx)
		got += fs.NumRecords()
	}
	if got != 10 {
		t.Fatalf("a consumer seeded with node 1 read %d of 10 records", got)
	}
}

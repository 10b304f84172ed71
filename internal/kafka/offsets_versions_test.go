package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
)

// ApiVersions v5 (KIP-1242): a client naming the wrong cluster or node is
// told to rebootstrap.
func TestApiVersionsV5ClusterCheck(t *testing.T) {
	srv := startServer(t)
	w := dialGroupWire(t, srv.KafkaAddr())
	md := w.do(kmsg.NewPtrMetadataRequest(), 12).(*kmsg.MetadataResponse)
	if md.ClusterID == nil || len(md.Brokers) != 1 {
		t.Fatalf("metadata: %+v", md)
	}
	cluster, node := *md.ClusterID, md.Brokers[0].NodeID
	other := "another-cluster"
	for _, c := range []struct {
		name    string
		cluster *string
		node    int32
		code    int16
	}{
		{"bootstrapping", nil, -1, 0},
		{"right cluster and node", &cluster, node, 0},
		{"wrong cluster", &other, node, kerr.RebootstrapRequired.Code},
		{"wrong node", &cluster, node + 1, kerr.RebootstrapRequired.Code},
		{"cluster without node", &cluster, -1, kerr.InvalidRequest.Code},
		{"node without cluster", nil, node, kerr.InvalidRequest.Code},
	} {
		req := kmsg.NewPtrApiVersionsRequest()
		req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
		req.ClusterID, req.NodeID = c.cluster, c.node
		resp := w.do(req, 5).(*kmsg.ApiVersionsResponse)
		if resp.ErrorCode != c.code || len(resp.ApiKeys) == 0 {
			t.Errorf("%s: error %d, want %d (%d keys)", c.name, resp.ErrorCode, c.code, len(resp.ApiKeys))
		}
	}
}

// ListOffsets: v0's old-style answer, the max-timestamp lookup (−3) with
// timestamps out of order, and −4 (earliest local).
func TestListOffsetsVersionsAndMaxTimestamp(t *testing.T) {
	srv := startServer(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DefaultProduceTopic("ts"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	// Offsets 0–4 with timestamps +0, +50, +30 (the max: +50 at offset 1,
	// then again at 3), +50, +10 minutes; one record per batch.
	for i, m := range []int{0, 50, 30, 50, 10} {
		r := &kgo.Record{Partition: 0, Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(m) * time.Minute)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	w := dialGroupWire(t, srv.KafkaAddr())
	ask := func(v int16, ts int64) kmsg.ListOffsetsResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "ts"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.MaxNumOffsets = 0, ts, 1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := w.do(req, v).(*kmsg.ListOffsetsResponse)
		return resp.Topics[0].Partitions[0]
	}
	maxTS := base.Add(50 * time.Minute).UnixMilli()
	for v := int16(1); v <= 10; v++ {
		if p := ask(v, -1); p.ErrorCode != 0 || p.Offset != 5 {
			t.Errorf("v%d latest: %+v", v, p)
		}
		if p := ask(v, -2); p.ErrorCode != 0 || p.Offset != 0 {
			t.Errorf("v%d earliest: %+v", v, p)
		}
	}
	if p := ask(10, -3); p.ErrorCode != 0 || p.Offset != 1 || p.Timestamp != maxTS {
		t.Errorf("max timestamp: offset %d, timestamp %d (want 1, %d)", p.Offset, p.Timestamp, maxTS)
	}
	if p := ask(10, -4); p.ErrorCode != 0 || p.Offset != 0 {
		t.Errorf("earliest local: %+v", p)
	}
	if p := ask(10, base.Add(20*time.Minute).UnixMilli()); p.Offset != 1 {
		t.Errorf("by time: %+v", p)
	}
	for ts, want := range map[int64]int64{-1: 5, -2: 0} {
		if p := ask(0, ts); p.ErrorCode != 0 || len(p.OldStyleOffsets) != 1 || p.OldStyleOffsets[0] != want {
			t.Errorf("v0 %d: %+v", ts, p)
		}
	}
	// An empty partition has no max timestamp.
	if _, err := serverhook.Broker(srv).CreateTopic("empty", catalog.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "empty"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -3
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	if p := w.do(req, 10).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
		t.Errorf("empty max timestamp: %+v", p)
	}
}

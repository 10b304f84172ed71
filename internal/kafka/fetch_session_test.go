package kafka_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/server"
)

// fsClient returns a client whose hand-made requests go out at the
// versions of Kafka v (nil: the newest both sides speak).
func fsClient(t *testing.T, srv *server.Server, v *kversion.Versions) *kgo.Client {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(srv.KafkaAddr())}
	if v != nil {
		opts = append(opts, kgo.MaxVersions(v))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func fsFetch(t *testing.T, cl *kgo.Client, req *kmsg.FetchRequest) *kmsg.FetchResponse {
	t.Helper()
	resp, err := cl.Broker(0).Request(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.FetchResponse)
}

// fsReq builds a fetch of partitions of topic (by name and id) at offsets.
func fsReq(sessionID, epoch int32, topic string, id [16]byte, offsets map[int32]int64) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SessionID, req.SessionEpoch = sessionID, epoch
	req.MaxWaitMillis = 10
	req.MinBytes = 1
	if len(offsets) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, id
		var ps []int32
		for p := range offsets {
			ps = append(ps, p)
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		for _, p := range ps {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, offsets[p], 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// fsParts summarizes a response: partition -> records bytes (or -code for
// an error).
func fsParts(resp *kmsg.FetchResponse) map[int32]int {
	out := map[int32]int{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				out[rp.Partition] = -int(rp.ErrorCode)
			} else {
				out[rp.Partition] = len(rp.RecordBatches)
			}
		}
	}
	return out
}

func fsProduce(t *testing.T, cl *kgo.Client, topic string, p int32, n int) {
	t.Helper()
	for i := range n {
		r := &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "v%d", i)}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFetchSessions(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    *kversion.Versions
	}{
		{"names v12", kversion.V3_0_0()},
		{"topic ids v18", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t)
			meta, err := serverhook.Broker(srv).CreateTopic("s", catalog.TopicConfig{Partitions: 3})
			if err != nil {
				t.Fatal(err)
			}
			id := topicIDOf(t, meta.ID)
			prod, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite())
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			cl := fsClient(t, srv, tc.v)
			fsProduce(t, prod, "s", 1, 2)

			// A full fetch with epoch 0 creates a session and lists every partition.
			resp := fsFetch(t, cl, fsReq(0, 0, "s", id, map[int32]int64{0: 0, 1: 0, 2: 0}))
			if resp.ErrorCode != 0 || resp.SessionID == 0 {
				t.Fatalf("full fetch: error %v session %d", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
			}
			sid := resp.SessionID
			if got := fsParts(resp); len(got) != 3 || got[1] == 0 || got[0] != 0 {
				t.Fatalf("full fetch parts %v", got)
			}
			// Incremental, partition 1 moved past its records: nothing new.
			resp = fsFetch(t, cl, fsReq(sid, 1, "s", id, map[int32]int64{1: 2}))
			if resp.ErrorCode != 0 || resp.SessionID != sid || len(fsParts(resp)) != 0 {
				t.Fatalf("idle incremental fetch: %v %d %v", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID, fsParts(resp))
			}
			// New data in partition 2 (whose offset the session holds): only it comes back.
			fsProduce(t, prod, "s", 2, 1)
			resp = fsFetch(t, cl, fsReq(sid, 2, "s", id, nil))
			if got := fsParts(resp); len(got) != 1 || got[2] == 0 {
				t.Fatalf("incremental fetch after a produce: %v", got)
			}
			// Long poll on the session's partitions: a produce wakes it.
			go func() {
				time.Sleep(100 * time.Millisecond)
				fsProduce(t, prod, "s", 0, 1)
			}()
			req := fsReq(sid, 3, "s", id, map[int32]int64{2: 1})
			req.MaxWaitMillis = 5000
			t0 := time.Now()
			resp = fsFetch(t, cl, req)
			if got := fsParts(resp); got[0] == 0 || time.Since(t0) > 4*time.Second {
				t.Fatalf("long poll: %v after %s", got, time.Since(t0))
			}
			// Wrong epoch, unknown session.
			if resp = fsFetch(t, cl, fsReq(sid, 9, "s", id, nil)); resp.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
				t.Fatalf("wrong epoch: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			if resp = fsFetch(t, cl, fsReq(sid+1, 1, "s", id, nil)); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
				t.Fatalf("unknown session: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			// Forgotten partitions are no longer fetched.
			req = fsReq(sid, 4, "s", id, map[int32]int64{0: 1})
			ft := kmsg.NewFetchRequestForgottenTopic()
			ft.Topic, ft.TopicID, ft.Partitions = "s", id, []int32{1, 2}
			req.ForgottenTopics = append(req.ForgottenTopics, ft)
			resp = fsFetch(t, cl, req)
			if resp.ErrorCode != 0 {
				t.Fatal(kerr.ErrorForCode(resp.ErrorCode))
			}
			fsProduce(t, prod, "s", 2, 1)
			if got := fsParts(fsFetch(t, cl, fsReq(sid, 5, "s", id, nil))); len(got) != 0 {
				t.Fatalf("forgotten partition fetched: %v", got)
			}
			fsProduce(t, prod, "s", 0, 1)
			if got := fsParts(fsFetch(t, cl, fsReq(sid, 6, "s", id, nil))); len(got) != 1 || got[0] == 0 {
				t.Fatalf("kept partition: %v", got)
			}
			// Epoch -1 closes the session; the fetch itself is sessionless and full.
			resp = fsFetch(t, cl, fsReq(sid, -1, "s", id, map[int32]int64{0: 0, 1: 0}))
			if resp.ErrorCode != 0 || resp.SessionID != 0 || len(fsParts(resp)) != 2 {
				t.Fatalf("closing fetch: %v %d %v", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID, fsParts(resp))
			}
			if resp = fsFetch(t, cl, fsReq(sid, 7, "s", id, nil)); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
				t.Fatalf("closed session: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			// A sessionless fetch (epoch -1, id 0) gets session id 0.
			if resp = fsFetch(t, cl, fsReq(0, -1, "s", id, map[int32]int64{0: 0})); resp.SessionID != 0 || len(fsParts(resp)) != 1 {
				t.Fatalf("sessionless: %d %v", resp.SessionID, fsParts(resp))
			}
			// Out of range and unknown topics end a long poll at once.
			req = fsReq(0, -1, "s", id, map[int32]int64{0: 1000})
			req.MaxWaitMillis = 5000
			t0 = time.Now()
			if got := fsParts(fsFetch(t, cl, req)); got[0] != -int(kerr.OffsetOutOfRange.Code) || time.Since(t0) > 2*time.Second {
				t.Fatalf("out of range: %v after %s", got, time.Since(t0))
			}
			if tc.v == nil {
				req = fsReq(0, -1, "", [16]byte{1, 2, 3}, map[int32]int64{0: 0})
				if got := fsParts(fsFetch(t, cl, req)); got[0] != -int(kerr.UnknownTopicID.Code) {
					t.Fatalf("unknown topic id: %v", got)
				}
			} else {
				req = fsReq(0, -1, "nope", id, map[int32]int64{0: 0})
				if got := fsParts(fsFetch(t, cl, req)); got[0] != -int(kerr.UnknownTopicOrPartition.Code) {
					t.Fatalf("unknown topic: %v", got)
				}
			}
		})
	}
}

// topicIDOf parses a Spool topic id into Kafka's 16 bytes.
func topicIDOf(t *testing.T, id string) [16]byte {
	t.Helper()
	var out [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
	if err != nil || len(b) != 16 {
		t.Fatalf("topic id %q: %v", id, err)
	}
	copy(out[:], b)
	return out
}

// kgo consumes through incremental fetch sessions (Fetch v18, topic ids)
// while records keep arriving in several partitions.
func TestKgoConsumesWithSessions(t *testing.T) {
	srv := startServer(t)
	if _, err := serverhook.Broker(srv).CreateTopic("flow", catalog.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DefaultProduceTopic("flow"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ConsumeTopics("flow"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	const rounds, per = 20, 25
	got := map[string]bool{}
	for r := range rounds {
		for i := range per {
			if err := prod.ProduceSync(ctx, &kgo.Record{Key: fmt.Appendf(nil, "%d", i), Value: fmt.Appendf(nil, "%d-%d", r, i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		for len(got) < (r+1)*per {
			fs := cons.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatalf("round %d: %v", r, err)
			}
			fs.EachRecord(func(rec *kgo.Record) {
				if got[string(rec.Value)] {
					t.Fatalf("record %s delivered twice", rec.Value)
				}
				got[string(rec.Value)] = true
			})
		}
	}
	// The client holds a session: a raw incremental-capable fetch gets one too.
	meta, _ := serverhook.Broker(srv).Topic("flow")
	resp := fsFetch(t, fsClient(t, srv, nil), fsReq(0, 0, "flow", topicIDOf(t, meta.ID), map[int32]int64{0: 0}))
	if resp.SessionID == 0 {
		t.Fatal("no session created")
	}
}

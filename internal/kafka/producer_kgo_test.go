package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/server"
)

// pfServer starts a server on dir (a restart when dir holds data).
func pfServer(t *testing.T, dir string) *server.Server {
	t.Helper()
	return spooltest.StartServer(t, spooltest.Dir(dir)).Server()
}

// pfRawClient is a client for hand-made requests; capped at Kafka 3.9 so
// that Produce and Fetch name topics (v12 and below).
func pfRawClient(t *testing.T, srv *server.Server) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.MaxVersions(kversion.V3_9_0()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func pfInitProducer(t *testing.T, cl *kgo.Client) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	return resp.ProducerID, resp.ProducerEpoch
}

// pfBatch encodes an idempotent batch of n records with sequences from seq.
func pfBatch(t *testing.T, pid int64, epoch int16, seq int32, n int, tag string) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{OffsetDelta: int32(i), Value: fmt.Appendf(nil, "%s-%d", tag, i)}
	}
	b, err := batch.Encode(nil, batch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, BaseTimestamp: time.Now().UnixMilli()}, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pfProduce sends one batch to topic/p and returns the error code and
// base offset.
func pfProduce(t *testing.T, cl *kgo.Client, topic string, p int32, records []byte) (int16, int64) {
	t.Helper()
	resp, err := produceReq(topic, -1, p, records).RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	sp := resp.Topics[0].Partitions[0]
	return sp.ErrorCode, sp.BaseOffset
}

func pfExpect(t *testing.T, what string, code int16, off int64, wantCode int16, wantOff int64) {
	t.Helper()
	if code != wantCode || (wantCode == 0 && off != wantOff) {
		t.Fatalf("%s: code %v offset %d, want %v offset %d", what, kerr.ErrorForCode(code), off, kerr.ErrorForCode(wantCode), wantOff)
	}
}

// The default kgo producer is idempotent: 10,000 records over several
// partitions arrive once each and in order per partition.
func TestIdempotentKgoProduce(t *testing.T) {
	srv := pfServer(t, t.TempDir())
	if _, err := serverhook.Broker(srv).CreateTopic("idem", catalog.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DefaultProduceTopic("idem"),
		kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(2000))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 10_000
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%97), Value: fmt.Appendf(nil, "%d", i)}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("produce: %v", firstErr)
	}
	// Every record stored once.
	cons, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.ConsumeTopics("idem"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	last := map[int32]int64{}
	for len(seen) < n {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch after %d records: %v", len(seen), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if seen[string(r.Value)] {
				t.Fatalf("record %s stored twice", r.Value)
			}
			seen[string(r.Value)] = true
			if prev, ok := last[r.Partition]; ok && r.Offset != prev+1 {
				t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
			}
			last[r.Partition] = r.Offset
		})
	}
	var total int64
	info, err := serverhook.Broker(srv).DescribeTopic("idem")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.Partitions {
		total += p.EndOffset
	}
	if total != n {
		t.Fatalf("%d records stored, want %d", total, n)
	}
	raw, err := serverhook.Broker(srv).ReadRaw("idem", 0, 0, 1024)
	if err != nil || len(raw.Data) == 0 {
		t.Fatalf("read back: %v", err)
	}
	if h, _ := batch.ParseHeader(raw.Data); h.ProducerID < 0 || h.BaseSequence != 0 {
		t.Fatalf("stored batch is not idempotent: producer %d sequence %d", h.ProducerID, h.BaseSequence)
	}
}

// The sequence rules over the wire, and across restarts: a duplicate sent
// after a restart (with the producer-state snapshot, and with it lost as in
// a crash) still gets the original offset.
func TestIdempotentRawRules(t *testing.T) {
	dir := t.TempDir()
	srv := pfServer(t, dir)
	if _, err := serverhook.Broker(srv).CreateTopic("seq", catalog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	cl := pfRawClient(t, srv)
	pid, epoch := pfInitProducer(t, cl)
	pid2, _ := pfInitProducer(t, cl)
	if pid2 == pid {
		t.Fatal("two InitProducerId calls returned the same id")
	}

	// A never-written partition needs sequence 0 from an unknown producer.
	code, off := pfProduce(t, cl, "seq", 0, pfBatch(t, pid, epoch, 3, 2, "a"))
	pfExpect(t, "first batch at sequence 3", code, off, kerr.OutOfOrderSequenceNumber.Code, 0)
	b0 := pfBatch(t, pid, epoch, 0, 3, "a")
	code, off = pfProduce(t, cl, "seq", 0, b0)
	pfExpect(t, "batch 0–2", code, off, 0, 0)
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid2, 0, 0, 2, "other"))
	pfExpect(t, "another producer", code, off, 0, 3)
	b1 := pfBatch(t, pid, epoch, 3, 4, "b")
	code, off = pfProduce(t, cl, "seq", 0, b1)
	pfExpect(t, "batch 3–6", code, off, 0, 5)
	// Duplicates answer with the original offsets and store nothing.
	code, off = pfProduce(t, cl, "seq", 0, b0)
	pfExpect(t, "duplicate of batch 0–2", code, off, 0, 0)
	code, off = pfProduce(t, cl, "seq", 0, b1)
	pfExpect(t, "duplicate of batch 3–6", code, off, 0, 5)
	// Gaps and overlaps are out of order.
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid, epoch, 8, 1, "gap"))
	pfExpect(t, "gap", code, off, kerr.OutOfOrderSequenceNumber.Code, 0)
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid, epoch, 5, 2, "overlap"))
	pfExpect(t, "overlap", code, off, kerr.OutOfOrderSequenceNumber.Code, 0)
	// A written partition accepts any first sequence from an unknown producer (KIP-360).
	pid3, _ := pfInitProducer(t, cl)
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid3, 0, 40, 1, "late"))
	pfExpect(t, "unknown producer mid-sequence", code, off, 0, 9)
	// Several batches in one idempotent partition request are refused.
	two := append(pfBatch(t, pid, epoch, 7, 1, "x"), pfBatch(t, pid, epoch, 8, 1, "y")...)
	code, _ = pfProduce(t, cl, "seq", 0, two)
	pfExpect(t, "two batches", code, 0, kerr.InvalidRecord.Code, 0)
	if _, end, _ := serverhook.Broker(srv).Offsets("seq", 0); end != 10 {
		t.Fatalf("end offset %d, want 10", end)
	}

	// Epochs: re-init with the current id and epoch bumps the epoch.
	req := kmsg.NewPtrInitProducerIDRequest()
	req.ProducerID, req.ProducerEpoch = pid, epoch
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil || resp.ErrorCode != 0 || resp.ProducerID != pid || resp.ProducerEpoch != epoch+1 {
		t.Fatalf("re-init: %+v %v", resp, err)
	}
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid, epoch+1, 7, 1, "new-epoch"))
	pfExpect(t, "new epoch not at 0", code, off, kerr.OutOfOrderSequenceNumber.Code, 0)
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid, epoch+1, 0, 2, "new-epoch"))
	pfExpect(t, "new epoch at 0", code, off, 0, 10)
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid, epoch, 7, 1, "old-epoch"))
	pfExpect(t, "old epoch", code, off, kerr.InvalidProducerEpoch.Code, 0)
	// Transactional ids are refused (sent to the broker directly: kgo
	// would look for a transaction coordinator first).
	txn := "tx"
	treq := kmsg.NewPtrInitProducerIDRequest()
	treq.TransactionalID = &txn
	if tresp, err := cl.Broker(0).Request(context.Background(), treq); err != nil ||
		tresp.(*kmsg.InitProducerIDResponse).ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("transactional init: %+v %v", tresp, err)
	}

	last := pfBatch(t, pid, epoch+1, 2, 3, "c")
	code, off = pfProduce(t, cl, "seq", 0, last)
	pfExpect(t, "batch before restart", code, off, 0, 12)
	cl.Close()

	// Restart cleanly (snapshot written at shutdown).
	srv.Shutdown(context.Background())
	srv = pfServer(t, dir)
	cl = pfRawClient(t, srv)
	code, off = pfProduce(t, cl, "seq", 0, last)
	pfExpect(t, "duplicate after restart", code, off, 0, 12)
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid, epoch+1, 6, 1, "gap"))
	pfExpect(t, "gap after restart", code, off, kerr.OutOfOrderSequenceNumber.Code, 0)
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid, epoch, 9, 1, "old"))
	pfExpect(t, "old epoch after restart", code, off, kerr.InvalidProducerEpoch.Code, 0)
	next := pfBatch(t, pid, epoch+1, 5, 2, "d")
	code, off = pfProduce(t, cl, "seq", 0, next)
	pfExpect(t, "next batch after restart", code, off, 0, 15)
	// Producer ids stay unique across restarts.
	if pid4, _ := pfInitProducer(t, cl); pid4 <= pid3 {
		t.Fatalf("producer id %d after restart, not above %d", pid4, pid3)
	}
	cl.Close()

	// Restart with every snapshot lost (a crash before any was written):
	// the state comes from the log alone.
	srv.Shutdown(context.Background())
	st, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	wipe := st.NewBatch()
	wipe.DeletePrefix([]byte("kafka-ps/"))
	if err := wipe.Commit(true); err != nil {
		t.Fatal(err)
	}
	st.Close()
	srv = pfServer(t, dir)
	cl = pfRawClient(t, srv)
	code, off = pfProduce(t, cl, "seq", 0, next)
	pfExpect(t, "duplicate after restart without snapshot", code, off, 0, 15)
	code, off = pfProduce(t, cl, "seq", 0, last)
	pfExpect(t, "older duplicate after restart without snapshot", code, off, 0, 12)
	code, off = pfProduce(t, cl, "seq", 0, b0)
	pfExpect(t, "first-epoch batch after restart without snapshot", code, off, kerr.InvalidProducerEpoch.Code, 0)
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid2, 0, 0, 2, "other"))
	pfExpect(t, "other producer's duplicate", code, off, 0, 3)
	code, off = pfProduce(t, cl, "seq", 0, pfBatch(t, pid, epoch+1, 7, 1, "e"))
	pfExpect(t, "continuing after restart without snapshot", code, off, 0, 17)
	if _, end, _ := serverhook.Broker(srv).Offsets("seq", 0); end != 18 {
		t.Fatalf("end offset %d, want 18", end)
	}
}

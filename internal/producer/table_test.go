package producer

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/internal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// ptEnv is a broker on an error-injecting file system and a producer table
// over it, driven directly (nothing sweeps but the test).
type ptEnv struct {
	t    *testing.T
	efs  *vfs.ErrorFS
	clk  *clock.Fake
	b    *broker.Broker
	pt   *Table
	fail atomic.Bool // fail writes to partition logs
}

func newPTEnv(t *testing.T) *ptEnv {
	t.Helper()
	e := &ptEnv{t: t, clk: clock.NewFake(time.Unix(1_700_000_000, 0))}
	dir := t.TempDir()
	e.efs = vfs.NewErrorFS(vfs.Default, vfs.InjectorFunc(func(op vfs.Op) error {
		if e.fail.Load() && op.Kind == vfs.OpFileWrite && strings.HasSuffix(op.Path, ".log") {
			return &vfs.InjectedError{Op: op}
		}
		return nil
	}))
	st, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: dir, FS: e.efs, State: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	e.pt = e.newTable()
	t.Cleanup(func() {
		b.Close()
		st.Close()
	})
	if _, err := b.CreateTopic("t", catalog.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	return e
}

// newTable is a table with nothing in memory, as after a restart.
func (e *ptEnv) newTable() *Table { return New(e.b, e.b.Space("kafka"), quiet, e.clk) }

// produce appends one idempotent batch and waits; it returns the error code
// ("" for none) and base offset.
func (e *ptEnv) produce(pid int64, epoch int16, seq int32, n int) (errs.Code, int64) {
	e.t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{OffsetDelta: int32(i), Value: []byte("v")}
	}
	b, err := batch.Encode(nil, batch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq}, recs)
	if err != nil {
		e.t.Fatal(err)
	}
	h, _ := batch.ParseHeader(b)
	a, err := e.pt.Append(context.Background(), "t", 0, h, b, e.b.AppendRaw)
	switch {
	case err != nil:
		return errs.CodeOf(err), -1
	case a.Dup:
		return "", a.Base
	}
	base, err := a.PA.Wait()
	if err != nil {
		return errs.CodeOf(err), -1
	}
	return "", base
}

func (e *ptEnv) part() *producerPart {
	meta, _ := e.b.Topic("t")
	return e.pt.part(partKey{meta.ID, 0}, "t")
}

// snapshot reads the partition's stored snapshot.
func (e *ptEnv) snapshot() (producerSnapshot, bool) {
	e.t.Helper()
	meta, _ := e.b.Topic("t")
	snap, ok, err := e.pt.loadSnapshot(partKey{meta.ID, 0})
	if err != nil {
		e.t.Fatal(err)
	}
	return snap, ok
}

// A failed append does not advance the producer's state: it is rebuilt
// from the log, which does not hold the failed batch.
func TestProducerStateAfterFailedAppend(t *testing.T) {
	e := newPTEnv(t)
	if code, off := e.produce(1, 0, 0, 5); code != "" || off != 0 {
		t.Fatalf("first batch: %v %d", code, off)
	}
	e.fail.Store(true)
	if code, _ := e.produce(1, 0, 5, 5); code == "" {
		t.Fatal("append succeeded on a failing disk")
	}
	e.fail.Store(false)
	// The log refuses writes until reopened, but the sequence state must
	// be the log's: next expected 5, the failed batch not remembered.
	pp := e.part()
	pp.mu.Lock()
	err := e.pt.settle(pp)
	st := pp.producers[1]
	pp.mu.Unlock()
	if err != nil || st == nil || st.nextSeq != 5 || st.has(5, 9) || !st.has(0, 4) {
		t.Fatalf("state after a failed append: %+v %v", st, err)
	}
	// The retry of the failed batch is not answered as a duplicate.
	if code, _ := e.produce(1, 0, 5, 5); code == "" {
		t.Fatal("retry of the failed batch answered as stored")
	}
}

// Idle producers expire; beyond the bound the least recently used are
// forgotten first; snapshots are written for changed partitions.
func TestProducerTableBounds(t *testing.T) {
	e := newPTEnv(t)
	pt := e.pt
	pt.max = 10
	for pid := range int64(8) {
		if code, _ := e.produce(pid, 0, 0, 1); code != "" {
			t.Fatal(code)
		}
		e.clk.Advance(time.Second)
	}
	if pt.count.Load() != 8 {
		t.Fatalf("count %d", pt.count.Load())
	}
	// Producers 0–3 go idle past the expiry.
	e.clk.Advance(pt.expiry - 4*time.Second) // expires lastSeen < start+4s
	pt.Sweep()
	if got := pt.count.Load(); got != 4 {
		t.Fatalf("after expiry %d producers, want 4", got)
	}
	// An expired producer is unknown: any sequence is accepted.
	if code, _ := e.produce(0, 0, 7, 1); code != "" {
		t.Fatalf("expired producer mid-sequence: %v", code)
	}
	// Over the bound: the least recently used go first, down to 90 %; the
	// table asks for a sweep.
	for pid := int64(100); pid < 110; pid++ {
		if code, _ := e.produce(pid, 0, 0, 1); code != "" {
			t.Fatal(code)
		}
		e.clk.Advance(time.Millisecond)
	}
	select {
	case <-pt.Kick():
	default:
		t.Fatal("over its bound, the table did not ask for a sweep")
	}
	pt.Sweep()
	if got := pt.count.Load(); got != 9 {
		t.Fatalf("after eviction %d producers, want 9", got)
	}
	pp := e.part()
	pp.mu.Lock()
	_, oldKept := pp.producers[4]
	_, newKept := pp.producers[109]
	pp.mu.Unlock()
	if oldKept || !newKept {
		t.Fatalf("eviction order wrong: old kept %v, newest kept %v", oldKept, newKept)
	}
	// The sweep wrote the partition's snapshot.
	if snap, ok := e.snapshot(); !ok || len(snap.producers) != 9 {
		t.Fatalf("snapshot: %+v %v", snap, ok)
	}
}

// Producer ids are never handed out twice, also across tables over one
// state store (as across restarts).
func TestProducerIDsUnique(t *testing.T) {
	e := newPTEnv(t)
	seen := map[int64]bool{}
	for range 2500 {
		id, err := e.pt.NewProducerID()
		if err != nil || seen[id] {
			t.Fatalf("id %d (seen %v): %v", id, seen[id], err)
		}
		seen[id] = true
	}
	other := e.newTable()
	id, err := other.NewProducerID()
	if err != nil || seen[id] || id < 2500 {
		t.Fatalf("id from a second table: %d %v", id, err)
	}
	if ok, _ := other.Issued(10); !ok {
		t.Fatal("an id handed out earlier is not known as issued")
	}
	if ok, _ := other.Issued(1 << 40); ok {
		t.Fatal("an id never handed out is known as issued")
	}
}

// A cluster node's ids carry its node id: two nodes counting in their own
// state stores never hand out the same id, and each knows only its own
// as issued.
func TestProducerIDsOfClusterNodes(t *testing.T) {
	a, b := newPTEnv(t).pt, newPTEnv(t).pt
	if err := a.SetNode(1); err != nil {
		t.Fatal(err)
	}
	if err := b.SetNode(2); err != nil {
		t.Fatal(err)
	}
	ida, erra := a.NewProducerID()
	idb, errb := b.NewProducerID()
	if erra != nil || errb != nil || ida != 1<<40 || idb != 2<<40 {
		t.Fatalf("ids %d %v, %d %v", ida, erra, idb, errb)
	}
	if ok, _ := a.Issued(ida); !ok {
		t.Error("node 1 does not know its id")
	}
	for _, id := range []int64{idb, 0, ida + 1} {
		if ok, _ := a.Issued(id); ok {
			t.Errorf("node 1 knows %d as issued", id)
		}
	}
	if err := a.SetNode(1 << 22); err == nil {
		t.Error("a node id above the id space was taken")
	}
}

// A crash loses the table's memory: a fresh table (as after a restart)
// rebuilds it from the last snapshot plus the log written after it, so
// duplicates of batches on either side of the snapshot are still found.
func TestProducerStateFromStaleSnapshot(t *testing.T) {
	e := newPTEnv(t)
	for i := range int32(4) {
		if code, off := e.produce(7, 0, 3*i, 3); code != "" || off != int64(3*i) {
			t.Fatalf("batch %d: %v %d", i, code, off)
		}
	}
	e.pt.Sweep() // snapshot at end 12
	if snap, ok := e.snapshot(); !ok || snap.end != 12 {
		t.Fatalf("snapshot %+v", snap)
	}
	for i := int32(4); i < 6; i++ {
		if code, _ := e.produce(7, 0, 3*i, 3); code != "" {
			t.Fatal(code)
		}
	}
	if code, _ := e.produce(8, 2, 0, 1); code != "" { // a producer first seen after the snapshot
		t.Fatal(code)
	}
	e.pt = e.newTable() // "crash": nothing in memory
	for _, c := range []struct {
		pid   int64
		epoch int16
		seq   int32
		n     int
		code  errs.Code
		off   int64
		what  string
	}{
		{7, 0, 15, 3, "", 15, "duplicate written after the snapshot"},
		{7, 0, 9, 3, "", 9, "duplicate from the snapshot"},
		{8, 2, 0, 1, "", 18, "duplicate of a producer unknown to the snapshot"},
		{7, 0, 19, 1, errs.OutOfOrderSequence, 0, "gap"},
		{8, 1, 1, 1, errs.ProducerFenced, 0, "old epoch"},
		{7, 0, 18, 2, "", 19, "next in sequence"},
	} {
		code, off := e.produce(c.pid, c.epoch, c.seq, c.n)
		if code != c.code || (code == "" && off != c.off) {
			t.Fatalf("%s: %v at %d, want %v at %d", c.what, code, off, c.code, c.off)
		}
	}
}

// A snapshot of a version this server does not know is not used: the log
// is scanned, and what it holds is still found. Snapshots of deleted
// topics are pruned.
func TestProducerSnapshotUnknownAndPruned(t *testing.T) {
	e := newPTEnv(t)
	if code, _ := e.produce(3, 0, 0, 2); code != "" {
		t.Fatal(code)
	}
	meta, _ := e.b.Topic("t")
	key := snapshotKey(partKey{meta.ID, 0})
	sp := e.b.Space("kafka")
	// A snapshot of a future version whose bytes, read as version 1, would
	// fence the producer (epoch 5): it must not be used.
	v := producerSnapshot{end: 2, producers: []snapshotProducer{{id: 3, epoch: 5, batches: []snapshotBatch{{0, 1, 0}}}}}.encode()
	v[0] = 9
	if err := sp.Write([]broker.Record{{Key: key, Value: v}}, true); err != nil {
		t.Fatal(err)
	}
	e.pt = e.newTable()
	if code, off := e.produce(3, 0, 0, 2); code != "" || off != 0 {
		t.Fatalf("duplicate found by the scan: %v at %d", code, off)
	}
	if _, err := decodeSnapshot(v); err == nil || !strings.Contains(err.Error(), "unknown future version 9") {
		t.Fatalf("future snapshot: %v", err)
	}
	// Prune: a snapshot of a topic that no longer exists goes.
	other := snapshotKey(partKey{"0badc0de-0000-0000-0000-000000000000", 3})
	if err := sp.Write([]broker.Record{{Key: other, Value: v}}, true); err != nil {
		t.Fatal(err)
	}
	if err := e.pt.Prune(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := sp.Get(other); ok {
		t.Fatal("a deleted topic's snapshot survived Prune")
	}
	if _, ok, _ := sp.Get(key); !ok {
		t.Fatal("Prune deleted a live topic's snapshot")
	}
}

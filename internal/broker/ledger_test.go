package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/internal/vfs"
)

// ledgerSub creates topic "jobs" (one partition, a 1 s de-duplication
// window) and queue subscription "w" with processed key pk.
func (e *env) ledgerSub(pk string, ttl time.Duration) {
	e.t.Helper()
	if _, err := e.b.CreateTopic("jobs", catalog.TopicConfig{Partitions: 1, DedupWindow: time.Second}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("jobs", "w", queueCfg(func(q *catalog.QueueConfig) {
		q.ProcessedKey, q.ProcessedTTL = pk, ttl
	})); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) publish(ms ...Message) {
	e.t.Helper()
	for i := range ms {
		ms[i].Partition = -1
	}
	if _, err := e.b.Publish("jobs", ms); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) skips() uint64 {
	e.t.Helper()
	info, err := e.b.DescribeSubscription("jobs", "w")
	if err != nil {
		e.t.Fatal(err)
	}
	return info.Stats.IdempotentSkips
}

// ledgerEntries counts the subscription's ledger records and expiry index
// entries in the store.
func (e *env) ledgerEntries() (keys, index int) {
	e.t.Helper()
	count := func(p []byte) int {
		n := 0
		if err := e.st.Scan(p, func(_, _ []byte) error { n++; return nil }); err != nil {
			e.t.Fatal(err)
		}
		return n
	}
	return count(state.LedgerPrefix("jobs", "w")), count(state.LedgerExpiryPrefix("jobs", "w"))
}

func vals(ds []Delivered) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Value)
	}
	return out
}

// TestLedgerSkipsProcessedKey: a message whose key an earlier message left
// in the ledger is acknowledged by the broker, not delivered; the ledger
// reaches the store with the snapshot.
func TestLedgerSkipsProcessedKey(t *testing.T) {
	e := newEnv(t)
	e.ledgerSub("key", 0)
	e.publish(Message{Key: []byte("k1"), Value: []byte("a")})
	s := e.joinQueue("jobs", "w")
	got := deliveries(t, s, 3*time.Second)
	if len(got) != 1 {
		t.Fatalf("delivered %v", vals(got))
	}
	ackAll(t, s, got)
	e.b.QueueTick()
	if k, x := e.ledgerEntries(); k != 1 || x != 1 {
		t.Fatalf("ledger holds %d keys, %d index entries; want 1, 1", k, x)
	}
	e.publish(Message{Key: []byte("k1"), Value: []byte("b")}, Message{Key: []byte("k2"), Value: []byte("c")},
		Message{Value: []byte("no key")})
	got = deliveries(t, s, 3*time.Second)
	if v := vals(got); len(v) != 2 || v[0] != "c" || v[1] != "no key" {
		t.Fatalf("delivered %v, want [c, no key]", v)
	}
	if n := e.skips(); n != 1 {
		t.Fatalf("idempotent skips %d, want 1", n)
	}
	ackAll(t, s, got)
	// The skipped message is finished: nothing comes back after the ack
	// timeout, and everything is done.
	e.advance(15*time.Second, s)
	if again := deliveries(t, s, 300*time.Millisecond); len(again) != 0 {
		t.Fatalf("redelivered %v", vals(again))
	}
	info, _ := e.b.DescribeSubscription("jobs", "w")
	if p := info.Partitions[0]; p.Lag != 0 || p.Queue == nil || p.Queue.Ready+p.Queue.Leased+p.Queue.Waiting != 0 {
		t.Fatalf("partition %+v, want everything finished", p)
	}
	if k, _ := e.ledgerEntries(); k != 2 { // k1, k2; the keyless message leaves nothing
		t.Fatalf("ledger holds %d keys, want 2", k)
	}
}

// TestLedgerNackedAfterKeyRecorded: two messages with one key are leased
// at once; the first is acked, the second nacked: its redelivery is
// skipped.
func TestLedgerNackedAfterKeyRecorded(t *testing.T) {
	e := newEnv(t)
	e.ledgerSub("header:order", 0)
	hd := func(v string) Message {
		return Message{Value: []byte(v), Headers: []batch.RecordHeader{{Key: "order", Value: []byte("o-1")}}}
	}
	e.publish(hd("first"), hd("second"))
	s := e.joinQueue("jobs", "w")
	got := deliveries(t, s, 3*time.Second)
	if len(got) != 2 {
		t.Fatalf("delivered %v", vals(got))
	}
	ackAll(t, s, got[:1])
	if err := s.Nack(2, 0, got[1].Offset, 0, "try again"); err != nil {
		t.Fatal(err)
	}
	e.advance(2*time.Second, s)
	if again := deliveries(t, s, 300*time.Millisecond); len(again) != 0 {
		t.Fatalf("redelivered %v", vals(again))
	}
	if n := e.skips(); n != 1 {
		t.Fatalf("idempotent skips %d, want 1", n)
	}
}

// TestLedgerTTLAndPurge: a key is forgotten once its TTL passes: a later
// message with it is delivered, and the purge deletes the records.
func TestLedgerTTLAndPurge(t *testing.T) {
	e := newEnv(t)
	e.ledgerSub("key", time.Minute)
	e.publish(Message{Key: []byte("k"), Value: []byte("a")})
	s := e.joinQueue("jobs", "w")
	ackAll(t, s, deliveries(t, s, 3*time.Second))
	e.b.QueueTick()
	e.advance(30*time.Second, s)
	e.publish(Message{Key: []byte("k"), Value: []byte("within the TTL")})
	e.advance(time.Second, s)
	if got := deliveries(t, s, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("delivered %v within the TTL", vals(got))
	}
	e.advance(31*time.Second, s)
	if k, x := e.ledgerEntries(); k != 0 || x != 0 {
		t.Fatalf("after the TTL the ledger holds %d keys, %d index entries; want none", k, x)
	}
	e.publish(Message{Key: []byte("k"), Value: []byte("after the TTL")})
	got := deliveries(t, s, 3*time.Second)
	if v := vals(got); len(v) != 1 || v[0] != "after the TTL" {
		t.Fatalf("delivered %v", v)
	}
	info, _ := e.b.DescribeSubscription("jobs", "w")
	if info.Stats.LedgerPurged != 1 || info.Stats.IdempotentSkips != 1 {
		t.Fatalf("stats %+v", info.Stats)
	}
	// Acked again, the key is recorded again, with a new expiry.
	ackAll(t, s, got)
	e.b.QueueTick()
	if k, x := e.ledgerEntries(); k != 1 || x != 1 {
		t.Fatalf("ledger holds %d keys, %d index entries; want 1, 1", k, x)
	}
}

// TestLedgerRenewedKeyOutlivesOldIndex: a key recorded again before the
// purge of its first expiry keeps its new record.
func TestLedgerRenewedKeyOutlivesOldIndex(t *testing.T) {
	e := newEnv(t)
	e.ledgerSub("key", time.Minute)
	s := e.joinQueue("jobs", "w")
	e.publish(Message{Key: []byte("k"), Value: []byte("a")})
	ackAll(t, s, deliveries(t, s, 3*time.Second))
	e.b.QueueTick()
	// Past the TTL but before any purge (no tick).
	for range 61 {
		e.clk.Advance(time.Second)
		s.Heartbeat()
	}
	e.publish(Message{Key: []byte("k"), Value: []byte("b")})
	got := deliveries(t, s, 3*time.Second)
	if v := vals(got); len(v) != 1 || v[0] != "b" {
		t.Fatalf("delivered %v", v)
	}
	ackAll(t, s, got)
	e.b.QueueTick() // writes the renewed key, then purges the old index entry
	if k, x := e.ledgerEntries(); k != 1 || x != 1 {
		t.Fatalf("ledger holds %d keys, %d index entries; want 1, 1", k, x)
	}
	e.publish(Message{Key: []byte("k"), Value: []byte("c")})
	if got := deliveries(t, s, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("delivered %v", vals(got))
	}
}

// TestLedgerSurvivesRestart: the ledger is in the state store.
func TestLedgerSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.ledgerSub("id", 0)
	e.publish(Message{ID: "order-1", Value: []byte("a")})
	s := e.joinQueue("jobs", "w")
	ackAll(t, s, deliveries(t, s, 3*time.Second))
	s.Leave()
	e.restart()
	e.clk.Advance(2 * time.Second) // past the de-duplication window
	e.publish(Message{ID: "order-1", Value: []byte("again")}, Message{ID: "order-2", Value: []byte("new")})
	s = e.joinQueue("jobs", "w")
	if v := vals(deliveries(t, s, 3*time.Second)); len(v) != 1 || v[0] != "new" {
		t.Fatalf("after restart delivered %v, want [new]", v)
	}
	if n := e.skips(); n != 1 {
		t.Fatalf("idempotent skips %d, want 1", n)
	}
}

// TestLedgerRedrivenDeadLetter: a redriven dead letter keeps its original
// id: skipped when a message with that id was processed since, recorded
// under it when it is processed.
func TestLedgerRedrivenDeadLetter(t *testing.T) {
	e := newEnv(t)
	e.ledgerSub("", 0) // the ledger is turned on later
	e.publish(Message{ID: "order-1", Value: []byte("v1")}, Message{Value: []byte("no id")})
	s := e.joinQueue("jobs", "w")
	got := deliveries(t, s, 3*time.Second)
	if len(got) != 2 {
		t.Fatalf("delivered %v", vals(got))
	}
	for _, d := range got {
		if err := s.Reject(3, 0, d.Offset, "broken"); err != nil {
			t.Fatal(err)
		}
	}
	e.b.QueueTick()
	if _, err := e.b.AlterSubscription("jobs", "w", func(c *catalog.SubConfig) error {
		c.Queue.ProcessedKey = "id"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// order-1 is processed again, from a later publish.
	e.clk.Advance(2 * time.Second)
	e.publish(Message{ID: "order-1", Value: []byte("v2")})
	got = deliveries(t, s, 3*time.Second)
	if v := vals(got); len(v) != 1 || v[0] != "v2" {
		t.Fatalf("delivered %v", v)
	}
	ackAll(t, s, got)
	rep, err := e.b.Redrive(context.Background(), RedriveRequest{Topic: "jobs", Subscription: "w"})
	if err != nil || rep.Moved != 2 {
		t.Fatalf("redrive %+v %v", rep, err)
	}
	// The copy of order-1 is skipped; the copy of the message without an
	// id is delivered, known by its original position.
	got = deliveries(t, s, 3*time.Second)
	if v := vals(got); len(v) != 1 || v[0] != "no id" {
		t.Fatalf("redriven: delivered %v, want [no id]", v)
	}
	if orig := string(headerValue(got[0].Headers, HeaderOriginalID)); orig != "spool:jobs/0/1" {
		t.Fatalf("redriven copy's original id %q", orig)
	}
	ackAll(t, s, got)
	if n := e.skips(); n != 1 {
		t.Fatalf("idempotent skips %d, want 1", n)
	}
	// Redriven again (their marks removed, as a crash between a copy and
	// its mark leaves them), both copies are skipped.
	bt := e.st.NewBatch()
	bt.DeletePrefix(state.RedrivenPrefix(catalog.DeadLetterTopicName("jobs", "w")))
	if err := bt.Commit(true); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(2 * time.Second) // past the topic's de-duplication window
	if rep, err := e.b.Redrive(context.Background(), RedriveRequest{Topic: "jobs", Subscription: "w"}); err != nil || rep.Moved != 2 {
		t.Fatalf("second redrive %+v %v", rep, err)
	}
	if got := deliveries(t, s, 500*time.Millisecond); len(got) != 0 {
		t.Fatalf("redriven again: delivered %v", vals(got))
	}
	if n := e.skips(); n != 3 {
		t.Fatalf("idempotent skips %d, want 3", n)
	}
}

// TestLedgerPowerLoss cuts the power under a consumer acknowledging
// messages of a subscription with a ledger by id (every id distinct): after
// each cut, a message is finished in the queue's saved state exactly when
// its id is in the ledger, since both are one synced write.
func TestLedgerPowerLoss(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	logFS := vfs.NewMemFS()
	stFS := pebblevfs.NewCrashableMem()
	open := func() (*state.Store, *Broker) {
		st, err := state.Open("/data/state", state.Options{FS: stFS, Logger: quiet})
		if err != nil {
			t.Fatalf("seed %d: open state: %v", seed, err)
		}
		b, err := Open(Config{DataDir: "/data", FS: logFS, State: st, Logger: quiet, MaintenanceInterval: time.Hour})
		if err != nil {
			st.Close()
			t.Fatalf("seed %d: open broker: %v", seed, err)
		}
		return st, b
	}
	lc := ledger{kind: catalog.ProcessedByID, tag: "id"}
	for cycle := range 7 {
		st, b := open()
		if cycle == 0 {
			if _, err := b.CreateTopic("pl", catalog.TopicConfig{Partitions: 1, Durability: seglog.SyncAlways}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.CreateSubscription("pl", "q", catalog.SubConfig{Mode: catalog.ModeQueue,
				Queue: catalog.QueueConfig{MaxDeliveries: 1000, AckTimeout: time.Minute, ProcessedKey: "id"}}); err != nil {
				t.Fatal(err)
			}
		} else {
			// What the cut left: finished exactly when recorded.
			var snap queue.Snapshot // none saved yet: nothing finished
			if v, err := st.Get(state.QueueKey("pl", "q", 0)); err == nil {
				if snap, err = decodeSnapshot(nil, v); err != nil {
					t.Fatal(err)
				}
			} else if !errors.Is(err, state.ErrNotFound) {
				t.Fatal(err)
			}
			finished, recorded := 0, 0
			end := b.topics["pl"].logs()[0].EndOffset()
			for off := range end {
				done := off < snap.Floor
				for _, r := range snap.Done {
					done = done || (off >= r[0] && off < r[1])
				}
				h, _ := lc.identity("pl", &Delivered{ID: fmt.Sprintf("m-%d", off)})
				_, err := st.Get(state.LedgerKey("pl", "q", h))
				in := err == nil
				if done != in {
					t.Fatalf("seed %d cycle %d: offset %d finished %v, in the ledger %v", seed, cycle, off, done, in)
				}
				if done {
					finished++
				}
				if in {
					recorded++
				}
			}
			if finished != recorded {
				t.Fatalf("seed %d cycle %d: %d finished, %d recorded", seed, cycle, finished, recorded)
			}
			t.Logf("cycle %d: %d of %d finished and recorded", cycle, finished, end)
		}
		// Publish (ids m-<offset>: one partition, one publisher, from the
		// log's end) and consume until the cut.
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, 2)
		go func() {
			defer func() { done <- struct{}{} }()
			next := b.topics["pl"].logs()[0].EndOffset()
			for range 300 {
				if ctx.Err() != nil {
					return
				}
				time.Sleep(time.Millisecond)
				msgs := make([]Message, 10)
				for i := range msgs {
					msgs[i] = Message{ID: fmt.Sprintf("m-%d", next+int64(i)), Value: []byte("x"), Partition: -1}
				}
				if _, err := b.Publish("pl", msgs); err != nil {
					return
				}
				next += int64(len(msgs))
			}
		}()
		go func() {
			defer func() { done <- struct{}{} }()
			sess, err := b.Join(JoinRequest{Topic: "pl", Subscription: "q", Credits: 16})
			if err != nil {
				return
			}
			defer sess.Leave()
			var id uint64
			for {
				ev, err := sess.Next(ctx)
				if err != nil {
					return
				}
				for _, d := range ev.Deliveries {
					if ctx.Err() != nil {
						return
					}
					id++
					if sess.Ack(id, []OffsetRange{{Partition: d.Partition, From: d.Offset, To: d.Offset + 1}}) != nil {
						return
					}
					sess.AddCredits(1)
				}
			}
		}()
		time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		stCrash := stFS.CrashClone(pebblevfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(100), RNG: rand.New(rand.NewPCG(seed, uint64(cycle)))})
		logCrash := logFS.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, uint64(cycle)+1000))})
		cancel()
		<-done
		<-done
		b.Close()
		st.Close()
		logFS, stFS = logCrash, stCrash
	}
}

package broker

import (
	"context"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/state"
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

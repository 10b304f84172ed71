package client

import (
	"slices"
	"strings"
	"testing"
	"time"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// rec makes a record named name (its value), with order key key, sent at
// t0+at.
func rec(name, key string, at time.Duration) *record {
	k := ""
	if key != "" {
		k = "k" + key
	}
	return &record{x: &recordX{msg: &spoolv1.Message{Value: []byte(name)}, orderKey: k}, size: 10, enqueued: monoOf(t0.Add(at))}
}

func names(rs []*record) string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.pm().Value))
	}
	return strings.Join(out, ",")
}

func testBatcher(msgs int, bytes int64, linger time.Duration) *batcher {
	return newBatcher(&producerConfig{maxBatchMsgs: msgs, maxBatchBytes: bytes, linger: linger, deliveryTimeout: time.Hour})
}

func TestBatcherLinger(t *testing.T) {
	b := testBatcher(100, 1<<20, 5*time.Millisecond)
	b.add([]*record{rec("a", "", 0), rec("b", "", time.Millisecond)})
	got, wake := b.next(t0.Add(2*time.Millisecond), false)
	if got != nil || !wake.Equal(t0.Add(5*time.Millisecond)) {
		t.Fatalf("partial batch before linger: %v, wake %v", names(got), wake)
	}
	got, _ = b.next(t0.Add(5*time.Millisecond), false)
	if names(got) != "a,b" {
		t.Fatalf("after linger: %q", names(got))
	}
	b.add([]*record{rec("c", "", 10*time.Millisecond)})
	if got, _ := b.next(t0.Add(10*time.Millisecond), true); names(got) != "c" {
		t.Fatalf("forced: %q", names(got))
	}
	if got, wake := b.next(t0, false); got != nil || !wake.IsZero() {
		t.Fatal("empty batcher returned something")
	}
}

func TestBatcherLimits(t *testing.T) {
	b := testBatcher(3, 1<<20, time.Hour)
	for i := range 7 {
		b.add([]*record{rec(string(rune('a'+i)), "", 0)})
	}
	var got []string
	for {
		batch, _ := b.next(t0, false)
		if batch == nil {
			break
		}
		got = append(got, names(batch))
	}
	// Full batches go at once; the partial one waits for linger.
	if want := []string{"a,b,c", "d,e,f"}; !slices.Equal(got, want) {
		t.Fatalf("batches %v, want %v", got, want)
	}
	b = testBatcher(100, 25, time.Hour) // records are 10 bytes
	b.add([]*record{rec("a", "", 0), rec("b", "", 0), rec("c", "", 0)})
	if batch, _ := b.next(t0, false); names(batch) != "a,b" {
		t.Fatalf("byte limit: %q", names(batch))
	}
	big := rec("big", "", 0)
	big.size = 1000
	b = testBatcher(100, 25, time.Hour)
	b.add([]*record{big, rec("x", "", 0)})
	if batch, _ := b.next(t0, false); names(batch) != "big" {
		t.Fatalf("oversized record must go alone: %q", names(batch))
	}
}

func TestBatcherKeepsKeyOrder(t *testing.T) {
	b := testBatcher(2, 1<<20, 0)
	b.add([]*record{rec("a1", "a", 0), rec("b1", "b", 0), rec("a2", "a", 0), rec("n1", "", 0), rec("b2", "b", 0)})
	first, _ := b.next(t0, false)
	if names(first) != "a1,b1" {
		t.Fatalf("first: %q", names(first))
	}
	b.block(first)
	// a and b are in flight: only the key-less record may go.
	second, _ := b.next(t0, false)
	if names(second) != "n1" {
		t.Fatalf("second: %q", names(second))
	}
	if third, _ := b.next(t0, false); third != nil {
		t.Fatalf("a key in flight was sent again: %q", names(third))
	}
	// The first request fails and is retried after a backoff: it goes back
	// in front, and a2/b2 must not overtake it.
	b.unblock(first)
	for _, r := range first {
		r.notBefore = monoOf(t0.Add(time.Second))
	}
	b.requeue(first)
	got, wake := b.next(t0, false)
	if got != nil || !wake.Equal(t0.Add(time.Second)) {
		t.Fatalf("records overtook a retry: %q (wake %v)", names(got), wake)
	}
	got, _ = b.next(t0.Add(time.Second), false)
	if names(got) != "a1,b1" {
		t.Fatalf("retry: %q", names(got))
	}
	b.block(got)
	b.unblock(got)
	got, _ = b.next(t0.Add(time.Second), false)
	if names(got) != "a2,b2" {
		t.Fatalf("after retry: %q", names(got))
	}
}

func TestBatcherAloneRecords(t *testing.T) {
	b := testBatcher(10, 1<<20, 0)
	rs := []*record{rec("a1", "a", 0), rec("x", "", 0), rec("a2", "a", 0)}
	for _, r := range rs {
		r.alone = true
	}
	b.requeue(rs)
	b.add([]*record{rec("a3", "a", 0), rec("y", "", 0)})
	var got []string
	for {
		batch, _ := b.next(t0, false)
		if batch == nil {
			break
		}
		got = append(got, names(batch))
		b.block(batch)
		b.unblock(batch)
	}
	if want := []string{"a1", "x", "a2", "a3,y"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestBatcherExpire(t *testing.T) {
	b := testBatcher(10, 1<<20, 0)
	old, young := rec("old", "", 0), rec("young", "", 0)
	old.enqueued = monoOf(t0.Add(time.Second - time.Hour)) // its deadline: t0+1s
	b.add([]*record{old, young})
	if got := b.expire(t0.Add(time.Second)); names(got) != "old" {
		t.Fatalf("expired %q", names(got))
	}
	if names(b.pending) != "young" {
		t.Fatalf("left %q", names(b.pending))
	}
}

package broker

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/spoolmq/spool/internal/catalog"
)

// TestSessionEventsResumeInsideABatch delivers two stored batches (300 and
// 200 messages) in events of 70 messages: every event but the first
// continues from the read the previous one stopped in, and every message
// comes once, in order.
func TestSessionEventsResumeInsideABatch(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("t", "s", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	publishTo(t, e.b, "t", 0, "a", 300)
	publishTo(t, e.b, "t", 0, "b", 200)
	sess, err := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", ClientID: "c", Credits: 70})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Leave()
	if ev := next(t, sess); ev.Assignment == nil {
		t.Fatalf("first event: %+v", ev)
	}
	var got []string
	want := int64(0)
	for want < 500 {
		ev := next(t, sess)
		if len(ev.Deliveries) == 0 {
			t.Fatalf("event without deliveries at %d: %+v", want, ev)
		}
		if len(ev.Deliveries) > 70 {
			t.Fatalf("%d deliveries for 70 credits", len(ev.Deliveries))
		}
		for _, d := range ev.Deliveries {
			if d.Offset != want {
				t.Fatalf("offset %d, want %d", d.Offset, want)
			}
			want++
			got = append(got, string(d.Value))
		}
		// The rest of the read the event stopped in (both batches, from
		// the one holding the next message) is kept for the next.
		if want < 500 {
			base, end := int64(0), int64(500)
			if want >= 300 {
				base = 300
			}
			if rc := sess.rc; rc.base != base || rc.next != end || rc.data == nil {
				t.Fatalf("after offset %d: cache covers [%d, %d), want [%d, %d)", want, rc.base, rc.next, base, end)
			}
		}
		sess.AddCredits(len(ev.Deliveries))
	}
	for i, v := range got {
		w := fmt.Sprintf("a-%d", i)
		if i >= 300 {
			w = fmt.Sprintf("b-%d", i-300)
		}
		if v != w {
			t.Fatalf("message %d: %q, want %q", i, v, w)
		}
	}
}

// TestSessionEventsOverLargeBatches delivers batches larger than a
// session's read size (300 messages of 1,000 bytes, split by the server at
// its 512 KiB batches, then small ones) in events of 70 messages: reads of
// one batch at a time after a large one, every message once and in order.
func TestSessionEventsOverLargeBatches(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("t", "s", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	big := make([]Message, 600)
	for i := range big {
		big[i] = Message{Value: append([]byte(fmt.Sprintf("big-%d-", i)), make([]byte, 1000)...), Partition: 0}
	}
	if _, err := e.b.Publish("t", big); err != nil {
		t.Fatal(err)
	}
	publishTo(t, e.b, "t", 0, "small", 50)
	publishTo(t, e.b, "t", 0, "tail", 50)
	sess, err := e.b.Join(JoinRequest{Topic: "t", Subscription: "s", ClientID: "c", Credits: 70})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Leave()
	next(t, sess) // the assignment
	for want := int64(0); want < 700; {
		ev := next(t, sess)
		if len(ev.Deliveries) == 0 || len(ev.Deliveries) > 70 {
			t.Fatalf("%d deliveries at %d", len(ev.Deliveries), want)
		}
		for _, d := range ev.Deliveries {
			var w string
			switch {
			case want < 600:
				w = fmt.Sprintf("big-%d-", want)
			case want < 650:
				w = fmt.Sprintf("small-%d", want-600)
			default:
				w = fmt.Sprintf("tail-%d", want-650)
			}
			if d.Offset != want || !bytes.HasPrefix(d.Value, []byte(w)) {
				t.Fatalf("offset %d %q…, want %d %q", d.Offset, d.Value[:min(len(d.Value), 12)], want, w)
			}
			want++
		}
		if want == 70 && !sess.rc.big {
			t.Fatal("a batch larger than the read size did not make the next read ask for one batch")
		}
		sess.AddCredits(len(ev.Deliveries))
	}
}

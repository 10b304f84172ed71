package broker

import (
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
)

// TestListDeadLettersBounded: one answer holds at most about
// maxListDeadLetterBytes of messages (the one crossing the bound is the
// last), and the next offset continues where it stopped.
func TestListDeadLettersBounded(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("jobs", catalog.TopicConfig{})
	if _, err := e.b.CreateSubscription("jobs", "w", queueCfg(nil)); err != nil {
		t.Fatal(err)
	}
	const n, size = 12, 600 << 10
	for i := range n {
		if _, err := e.b.Publish("jobs", []Message{{Value: make([]byte, size), Partition: -1, ID: string(rune('a' + i))}}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := e.b.Join(JoinRequest{Topic: "jobs", Subscription: "w", Credits: n})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	for rejected := 0; rejected < n; {
		ds := deliveries(t, s, 5*time.Second)
		if len(ds) == 0 {
			t.Fatalf("only %d deliveries", rejected)
		}
		for _, d := range ds {
			if err := s.Reject(1, d.Partition, d.Offset, "no"); err != nil {
				t.Fatal(err)
			}
			rejected++
		}
	}
	e.b.QueueTick()

	perPage := maxListDeadLetterBytes/size + 1
	var all []DeadLetterInfo
	from := int64(0)
	for page := 0; len(all) < n; page++ {
		list, next, err := e.b.ListDeadLetters("jobs", "w", from, 100)
		if err != nil || len(list) == 0 {
			t.Fatalf("page %d: %d dead letters, %v", page, len(list), err)
		}
		if len(list) > perPage {
			t.Fatalf("page %d: %d dead letters of %d bytes, want at most %d", page, len(list), size, perPage)
		}
		all = append(all, list...)
		from = next
	}
	if len(all) != n || all[0].Offset != 0 || all[n-1].Offset != n-1 {
		t.Fatalf("listed %d dead letters, offsets %d…%d", len(all), all[0].Offset, all[len(all)-1].Offset)
	}
	if list, _, _ := e.b.ListDeadLetters("jobs", "w", from, 100); len(list) != 0 {
		t.Fatalf("%d more after the end", len(list))
	}
}

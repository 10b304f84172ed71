package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
)

// jumpClock is the wall clock moved by an offset the test changes. Times
// it returns differ from the real ones by the offset in their monotonic
// reading too, so even comparisons of two of them see a jump: the worst
// case (Go's monotonic reading hides a real step of the wall clock from
// comparisons of times read in one process; only times written down, as
// Unix times, see it).
type jumpClock struct{ off atomic.Int64 }

func (c *jumpClock) Now() time.Time       { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *jumpClock) jump(d time.Duration) { c.off.Add(int64(d)) }

// streamConsumer reads a stream subscription on the coordinator, one
// member, committing after every delivery, and records what it got.
type streamConsumer struct {
	c     *testCluster
	topic string
	sub   string

	mu        sync.Mutex
	delivered map[string]int // value → deliveries
	joins     int
	stop      chan struct{}
	done      chan struct{}
}

func startConsumer(c *testCluster, topic, sub string) *streamConsumer {
	sc := &streamConsumer{c: c, topic: topic, sub: sub, delivered: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go sc.run()
	return sc
}

func (sc *streamConsumer) run() {
	defer close(sc.done)
	for {
		select {
		case <-sc.stop:
			return
		default:
		}
		var b *broker.Broker
		sc.c.mu.Lock()
		for _, m := range sc.c.members {
			if m.b != nil && m.b.CoordinatorTerm() != 0 {
				b = m.b
			}
		}
		sc.c.mu.Unlock()
		if b == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		s, err := b.Join(broker.JoinRequest{Topic: sc.topic, Subscription: sc.sub, Credits: 1000, SessionTimeout: 10 * time.Second})
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		sc.mu.Lock()
		sc.joins++
		sc.mu.Unlock()
		sc.session(s)
		s.Leave()
	}
}

// session reads s until it ends or the consumer stops.
func (sc *streamConsumer) session(s *broker.Session) {
	var gen int64
	var id uint64
	last := time.Now()
	for {
		select {
		case <-sc.stop:
			return
		default:
		}
		if time.Since(last) > time.Second {
			s.Heartbeat()
			last = time.Now()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		ev, err := s.Next(ctx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			continue
		default:
			return
		}
		if ev.Assignment != nil {
			gen = ev.Assignment.Generation
		}
		if len(ev.Deliveries) == 0 {
			continue
		}
		sc.mu.Lock()
		for _, d := range ev.Deliveries {
			sc.delivered[string(d.Value)]++
		}
		sc.mu.Unlock()
		s.AddCredits(len(ev.Deliveries))
		offs := map[int32]int64{}
		for _, n := range ev.Next {
			offs[n.Partition] = n.Offset
		}
		id++
		if err := s.Commit(id, gen, offs); err != nil {
			return
		}
	}
}

func (sc *streamConsumer) halt() {
	close(sc.stop)
	<-sc.done
}

// terms returns the term of every group on a member.
func terms(m *member) map[uint64]uint64 {
	out := map[uint64]uint64{}
	m.n.mu.Lock()
	ids := []uint64{MetaGroup}
	for id := range m.n.partitions {
		ids = append(ids, id)
	}
	m.n.mu.Unlock()
	for _, id := range ids {
		if st, ok := m.n.rafts.Status(id); ok {
			out[id] = st.HardState.GetTerm()
		}
	}
	return out
}

// TestClockJumps moves the clock of two nodes' brokers — the
// subscriptions' coordinator and another partition leader — forward by
// hours and back by minutes, several times, while every partition takes
// publishes and a stream subscription reads them: no election, every
// acknowledged message stored once on every node, every stored message
// delivered, none twice within a session.
func TestClockJumps(t *testing.T) {
	const parts = 3
	clocks := map[uint64]*jumpClock{}
	c := newTestClusterOf(&testCluster{t: t, setup: func(m *member) {
		clocks[m.id] = &jumpClock{}
		m.clock = clocks[m.id]
	}}, 3)
	if err := retry(t, func() error {
		_, err := c.members[1].b.CreateTopic("orders", catalog.TopicConfig{Partitions: parts})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := retry(t, func() error {
		_, err := c.members[1].b.CreateSubscription("orders", "s", catalog.SubConfig{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	coord := c.coordinator()
	jumpers := []*member{coord}
	for p := range int32(parts) {
		if m := c.leaderOf("orders", p); m != coord && len(jumpers) < 2 {
			jumpers = append(jumpers, m)
		}
	}
	load := startLoad(c, "orders", parts, func(*member) bool { return true })
	cons := startConsumer(c, "orders", "s")
	time.Sleep(500 * time.Millisecond)
	before := map[uint64]map[uint64]uint64{}
	for id, m := range c.members {
		before[id] = terms(m)
	}
	jumps := []time.Duration{3 * time.Hour, -10 * time.Minute, 5 * time.Hour, -30 * time.Minute, 24 * time.Hour}
	for _, d := range jumps {
		for _, m := range jumpers {
			clocks[m.id].jump(d)
		}
		time.Sleep(700 * time.Millisecond)
	}
	load.halt()
	load.check(t)
	// Every stored message delivered, once.
	var stored []string
	for p := range int32(parts) {
		vs := values(t, coord.b, "orders", p)
		for k, v := range vs {
			if slices.Index(vs, v) != k {
				t.Errorf("partition %d: %s stored twice", p, v)
			}
		}
		stored = append(stored, vs...)
	}
	eventually(t, "every stored message delivered", func() error {
		cons.mu.Lock()
		defer cons.mu.Unlock()
		for _, v := range stored {
			if cons.delivered[v] == 0 {
				return fmt.Errorf("%s not delivered (%d of %d delivered)", v, len(cons.delivered), len(stored))
			}
		}
		return nil
	})
	cons.halt()
	var twice []string
	for v, n := range cons.delivered {
		if n > 1 {
			twice = append(twice, v)
		}
	}
	// The fake's jumps move the group coordinator's session deadlines (a
	// real step of the wall clock does not): a forward jump can expire
	// the session, and what it was delivered but had not committed is
	// delivered again to the next, as after any lost session.
	if len(twice) > 0 && cons.joins == 1 {
		t.Errorf("%d messages delivered more than once in one session: %v", len(twice), twice[:min(len(twice), 5)])
	}
	var elections []string
	for id, m := range c.members {
		for g, term := range terms(m) {
			if term != before[id][g] {
				elections = append(elections, fmt.Sprintf("node %d group %x: term %d → %d", id, g, before[id][g], term))
			}
		}
	}
	if len(elections) > 0 {
		t.Errorf("elections during the clock jumps: %s", strings.Join(elections, "; "))
	}
	var ids []uint64
	for _, m := range jumpers {
		ids = append(ids, m.id)
	}
	t.Logf("clocks of nodes %v jumped %v: %d messages stored once each, all delivered, %d again after the session expired (%d sessions); no election",
		ids, jumps, len(stored), len(twice), cons.joins)
}

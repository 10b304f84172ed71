package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
)

// coordinatorOf asks c for the cluster's subscription coordinator, waiting
// until there is one.
func coordinatorOf(t *testing.T, c *client.Client, nodes []*clusterNode) *clusterNode {
	t.Helper()
	var out *clusterNode
	retryFor(t, 30*time.Second, "a coordinator", func() error {
		st, err := c.ClusterStatus(context.Background())
		if err != nil {
			return err
		}
		for _, nd := range nodes {
			if nd.id == st.Coordinator && nd.httpAddr == st.CoordinatorAddr {
				out = nd
				return nil
			}
		}
		return fmt.Errorf("coordinator %d at %q", st.Coordinator, st.CoordinatorAddr)
	})
	return out
}

// publishValues publishes n values prefix0… through c, retrying each call
// until it is stored (ids make a retry safe).
func publishKeyed(t *testing.T, c *client.Client, topic, prefix string, n int) []string {
	t.Helper()
	var values []string
	for i := 0; i < n; i += 50 {
		var msgs []client.Message
		for j := i; j < min(i+50, n); j++ {
			v := fmt.Sprintf("%s%05d", prefix, j)
			values = append(values, v)
			msgs = append(msgs, client.Message{ID: v, Key: []byte(v), Value: []byte(v)})
		}
		retryFor(t, 60*time.Second, "publish "+prefix, func() error {
			_, err := c.Publish(context.Background(), topic, msgs...)
			return err
		})
	}
	return values
}

// delivery is one message a test consumer handled.
type delivery struct {
	value     string
	partition int32
	offset    int64
}

// recorder collects what a Consumer's handler was given.
type recorder struct {
	mu   sync.Mutex
	got  []delivery
	seen map[string]int
}

func newRecorder() *recorder { return &recorder{seen: map[string]int{}} }

func (r *recorder) handle(_ context.Context, m *client.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, delivery{string(m.Value), m.Partition, m.Offset})
	r.seen[string(m.Value)]++
	return nil
}

// has reports how many of values were handled at least once.
func (r *recorder) has(values []string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := 0
	for _, v := range values {
		if r.seen[v] > 0 {
			k++
		}
	}
	return k
}

// waitAll waits until every value was handled.
func (r *recorder) waitAll(t *testing.T, values []string, d time.Duration) {
	t.Helper()
	retryFor(t, d, "consume", func() error {
		if k := r.has(values); k < len(values) {
			return fmt.Errorf("%d of %d handled", k, len(values))
		}
		return nil
	})
}

// runConsumer runs a consumer of topic/sub through c until the returned
// stop is called; stop returns Run's error.
func runConsumer(t *testing.T, c *client.Client, topic, sub string, h client.Handler, opts ...client.ConsumerOption) (stop func() error) {
	t.Helper()
	k, err := c.NewConsumer(topic, sub, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("the consumer did not stop")
		}
	}
}

// TestClusterConsumers runs three `spool serve` processes and consumes
// through a node that does not coordinate subscriptions: a stream
// Consumer handles every message once and commits them all, a queue
// Consumer acknowledges each message once. Then the coordinator is killed
// (-9) under a consuming stream Consumer: the Consumer follows the new
// coordinator and goes on from the last commit, handling every message
// (none committed before the kill again); a queue Consumer whose client
// was given only the coordinator's address goes on through the nodes the
// cluster named and handles every message. Last, a client given three
// addresses whose first is the killed node works: admin calls, Publish, a
// Consumer.
func TestClusterConsumers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	nodes := startCluster(t, 3)
	admin, err := client.New(nodes[0].url())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	coord := coordinatorOf(t, admin, nodes)
	other := nodes[coord.id%3] // not the coordinator
	t.Logf("coordinator: node %d; consuming through node %d", coord.id, other.id)

	c, err := client.New(other.url(), client.WithPublishAttempts(100), client.WithBackoff(20*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	createLed(t, admin, "events", 3)
	for _, s := range []struct {
		name string
		mode client.Mode
	}{{"stream", client.ModeStream}, {"queue", client.ModeQueue}} {
		retryFor(t, 30*time.Second, "create "+s.name, func() error {
			_, err := c.CreateSubscription(ctx, "events", s.name, client.SubscriptionConfig{Mode: s.mode, Start: client.Earliest()})
			if errors.Is(err, client.ErrSubscriptionExists) {
				return nil
			}
			return err
		})
	}
	values := publishKeyed(t, c, "events", "e", 600)

	// Stream: every message once, all committed.
	sr := newRecorder()
	stop := runConsumer(t, c, "events", "stream", sr.handle)
	sr.waitAll(t, values, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for v, n := range sr.seen {
		if n != 1 {
			t.Errorf("stream: %s handled %d times", v, n)
		}
	}
	info, err := c.DescribeSubscription(ctx, "events", "stream")
	if err != nil {
		t.Fatal(err)
	}
	if info.Lag != 0 {
		t.Errorf("stream: lag %d after consuming everything", info.Lag)
	}

	// Queue: each message acknowledged once.
	qr := newRecorder()
	stop = runConsumer(t, c, "events", "queue", qr.handle, client.ConsumerConcurrency(4))
	qr.waitAll(t, values, 60*time.Second)
	retryFor(t, 30*time.Second, "queue acknowledged", func() error {
		info, err := c.DescribeSubscription(ctx, "events", "queue")
		if err != nil {
			return err
		}
		if info.Lag != 0 {
			return fmt.Errorf("lag %d", info.Lag)
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for v, n := range qr.seen {
		if n != 1 {
			t.Errorf("queue: %s handled %d times", v, n)
		}
	}
	if t.Failed() {
		return
	}

	// The coordinator killed under a consuming stream Consumer.
	retryFor(t, 30*time.Second, "create failover", func() error {
		_, err := c.CreateSubscription(ctx, "events", "failover", client.SubscriptionConfig{Start: client.Earliest()})
		if errors.Is(err, client.ErrSubscriptionExists) {
			return nil
		}
		return err
	})
	fr := newRecorder()
	var handled atomic.Int64
	slow := func(ctx context.Context, m *client.Message) error {
		handled.Add(1)
		time.Sleep(10 * time.Millisecond) // still consuming when the coordinator is killed
		return fr.handle(ctx, m)
	}
	var assignedMu sync.Mutex
	var assigned []time.Time // when the stream consumer got partitions
	onAssigned := client.ConsumerOnAssigned(func(context.Context, []int32) {
		assignedMu.Lock()
		assigned = append(assigned, time.Now())
		assignedMu.Unlock()
	})
	stop = runConsumer(t, c, "events", "failover", slow, client.ConsumerCommitInterval(20*time.Millisecond), onAssigned)
	// Beside it, a queue Consumer whose client knows only the coordinator's
	// address: it goes on through the nodes the cluster named.
	retryFor(t, 30*time.Second, "create failover-queue", func() error {
		_, err := c.CreateSubscription(ctx, "events", "failover-queue", client.SubscriptionConfig{Mode: client.ModeQueue, Start: client.Earliest()})
		if errors.Is(err, client.ErrSubscriptionExists) {
			return nil
		}
		return err
	})
	dc, err := client.New(coord.url(), client.WithBackoff(20*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	dr := newRecorder()
	stopQueue := runConsumer(t, dc, "events", "failover-queue", func(ctx context.Context, m *client.Message) error {
		time.Sleep(5 * time.Millisecond)
		return dr.handle(ctx, m)
	}, client.ConsumerConcurrency(2))
	retryFor(t, 60*time.Second, "handled before the kill", func() error {
		if n := handled.Load(); n < 60 {
			return fmt.Errorf("%d handled", n)
		}
		return nil
	})
	committed := map[int32]int64{}
	retryFor(t, 30*time.Second, "commits before the kill", func() error {
		before, err := c.DescribeSubscription(ctx, "events", "failover")
		if err != nil {
			return err
		}
		sum := int64(0)
		for _, p := range before.Partitions {
			committed[p.Partition] = p.CommittedOffset
			sum += p.CommittedOffset
		}
		if sum < 30 {
			return fmt.Errorf("committed %v", committed)
		}
		return nil
	})
	fr.mu.Lock()
	killedAfter := len(fr.got)
	fr.mu.Unlock()
	t0 := time.Now()
	coord.kill()
	t.Logf("killed the coordinator, node %d, after %d messages handled (committed %v)", coord.id, killedAfter, committed)
	more := publishKeyed(t, c, "events", "f", 300)
	all := append(slices.Clone(values), more...)
	fr.waitAll(t, all, 120*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assignedMu.Lock()
	rejoined := time.Duration(-1)
	for _, at := range assigned {
		if at.After(t0) {
			rejoined = at.Sub(t0)
			break
		}
	}
	assignedMu.Unlock()
	if rejoined < 0 {
		t.Errorf("the stream consumer got no partitions after the kill")
	}
	t.Logf("the stream consumer had its partitions again %v after the kill (on the new coordinator); every message handled %v after it",
		rejoined.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	dr.waitAll(t, all, 120*time.Second)
	if err := stopQueue(); err != nil {
		t.Fatal(err)
	}
	qdups := 0
	for _, n := range dr.seen {
		qdups += n - 1
	}
	t.Logf("queue consumer through the killed node's address: every message handled %v after the kill, %d again (unacknowledged leases)",
		time.Since(t0).Round(time.Millisecond), qdups)
	dups := 0
	fr.mu.Lock()
	for _, d := range fr.got {
		if fr.seen[d.value] > 1 && d.offset < committed[d.partition] {
			t.Errorf("%s (%d/%d) was committed before the kill and handled again", d.value, d.partition, d.offset)
		}
	}
	for _, n := range fr.seen {
		dups += n - 1
	}
	fr.mu.Unlock()
	t.Logf("%d messages handled again after the move (at-least-once)", dups)
	newCoord := coordinatorOf(t, c, nodes)
	if newCoord == coord {
		t.Fatalf("node %d still named coordinator after it was killed", coord.id)
	}

	// A client whose first address is the killed node.
	var list []string
	list = append(list, coord.url())
	for _, nd := range nodes {
		if nd != coord {
			list = append(list, nd.url())
		}
	}
	sc, err := client.New(list[0], client.WithServers(list[1:]...))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := sc.ListTopics(ctx); err != nil {
		t.Fatalf("list topics with the first of three nodes down: %v", err)
	}
	if _, err := sc.CreateSubscription(ctx, "events", "seeds", client.SubscriptionConfig{Start: client.Earliest()}); err != nil {
		t.Fatal(err)
	}
	last := publishKeyed(t, sc, "events", "g", 100)
	gr := newRecorder()
	stop = runConsumer(t, sc, "events", "seeds", gr.handle)
	gr.waitAll(t, append(all, last...), 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.ResetSubscription(ctx, "events", "seeds", client.Earliest()); err != nil {
		t.Fatalf("reset with the first of three nodes down: %v", err)
	}
	// The same as one comma-separated address.
	cc, err := client.New(list[0] + "," + list[1] + "," + list[2])
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := cc.PurgeSubscription(ctx, "events", "seeds"); err != nil {
		t.Fatalf("purge through a comma-separated list whose first node is down: %v", err)
	}
}

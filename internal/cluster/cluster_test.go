package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/internal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// member is one node of a test cluster: a state store, a broker and its
// cluster node, over real files and loopback connections.
type member struct {
	id   uint64
	join bool
	dir  string
	addr string
	st   *state.Store
	b    *broker.Broker
	n    *Node
	// fs is the broker's file system (nil: the OS), and logger its and
	// the node's (nil: quiet).
	fs     vfs.FS
	logger *slog.Logger
	clock  clock.Clock // the broker's (nil: the wall clock)
}

type testCluster struct {
	t  testing.TB
	mu sync.Mutex // guards members' b against memberForwarder
	// snapshotEntries: the metadata group's snapshot interval (0: the
	// default), for nodes started after it is set.
	snapshotEntries int
	electionTicks   int            // raft's (0: the default)
	log             seglog.Options // the brokers' partition log defaults
	setup           func(*member)  // called for each initial member before it starts
	members         map[uint64]*member
	addrs           map[uint64]string
	id              Identity
}

func newTestCluster(t testing.TB, size int) *testCluster { return newTestClusterSnap(t, size, 0) }

// newTestClusterSnap starts a cluster whose metadata group snapshots every
// snapshotEntries entries (0: the default).
func newTestClusterSnap(t testing.TB, size, snapshotEntries int) *testCluster {
	return newTestClusterOf(&testCluster{t: t, snapshotEntries: snapshotEntries}, size)
}

// newTestClusterWith starts a cluster whose brokers' partition logs have
// these defaults.
func newTestClusterWith(t testing.TB, size int, log seglog.Options) *testCluster {
	return newTestClusterOf(&testCluster{t: t, log: log}, size)
}

func newTestClusterOf(c *testCluster, size int) *testCluster {
	t := c.t
	c.members, c.addrs = map[uint64]*member{}, map[uint64]string{}
	lns := map[uint64]net.Listener{}
	for id := uint64(1); id <= uint64(size); id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id], c.addrs[id] = ln, ln.Addr().String()
	}
	c.id.Cluster = DeriveClusterID(c.addrs)
	for id := uint64(1); id <= uint64(size); id++ {
		m := &member{id: id, dir: t.TempDir(), addr: c.addrs[id]}
		if c.setup != nil {
			c.setup(m)
		}
		c.members[id] = m
		c.start(m, lns[id])
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			c.stop(m)
		}
	})
	return c
}

func (c *testCluster) start(m *member, ln net.Listener) {
	t := c.t
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", m.addr); err != nil {
			t.Fatal(err)
		}
	}
	id := Identity{Cluster: c.id.Cluster, Node: m.id}
	if err := ClaimIdentity(vfs.Default, m.dir, id, false); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(m.dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	logger := quiet
	if m.logger != nil {
		logger = m.logger
	}
	n, err := New(Config{Identity: id, Listener: ln, Members: c.addrs, State: st, Logger: logger, Tick: 20 * time.Millisecond, ElectionTicks: c.electionTicks, Join: m.join,
		SnapshotEntries: c.snapshotEntries, SnapshotKeep: c.snapshotEntries / 5})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: m.dir, FS: m.fs, Clock: m.clock, State: st, Logger: logger, MaintenanceInterval: time.Hour, Meta: n, Log: c.log,
		MetaTimeout: time.Second, Replicator: n.Replicator(), Forward: memberForwarder{c}})
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	m.st, m.b, m.n = st, b, n
	c.mu.Unlock()
	if err := n.StartMetadata(b); err != nil {
		c.stop(m)
		t.Fatal(err)
	}
	n.Advertise(nativeAddr(m.id), "")
}

// nativeAddr is the native API address a test member advertises (it has
// none: memberForwarder finds the member by it).
func nativeAddr(id uint64) string { return fmt.Sprintf("node%d.test:7", id) }

// memberForwarder publishes on the member advertising the address, by a
// call rather than through a native API server (internal/e2e covers the
// server's forwarder).
type memberForwarder struct{ c *testCluster }

func (f memberForwarder) Publish(_ context.Context, addr, topic string, msgs []broker.Message) ([]broker.Result, error) {
	f.c.mu.Lock()
	var b *broker.Broker
	for _, m := range f.c.members {
		if nativeAddr(m.id) == addr {
			b = m.b
		}
	}
	f.c.mu.Unlock()
	if b != nil {
		return b.Publish(topic, msgs)
	}
	return nil, errs.New(errs.Unavailable, "no running member at %s", addr)
}

func (c *testCluster) stop(m *member) {
	if m.n == nil {
		return
	}
	if err := m.n.Close(); err != nil {
		c.t.Error(err)
	}
	if err := m.b.Close(); err != nil {
		c.t.Error(err)
	}
	m.st.Close()
	c.mu.Lock()
	m.n, m.b, m.st = nil, nil, nil
	c.mu.Unlock()
}

// eventually retries f until it returns nil or 10 s pass.
func eventually(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// retry makes a change until the cluster can decide it (an election may
// be in progress): Unavailable is retried, anything else returned.
//
// A change whose outcome was unknown (the leader changed) may have been
// applied: its retry then finds it done (TopicExists), which counts as
// success after an unavailable attempt.
func retry(t testing.TB, f func() error) error {
	t.Helper()
	var err error
	unknown := false
	for range 200 {
		err = f()
		switch {
		case errs.Is(err, errs.Unavailable):
			unknown = true
		case unknown && (errs.Is(err, errs.TopicExists) || errs.Is(err, errs.SubExists)):
			return nil
		default:
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

func topicsOf(b *broker.Broker) string {
	var s string
	for _, tm := range b.Topics() {
		subs, _ := b.Subscriptions(tm.Name)
		s += fmt.Sprintf("%s(%s,%d,%d,%d,%v)", tm.Name, tm.ID, tm.Config.Partitions, tm.Config.MaxMessages, tm.Config.Replicas, tm.Assignment)
		for _, sm := range subs {
			s += fmt.Sprintf("[%s %s %q]", sm.Name, sm.Config.Mode, sm.Config.Filter)
		}
		s += " "
	}
	return s
}

// sameCatalog waits until every running member has the catalog of want.
func (c *testCluster) sameCatalog(want *member) {
	c.t.Helper()
	eventually(c.t, "catalogs converge", func() error {
		ref := topicsOf(want.b)
		for _, m := range c.members {
			if m.b != nil {
				if got := topicsOf(m.b); got != ref {
					return fmt.Errorf("node %d has %s, node %d %s", m.id, got, want.id, ref)
				}
			}
		}
		return nil
	})
}

// TestMetadataReplicated: catalog changes made on any node reach every
// node in the same order, with the same outcomes; a node that was down
// catches up when it returns, and a node cut off from the majority
// refuses changes with a retriable error.
func TestMetadataReplicated(t *testing.T) {
	c := newTestCluster(t, 3)
	m1, m2, m3 := c.members[1], c.members[2], c.members[3]

	if err := retry(t, func() error {
		_, err := m2.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 2})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m2.b.Topic("orders"); !ok {
		t.Fatal("the topic is not on the node that created it when CreateTopic returned")
	}
	// Another node has it once it applied the change (within a heartbeat or
	// two); until then it answers topic_not_found, as a Kafka broker whose
	// metadata is behind does.
	eventually(t, "node 3 applied the creation", func() error {
		if _, ok := m3.b.Topic("orders"); !ok {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if _, err := retry2(t, func() (catalog.Subscription, error) {
		return m3.b.CreateSubscription("orders", "work", catalog.SubConfig{Mode: catalog.ModeQueue})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := retry2(t, func() (catalog.Topic, error) {
		return m1.b.UpdateTopicConfig("orders", func(c *catalog.TopicConfig) error { c.MaxMessages = 500; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	c.sameCatalog(m1)

	// Two nodes create the same topic at once: one wins, on every node.
	var wg sync.WaitGroup
	results := make([]error, 3)
	for i, m := range []*member{m1, m2, m3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = retry(t, func() error {
				_, err := m.b.CreateTopic("contested", catalog.TopicConfig{Partitions: 1})
				return err
			})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range results {
		switch {
		case err == nil:
			won++
		case !errs.Is(err, errs.TopicExists):
			t.Fatalf("concurrent create: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent creates of one topic succeeded: %v", won, results)
	}
	c.sameCatalog(m1)

	// A node down misses changes, and catches up when it returns.
	c.stop(m3)
	if err := retry(t, func() error { return m1.b.DeleteSubscription("orders", "work") }); err != nil {
		t.Fatal(err)
	}
	if err := retry(t, func() error { return m2.b.DeleteTopic("contested") }); err != nil {
		t.Fatal(err)
	}
	if _, err := retry2(t, func() (catalog.Topic, error) { return m1.b.AddPartitions("orders", 3) }); err != nil {
		t.Fatal(err)
	}
	c.start(m3, nil)
	c.sameCatalog(m1)
	if tm, _ := m3.b.Topic("orders"); tm.Config.Partitions != 3 {
		t.Fatalf("node 3 after catching up: %+v", tm)
	}

	// Every node restarted: the group's configuration comes back (raft
	// replays it from the log), a leader is elected and changes go on.
	for _, m := range c.members {
		c.stop(m)
	}
	for _, m := range c.members {
		c.start(m, nil)
	}
	if err := retry(t, func() error {
		_, err := m3.b.CreateTopic("after-restart", catalog.TopicConfig{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.sameCatalog(m3)

	// Alone, a node cannot change the catalog.
	c.stop(m1)
	c.stop(m2)
	_, err := m3.b.CreateTopic("lonely", catalog.TopicConfig{})
	if !errs.Is(err, errs.Unavailable) {
		t.Fatalf("create on a node without a majority: %v, want Unavailable", err)
	}
	if _, ok := m3.b.Topic("lonely"); ok {
		t.Fatal("a change without a majority was applied")
	}
}

func retry2[T any](t *testing.T, f func() (T, error)) (T, error) {
	t.Helper()
	var v T
	err := retry(t, func() error {
		var err error
		v, err = f()
		return err
	})
	return v, err
}

// TestIdentityRefused: a data directory stays with its cluster and node.
func TestIdentityRefused(t *testing.T) {
	dir := t.TempDir()
	a := Identity{Cluster: DeriveClusterID(map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"}), Node: 1}
	if err := ClaimIdentity(vfs.Default, dir, a, true); err == nil {
		t.Fatal("a single node's data directory was claimed by a cluster node")
	}
	if err := ClaimIdentity(vfs.Default, dir, a, false); err != nil {
		t.Fatal(err)
	}
	if err := ClaimIdentity(vfs.Default, dir, a, true); err != nil {
		t.Fatalf("the same identity again: %v", err)
	}
	other := a
	other.Node = 2
	if err := ClaimIdentity(vfs.Default, dir, other, true); err == nil {
		t.Fatal("another node id was accepted")
	}
	other = a
	other.Cluster = DeriveClusterID(map[uint64]string{1: "a:1", 2: "b:1", 3: "c:2"})
	if err := ClaimIdentity(vfs.Default, dir, other, true); err == nil {
		t.Fatal("another cluster was accepted")
	}
}

// TestMembership adds a fourth node (a learner, promoted once caught up),
// moves the metadata leadership to it, and removes node 1, whose data
// directory then refuses to start; the cluster goes on changing its
// catalog throughout.
func TestMembership(t *testing.T) {
	c := newTestCluster(t, 3)
	m2 := c.members[2]
	if err := retry(t, func() error {
		_, err := m2.b.CreateTopic("before", catalog.TopicConfig{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := retry(t, func() error { return m2.n.AddNode(ctx, 4, ln.Addr().String()) }); err != nil {
		t.Fatal(err)
	}
	if err := m2.n.AddNode(ctx, 4, ln.Addr().String()); !errs.Is(err, errs.FailedPrecondition) {
		t.Fatalf("adding node 4 again: %v", err)
	}
	m4 := &member{id: 4, dir: t.TempDir(), addr: ln.Addr().String(), join: true}
	c.addrs[4] = m4.addr
	c.members[4] = m4
	c.start(m4, ln)
	c.sameCatalog(m2)
	eventually(t, "node 4 promoted to voter", func() error {
		st, _ := m2.n.rafts.Status(MetaGroup)
		if _, ok := st.Config.Voters.IDs()[4]; !ok {
			return fmt.Errorf("voters %v", st.Config.Voters)
		}
		return nil
	})
	if err := m2.n.TransferLeadership(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if st, _ := m4.n.rafts.Status(MetaGroup); st.Lead != 4 {
		t.Fatalf("leader after the transfer: %d", st.Lead)
	}
	if err := retry(t, func() error { return m4.n.RemoveNode(ctx, 1) }); err != nil {
		t.Fatal(err)
	}
	m1 := c.members[1]
	eventually(t, "node 1 applied its removal", func() error {
		reg, err := m1.n.Registry()
		if err != nil || len(reg) == 0 || !reg[0].Removed {
			st1, _ := m1.n.rafts.Status(MetaGroup)
			st4, _ := m4.n.rafts.Status(MetaGroup)
			return fmt.Errorf("node 1's registry: %+v %v; node 1 %+v; node 4 %+v; transport 1 %+v; transport 4 %+v", reg, err, st1, st4, m1.n.transport.Status(), m4.n.transport.Status())
		}
		return nil
	})
	c.stop(m1)
	if err := retry(t, func() error {
		_, err := c.members[3].b.CreateTopic("after", catalog.TopicConfig{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.sameCatalog(m4)
	eventually(t, "every node registered", func() error {
		reg, err := m4.n.Registry()
		if err != nil || len(reg) != 4 || !reg[0].Removed {
			return fmt.Errorf("registry: %+v, %v", reg, err)
		}
		for _, ni := range reg[1:] {
			if ni.HTTPAddr == "" || ni.ClusterAddr != c.addrs[ni.ID] {
				return fmt.Errorf("registry: %+v", reg)
			}
		}
		return nil
	})
	st, err := state.Open(filepath.Join(m1.dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Identity: Identity{Cluster: c.id.Cluster, Node: 1}, Listener: ln1, Members: c.addrs, State: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	b, err := broker.Open(broker.Config{DataDir: m1.dir, State: st, Logger: quiet, MaintenanceInterval: time.Hour, Meta: n})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := n.StartMetadata(b); err == nil || !strings.Contains(err.Error(), "was removed") {
		t.Fatalf("a removed node started its metadata group: %v", err)
	}
}

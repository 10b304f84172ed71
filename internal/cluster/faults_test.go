package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/peer"
	"github.com/spoolmq/spool/internal/vfs"
)

// Faults of one node's disk: the partition logs of one member fail (a
// write error, or an fsync error) under publishes to every partition.
// That member's partition groups stop (the log's sticky error): it stores
// nothing more, acknowledges nothing more and votes no more in them; the
// two others go on, electing leaders for what it led; nothing
// acknowledged is lost; restarted on a healthy disk, it recovers its log
// (cutting a torn tail) and catches up.

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ackedRecord is a publish the cluster acknowledged.
type ackedRecord struct {
	offset int64
	value  string
}

// loadGen publishes to every partition of a topic, one message at a time
// per partition, through the partition's leader as the healthy members see
// it, and records what is acknowledged.
type loadGen struct {
	c       *testCluster
	topic   string
	parts   int32
	healthy func(*member) bool // members whose view of the leaders counts

	mu      sync.Mutex
	acked   map[int32][]ackedRecord
	refused int
	slow    []string // publishes that took longer than slowPublish
	stop    chan struct{}
	wg      sync.WaitGroup
}

// slowPublish: a publish not answered within this is reported (a leader
// whose group stopped must fail what waits, not leave it waiting).
const slowPublish = 5 * time.Second

func startLoad(c *testCluster, topic string, parts int32, healthy func(*member) bool) *loadGen {
	g := &loadGen{c: c, topic: topic, parts: parts, healthy: healthy, acked: map[int32][]ackedRecord{}, stop: make(chan struct{})}
	for p := range parts {
		g.wg.Add(1)
		go g.run(p)
	}
	return g
}

// leader returns the member the healthy running members agree leads
// partition p, or nil.
func (g *loadGen) leader(p int32) *member {
	g.c.mu.Lock()
	defer g.c.mu.Unlock()
	var seen uint64
	for _, m := range g.c.members {
		if m.b == nil || !g.healthy(m) {
			continue
		}
		tm, ok := m.b.Topic(g.topic)
		if !ok {
			return nil
		}
		l, _ := m.n.rafts.Leader(PartitionGroupID(tm.ID, p))
		if l == 0 || seen != 0 && l != seen {
			return nil
		}
		seen = l
	}
	if m := g.c.members[seen]; m != nil && m.b != nil {
		return m
	}
	return nil
}

func (g *loadGen) run(p int32) {
	defer g.wg.Done()
	for i := 0; ; i++ {
		select {
		case <-g.stop:
			return
		default:
		}
		m := g.leader(p)
		if m == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		v := fmt.Sprintf("p%d-%d", p, i)
		type answer struct {
			res []broker.Result
			err error
		}
		ch := make(chan answer, 1)
		b := m.b
		go func() {
			res, err := b.Publish(g.topic, []broker.Message{{Value: []byte(v), Partition: p}})
			ch <- answer{res, err}
		}()
		var a answer
		select {
		case a = <-ch:
		case <-time.After(slowPublish):
			g.mu.Lock()
			g.slow = append(g.slow, fmt.Sprintf("%s through node %d", v, m.id))
			g.mu.Unlock()
			a = <-ch
		}
		g.mu.Lock()
		if a.err != nil {
			g.refused++
		} else {
			g.acked[p] = append(g.acked[p], ackedRecord{a.res[0].Offset, v})
		}
		g.mu.Unlock()
		if a.err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// count returns how many publishes were acknowledged so far.
func (g *loadGen) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, a := range g.acked {
		n += len(a)
	}
	return n
}

func (g *loadGen) halt() {
	close(g.stop)
	g.wg.Wait()
}

// check waits until every running member's log of every partition is the
// same and holds every acknowledged record at its offset, acknowledged
// offsets rising.
func (g *loadGen) check(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.slow) > 0 {
		t.Errorf("%d publishes waited over %v: %v", len(g.slow), slowPublish, g.slow[:min(len(g.slow), 5)])
	}
	for p := range g.parts {
		acked := g.acked[p]
		for k := 1; k < len(acked); k++ {
			if acked[k].offset <= acked[k-1].offset {
				t.Fatalf("partition %d: %s acknowledged at %d after %s at %d", p, acked[k].value, acked[k].offset, acked[k-1].value, acked[k-1].offset)
			}
		}
		eventually(t, fmt.Sprintf("partition %d alike everywhere with every acknowledged record", p), func() error {
			var ref []string
			var refID uint64
			for _, m := range g.c.members {
				if m.b == nil {
					continue
				}
				got := values(t, m.b, g.topic, p)
				if ref == nil {
					ref, refID = got, m.id
				} else if !slices.Equal(got, ref) {
					return fmt.Errorf("node %d reads %d records, node %d %d", m.id, len(got), refID, len(ref))
				}
				for _, a := range acked {
					if a.offset >= int64(len(got)) || got[a.offset] != a.value {
						return fmt.Errorf("node %d: acknowledged %s at %d missing (%d records)", m.id, a.value, a.offset, len(got))
					}
				}
			}
			return nil
		})
	}
}

// stopFaulty stops a member whose log failed: closing its broker reports
// the log's error.
func (c *testCluster) stopFaulty(m *member) {
	if err := m.n.Close(); err != nil {
		c.t.Error(err)
	}
	if err := m.b.Close(); err != nil {
		c.t.Logf("closing node %d's broker: %v", m.id, err)
	}
	m.st.Close()
	c.mu.Lock()
	m.n, m.b, m.st = nil, nil, nil
	c.mu.Unlock()
}

// TestDiskFailureOneReplica fails one node's partition logs under
// publishes: a torn write on a node that does not lead the metadata group,
// and an fsync error on the metadata leader (the subscriptions'
// coordinator, which then hands its leadership to another node).
func TestDiskFailureOneReplica(t *testing.T) {
	t.Run("write", func(t *testing.T) { testDiskFailure(t, vfs.OpFileWrite, false) })
	t.Run("fsync-on-coordinator", func(t *testing.T) { testDiskFailure(t, vfs.OpFileSync, true) })
}

func testDiskFailure(t *testing.T, kind vfs.OpKind, coordinator bool) {
	const parts = 3
	logs := map[uint64]*syncBuffer{}
	efs := map[uint64]*vfs.ErrorFS{}
	c := newTestClusterOf(&testCluster{t: t, setup: func(m *member) {
		logs[m.id], efs[m.id] = &syncBuffer{}, vfs.NewErrorFS(vfs.Default, nil)
		m.fs, m.logger = efs[m.id], slog.New(slog.NewTextHandler(logs[m.id], &slog.HandlerOptions{Level: slog.LevelInfo}))
	}}, 3)
	if err := retry(t, func() error {
		_, err := c.members[1].b.CreateTopic("orders", catalog.TopicConfig{Partitions: parts})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for p := range int32(parts) {
		c.leaderOf("orders", p)
	}
	// The failing node: one that leads a partition, and the metadata group
	// (the coordinator of subscriptions) or not.
	var bad *member
	for p := range int32(parts) {
		if m := c.leaderOf("orders", p); (m.n.MetaLeader() == m.id) == coordinator {
			bad = m
			break
		}
	}
	if bad == nil {
		m := c.leaderOf("orders", 0)
		if !coordinator {
			t.Fatal("the metadata leader leads every partition")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.members[m.n.MetaLeader()].n.TransferLeadership(ctx, m.id); err != nil {
			t.Fatal(err)
		}
		bad = m
	}
	tm, _ := bad.b.Topic("orders")
	var led []int32
	for p := range int32(parts) {
		if l, _ := bad.n.rafts.Leader(PartitionGroupID(tm.ID, p)); l == bad.id {
			led = append(led, p)
		}
	}
	load := startLoad(c, "orders", parts, func(m *member) bool { return m != bad })
	time.Sleep(500 * time.Millisecond)
	before := load.count()

	// Every write (torn: a random part of it is written) or sync of the
	// node's partition logs fails from now on.
	efs[bad.id].SetInjector(vfs.ShortWrite(vfs.All(vfs.OnKinds(kind), vfs.OnPathContains("/topics/orders-")), 1))
	t0 := time.Now()
	eventually(t, "the failing node's partition groups stop", func() error {
		for p := range int32(parts) {
			if _, ok := bad.n.rafts.Status(PartitionGroupID(tm.ID, p)); ok {
				return fmt.Errorf("partition %d still runs on node %d", p, bad.id)
			}
		}
		return nil
	})
	stopped := time.Since(t0)
	var newLeads []string
	for _, p := range led {
		lead := load.leader(p)
		for lead == nil || lead == bad {
			time.Sleep(10 * time.Millisecond)
			lead = load.leader(p)
		}
		newLeads = append(newLeads, fmt.Sprintf("%d: node %d", p, lead.id))
	}
	elected := time.Since(t0)
	atFault := load.count()
	eventually(t, "publishes acknowledged after the failure", func() error {
		if n := load.count(); n < atFault+100*parts {
			return fmt.Errorf("%d acknowledged since", n-atFault)
		}
		return nil
	})
	// The failed node says so: a log line, and its status.
	if !strings.Contains(logs[bad.id].String(), "raft group stopped") {
		t.Errorf("node %d logged no stopped group:\n%s", bad.id, logs[bad.id])
	}
	st := bad.n.Status()
	var roles []string
	for _, g := range st.Groups {
		if strings.HasPrefix(g.Name, "orders/") {
			roles = append(roles, g.Name+" "+g.Role)
			if g.Role != "stopped" || g.Leader != 0 {
				t.Errorf("node %d's status of %s: role %s, leader %d; want stopped, no leader", bad.id, g.Name, g.Role, g.Leader)
			}
		}
	}
	if len(roles) != parts {
		t.Errorf("node %d's status lists %v", bad.id, roles)
	}
	// What /readyz reports.
	if got, want := bad.n.FailedPartitions(), []string{"orders/0", "orders/1", "orders/2"}; !slices.Equal(got, want) {
		t.Errorf("node %d's failed partitions: %v, want %v", bad.id, got, want)
	}
	for _, m := range c.members {
		if m != bad && len(m.n.FailedPartitions()) > 0 {
			t.Errorf("node %d reports failed partitions %v", m.id, m.n.FailedPartitions())
		}
	}
	for _, p := range led {
		if _, err := bad.b.Publish("orders", []broker.Message{{Value: []byte("x"), Partition: p}}); err == nil {
			t.Errorf("node %d, its log failed, took a publish to partition %d", bad.id, p)
		}
	}
	handedOff := ""
	if coordinator {
		eventually(t, "the metadata leadership handed to another node", func() error {
			if l := bad.n.MetaLeader(); l == bad.id || l == 0 {
				return fmt.Errorf("node %d sees leader %d", bad.id, l)
			}
			return nil
		})
		handedOff = fmt.Sprintf("; the metadata leadership went to node %d within %v", bad.n.MetaLeader(), time.Since(t0).Round(time.Millisecond))
		if !strings.Contains(logs[bad.id].String(), "handing the metadata leadership") {
			t.Errorf("node %d did not log the hand-off", bad.id)
		}
	}
	// Restarted on a healthy disk, it recovers its log and catches up.
	c.stopFaulty(bad)
	efs[bad.id].SetInjector(nil)
	c.start(bad, nil)
	if failed := bad.n.FailedPartitions(); len(failed) > 0 {
		t.Errorf("node %d restarted on a healthy disk reports failed partitions %v", bad.id, failed)
	}
	time.Sleep(300 * time.Millisecond)
	load.halt()
	load.check(t)
	torn := 0
	for _, line := range strings.Split(logs[bad.id].String(), "\n") {
		if strings.Contains(line, "recovered partition") && strings.Contains(line, "torn_bytes_dropped") {
			torn++
		}
	}
	handedOff += fmt.Sprintf("; restarted, it cut %d torn tails and caught up", torn)
	t.Logf("%s failing on node %d (leading partitions %v): its groups stopped within %v, new leaders (%s) within %v%s; %d publishes acknowledged before, %d after the failure, %d refused (retried)",
		kind, bad.id, led, stopped.Round(time.Millisecond), strings.Join(newLeads, ", "), elected.Round(time.Millisecond), handedOff, before, load.count()-atFault, load.refused)
}

// TestStrayMessages: while node 1 is down, a process with its identity
// sends nodes 2 and 3 raft messages they must drop — for groups they do
// not have, addressed to another node, naming another sender, a partition
// snapshot without its data — and the cluster goes on undisturbed: same
// metadata term, publishes and catalog changes succeed, and node 1,
// restarted, catches up.
func TestStrayMessages(t *testing.T) {
	c := newTestCluster(t, 3)
	if err := retry(t, func() error {
		_, err := c.members[2].b.CreateTopic("orders", catalog.TopicConfig{Partitions: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.leaderOf("orders", 0)
	m1 := c.members[1]
	c.stop(m1)
	m2 := c.members[2]
	tm, _ := m2.b.Topic("orders")
	part := PartitionGroupID(tm.ID, 0)
	var metaTerm uint64
	eventually(t, "a metadata leader without node 1", func() error {
		st, _ := m2.n.rafts.Status(MetaGroup)
		if st.Lead == 0 || st.Lead == 1 {
			return fmt.Errorf("leader %d", st.Lead)
		}
		metaTerm = st.HardState.GetTerm()
		return nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := peer.New(peer.Config{Cluster: c.id.Cluster, Node: 1, Listener: ln, Peers: map[uint64]string{2: c.addrs[2], 3: c.addrs[3]},
		Handle: func(uint64, []peer.Envelope) {}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(typ raftpb.MessageType, from, to, term, index uint64) *raftpb.Message {
		return &raftpb.Message{Type: &typ, From: &from, To: &to, Term: &term, Index: &index, LogTerm: &term,
			Entries: []*raftpb.Entry{{Term: &term, Index: &index, Data: []byte("stray")}}}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sent := 0
	eventually(t, "stray messages sent", func() error {
		for _, to := range []uint64{2, 3} {
			var envs []peer.Envelope
			for range 50 {
				typ := raftpb.MessageType(rng.IntN(20))
				// A group the node does not have.
				envs = append(envs, peer.Envelope{Group: rng.Uint64() | 1<<62, Msg: msg(typ, 1, to, metaTerm+5, 100)})
				// The node's groups, but addressed to another node, or
				// naming another sender.
				envs = append(envs, peer.Envelope{Group: MetaGroup, Msg: msg(typ, 1, 5-to, metaTerm+5, 100)})
				envs = append(envs, peer.Envelope{Group: part, Msg: msg(raftpb.MsgApp, 5-to, to, 1<<40, 1)})
			}
			// A partition snapshot without its data.
			snap := msg(raftpb.MsgSnap, 1, to, metaTerm+5, 100)
			snap.Snapshot = &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(1000)), Term: new(metaTerm + 5)}}
			envs = append(envs, peer.Envelope{Group: part, Msg: snap})
			if !impostor.Send(to, envs...) {
				return fmt.Errorf("not connected to node %d yet", to)
			}
			sent += len(envs)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	impostor.Close()
	if st, _ := m2.n.rafts.Status(MetaGroup); st.HardState.GetTerm() != metaTerm || st.Lead == 0 {
		t.Errorf("the metadata group after the stray messages: term %d (was %d), leader %d", st.HardState.GetTerm(), metaTerm, st.Lead)
	}
	for _, id := range []uint64{2, 3} {
		for _, g := range []uint64{MetaGroup, part} {
			if err := c.members[id].n.rafts.Err(g); err != nil {
				t.Errorf("node %d: group %d stopped: %v", id, g, err)
			}
		}
	}
	if err := retry(t, func() error {
		_, err := c.members[3].b.CreateTopic("after", catalog.TopicConfig{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	lead := c.leaderOf("orders", 0)
	if _, err := lead.b.Publish("orders", []broker.Message{{Value: []byte("after"), Partition: 0}}); err != nil {
		t.Fatal(err)
	}
	c.start(m1, nil)
	c.sameCatalog(m2)
	eventually(t, "node 1 caught up", func() error {
		if got := values(t, m1.b, "orders", 0); !slices.Equal(got, []string{"after"}) {
			return fmt.Errorf("node 1 reads %q", got)
		}
		return nil
	})
	t.Logf("%d stray messages sent to nodes 2 and 3: dropped, the metadata term stayed %d", sent, metaTerm)
}

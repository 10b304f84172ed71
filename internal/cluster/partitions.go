package cluster

import (
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/multiraft"
	"github.com/spoolmq/spool/internal/partlog"
	"github.com/spoolmq/spool/internal/seglog"
)

// Partition groups: every partition of a cluster is a raft group whose
// log is the partition log itself (internal/partlog), run with raft's
// AsyncStorageWrites. Its voters are the partition's replicas, which the
// catalog records (replicas.go); every other node of the cluster is a
// learner, so that every node holds a readable copy of every partition
// (the subscription coordinator reads them locally). The replicas it was
// created with bootstrap it when they first open the partition; the
// others start it empty and wait for its leader, which adds them as
// learners. A partition created before replication factors has no
// recorded replicas: its voters are the nodes of the cluster at its
// creation, as it bootstrapped them. Its id is derived from the topic's id
// and the partition number.

// PartitionGroupID is the raft group of partition p of the topic with
// this id: never 0 (the metadata group).
func PartitionGroupID(topicID string, p int32) uint64 {
	h := fnv.New64a()
	h.Write([]byte(topicID))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(int(p))))
	return h.Sum64() | 1<<63
}

// Replicator returns what starts this node's partition groups, and makes
// the node send and receive their snapshots (snapshot.go).
func (n *Node) Replicator() broker.Replicator {
	n.startSnapshots()
	return replicator{n}
}

type replicator struct{ n *Node }

func (r replicator) StartPartition(topicID, topicName string, p int32, asg catalog.PartitionAssignment, log *seglog.Log, committed func(b []byte, term uint64)) (broker.PartitionGroup, error) {
	n := r.n
	id := PartitionGroupID(topicID, p)
	ps, err := partlog.Open(log, n.cfg.State, id)
	if err != nil {
		return nil, err
	}
	// The state machine — the read limit — holds every entry up to the
	// snapshot (and retention deleted only entries up to it); raft hands
	// back the committed entries after it.
	applied := max(min(ps.SnapshotIndex(), log.LastIndex()), log.FirstIndex()-1)
	off, err := log.OffsetAfterIndex(applied)
	if err != nil {
		return nil, err
	}
	log.SetReadLimit(off)
	var peers []raft.Peer
	switch {
	case len(asg.Initial) > 0:
		// Its first replicas bootstrap it with themselves, all alike.
		if slices.Contains(asg.Initial, n.cfg.Node) {
			for _, m := range asg.Initial {
				peers = append(peers, raft.Peer{ID: m})
			}
		}
	case !n.cfg.Join:
		members, err := n.members()
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			peers = append(peers, raft.Peer{ID: m})
		}
	}
	last, err := ps.LastIndex()
	if err != nil {
		return nil, err
	}
	err = n.rafts.AddGroupWith(id, multiraft.GroupConfig{Async: partStorage{ps}, StateMachine: partitionMachine{committed, log},
		Applied: applied, Peers: peers, Untagged: true})
	if err != nil {
		return nil, err
	}
	members, err := n.members()
	if err != nil {
		return nil, err
	}
	pref := preferredLeader(topicID, p, members)
	if len(asg.Voters) > 0 {
		pref = asg.Voters[0]
	}
	pi := partInfo{name: topicName + "/" + strconv.Itoa(int(p)), storage: ps, preferred: pref, asg: asg, topicID: topicID, p: p}
	if last == 0 && len(peers) > 0 && pref == n.cfg.Node {
		// A new partition: its preferred leader campaigns at once, so that
		// it has a leader within a round trip rather than an election
		// timeout; again every few ticks while there is none (the others
		// may not have created the group yet, and drop its votes).
		n.rafts.Report(id, func(rn *raft.RawNode) { _ = rn.Campaign() })
		pi.campaign = campaignTicks
	}
	n.mu.Lock()
	n.partitions[id] = pi
	n.mu.Unlock()
	return &partGroup{n: n, id: id}, nil
}

// members are the nodes of the cluster now: the initial ones and those
// registered since, but for removed ones.
func (n *Node) members() ([]uint64, error) {
	reg, err := loadRegistry(n.cfg.State)
	if err != nil {
		return nil, err
	}
	set := map[uint64]bool{}
	for id := range n.cfg.Members {
		set[id] = true
	}
	for _, ni := range reg {
		set[ni.ID] = !ni.Removed
	}
	var out []uint64
	for id, in := range set {
		if in {
			out = append(out, id)
		}
	}
	return out, nil
}

// partInfo is a partition group running on this node.
type partInfo struct {
	name      string // topic/partition
	storage   *partlog.Storage
	preferred uint64 // the member that should lead it (leader balancing)
	campaign  int    // ticks left to campaign for a new partition without a leader
	// asg is the partition's replicas as the catalog records them.
	asg     catalog.PartitionAssignment
	topicID string
	p       int32
	// changing: this node (its leader) has a configuration change of the
	// group in flight.
	changing bool
}

// campaignTicks is how long a new partition's preferred leader keeps
// campaigning while the group has no leader.
const campaignTicks = 20

// campaignNew campaigns again, every second tick, for new partitions this
// node prefers to lead that have no leader yet.
func (n *Node) campaignNew() {
	n.mu.Lock()
	var ids []uint64
	for id, pi := range n.partitions {
		if pi.campaign <= 0 {
			continue
		}
		pi.campaign--
		n.partitions[id] = pi
		if pi.campaign%2 == 0 {
			ids = append(ids, id)
		}
	}
	n.mu.Unlock()
	for _, id := range ids {
		if lead, _ := n.rafts.Leader(id); lead == 0 {
			n.rafts.Report(id, func(rn *raft.RawNode) {
				if rn.BasicStatus().Lead == 0 {
					_ = rn.Campaign()
				}
			})
		}
	}
}

// preferredLeader spreads the leaders of a topic's partitions over the
// members: partition p of a topic prefers the member at (hash(topic id) +
// p) mod n of the sorted members, so consecutive partitions rotate and
// topics start at different members.
func preferredLeader(topicID string, p int32, members []uint64) uint64 {
	if len(members) == 0 {
		return 0
	}
	ms := slices.Clone(members)
	slices.Sort(ms)
	h := fnv.New32a()
	h.Write([]byte(topicID))
	return ms[(uint64(h.Sum32())+uint64(p))%uint64(len(ms))]
}

// balanceLeaders hands the leadership of partitions this node leads to
// their preferred leader when that member is a caught-up, recently active
// voter: after a failover the leaders drift to the survivors, and this
// moves them back (as Kafka's preferred-leader election does). At most
// maxMoves per call.
func (n *Node) balanceLeaders(maxMoves int) {
	n.mu.Lock()
	type cand struct {
		id, to uint64
	}
	var cs []cand
	legacy := map[uint64]partInfo{}
	for id, pi := range n.partitions {
		switch {
		case len(pi.asg.Voters) == 0:
			legacy[id] = pi
		case pi.preferred != n.cfg.Node:
			cs = append(cs, cand{id, pi.preferred})
		}
	}
	n.mu.Unlock()
	// A partition without recorded replicas prefers one of its group's
	// voters (not a learner added since), spread as preferredLeader does.
	for id, pi := range legacy {
		if v, ok := n.rafts.View(id); ok && len(v.Voters) > 0 {
			if to := preferredLeader(pi.topicID, pi.p, v.Voters); to != n.cfg.Node {
				cs = append(cs, cand{id, to})
			}
		}
	}
	moved := 0
	for _, c := range cs {
		if moved >= maxMoves {
			return
		}
		st, ok := n.rafts.Status(c.id)
		if !ok || st.RaftState != raft.StateLeader {
			continue
		}
		if _, voter := st.Config.Voters.IDs()[c.to]; !voter || len(st.Config.Voters[1]) > 0 {
			continue
		}
		pr, ok := st.Progress[c.to]
		if !ok || pr.Match < st.HardState.GetCommit() || !pr.RecentActive {
			continue
		}
		n.rafts.TransferLeadership(c.id, c.to)
		moved++
	}
}

type partGroup struct {
	n  *Node
	id uint64
}

func (g *partGroup) Propose(b []byte, dropped func(error)) error {
	err := g.n.rafts.ProposeUntaggedAsync(g.id, b, dropped)
	if errors.Is(err, multiraft.ErrStopped) {
		return errs.New(errs.Unavailable, "the partition's group is not running on this node")
	}
	return err
}

func (g *partGroup) Leader() (lead, term uint64, self bool) {
	lead, term = g.n.rafts.Leader(g.id)
	return lead, term, lead == g.n.cfg.Node
}

func (g *partGroup) NodeAddr(id uint64) string { return g.n.nodeAddr(id) }

func (g *partGroup) SetAssignment(asg catalog.PartitionAssignment) {
	g.n.mu.Lock()
	defer g.n.mu.Unlock()
	pi, ok := g.n.partitions[g.id]
	if !ok {
		return
	}
	pi.asg = asg
	if len(asg.Voters) > 0 {
		pi.preferred = asg.Voters[0]
	}
	g.n.partitions[g.id] = pi
	g.n.cfg.Logger.Info("partition reassigned", "partition", pi.name, "replicas", asg.Voters)
}

func (g *partGroup) Replicas() (voters, inSync, learners []uint64) {
	return g.n.partitionReplicas(g.id)
}

func (g *partGroup) Stop() {
	g.n.rafts.RemoveGroup(g.id)
	g.n.mu.Lock()
	delete(g.n.partitions, g.id)
	g.n.mu.Unlock()
}

// partitionMachine hands committed record batches to the broker.
type partitionMachine struct {
	committed func(b []byte, term uint64)
	log       *seglog.Log
}

func (m partitionMachine) Apply(ents []multiraft.Entry) ([]error, error) {
	for _, e := range ents {
		m.committed(e.Data, e.Term)
	}
	return nil, nil
}

// Stopped tells the broker that the group stopped on this node (its log
// failed): nothing it waits for will commit here.
func (m partitionMachine) Stopped(error) { m.committed(nil, 0) }

// Restore follows a snapshot installed in the log (partlog): everything up
// to its index is committed, so readers see it.
func (m partitionMachine) Restore(snap *raftpb.Snapshot) error {
	off, err := m.log.OffsetAfterIndex(snap.GetMetadata().GetIndex())
	if err != nil {
		return err
	}
	m.log.SetReadLimit(off)
	return nil
}

// partStorage adapts a partition log's raft storage to the driver.
type partStorage struct{ *partlog.Storage }

func (p partStorage) AppendAsync(m *raftpb.Message) (multiraft.AsyncWrite, error) {
	w, err := p.Append(m)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// PartitionLeader returns the leader of a partition's group as this node
// last saw it (0: none) and its term.
func (n *Node) PartitionLeader(topicID string, p int32) (lead, term uint64) {
	return n.rafts.Leader(PartitionGroupID(topicID, p))
}

// MetaLeader returns the metadata group's leader as this node last saw it
// (0: none).
func (n *Node) MetaLeader() uint64 {
	lead, _ := n.rafts.Leader(MetaGroup)
	return lead
}

// Coordinator returns the node that coordinates subscriptions — the
// metadata leader — and its native API address (broker.MetaLog).
func (n *Node) Coordinator() (id uint64, addr string) {
	id = n.MetaLeader()
	if id == 0 {
		return 0, ""
	}
	return id, n.nodeAddr(id)
}

// InQuorumContact reports whether this node heard from a majority of the
// cluster's members (itself included) within the last five ticks. A
// metadata leader cut off from the others goes on believing it leads
// until check-quorum makes it step down, an election timeout later; what
// it serves from memory alone (Kafka's committed offsets) it serves only
// while this holds: the others elect a new leader only after hearing
// nothing from it for an election timeout (10 ticks or more), so a node
// that heard a majority within 5 ticks is still the only leader (a lease,
// counted in this node's ticks).
func (n *Node) InQuorumContact() bool {
	members, err := n.members()
	if err != nil {
		return false
	}
	window := 5 * n.cfg.Tick
	heard := 0
	for _, ps := range n.transport.Status() {
		if slices.Contains(members, ps.ID) && !ps.LastHeard.IsZero() && time.Since(ps.LastHeard) < window {
			heard++
		}
	}
	if slices.Contains(members, n.cfg.Node) {
		heard++
	}
	return 2*heard > len(members)
}

// nodeAddr returns the native API address node id advertises ("":
// unknown).
func (n *Node) nodeAddr(id uint64) string {
	reg, err := loadRegistry(n.cfg.State)
	if err != nil {
		return ""
	}
	for _, ni := range reg {
		if ni.ID == id && !ni.Removed {
			return ni.HTTPAddr
		}
	}
	return ""
}

// Members returns the cluster's nodes (initial and registered, not
// removed), by id.
func (n *Node) Members() ([]uint64, error) {
	m, err := n.members()
	slices.Sort(m)
	return m, err
}

package cluster

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/multiraft"
)

// Replicas. A topic has a replication factor (1, 3 or 5; default 3 with
// at least three nodes), and each partition as many replicas: the voters
// of its raft group. Every other node of the cluster is a learner of the
// group (it receives the log, counts for no quorum), so that whichever
// node coordinates subscriptions reads every partition from its own copy.
//
// The node that builds a catalog change creating partitions chooses their
// replicas (Place) and the change records them, so that every node applies
// the same. The leader of each partition's group then keeps the group as
// the catalog and the cluster's membership say (reconcile): it adds the
// nodes that hold no copy yet as learners, removes removed nodes, and
// moves the voters to the replicas the catalog records — one configuration
// change at a time, promoting a learner only once it has caught up, with
// joint consensus (left automatically) when voters are added and removed
// at once, and handing its leadership to a replica first when it is to
// stop being one.

// Place chooses the replicas of partitions [from, to) of a topic, spread
// as Kafka's rack-unaware assignment does: over the nodes sorted by id,
// partition p's first replica (its preferred leader) is the node at
// (start + p) mod n, and the others follow it at a distance that shifts
// every n partitions; start and the shift come from the topic's id.
func (r replicator) Place(topicID string, replicas int32, from, to int32) (int32, []catalog.PartitionAssignment, error) {
	members, err := r.n.Members()
	if err != nil {
		return 0, nil, errs.Wrap(errs.StorageFailed, err, "read the cluster's members")
	}
	if err := catalog.ValidateReplicationFactor(replicas, len(members)); err != nil {
		return 0, nil, err
	}
	if replicas == 0 {
		replicas = catalog.DefaultReplicationFactor(len(members))
	}
	return replicas, placeReplicas(topicID, members, int(replicas), from, to), nil
}

// placeReplicas is Place's assignment over members (sorted).
func placeReplicas(topicID string, members []uint64, rf int, from, to int32) []catalog.PartitionAssignment {
	n := len(members)
	h := fnv.New64a()
	h.Write([]byte(topicID))
	sum := h.Sum64()
	start := int(sum % uint64(n))
	shift0 := 0
	if n > 1 {
		shift0 = int((sum / uint64(n)) % uint64(n-1))
	}
	out := make([]catalog.PartitionAssignment, 0, to-from)
	for p := int(from); p < int(to); p++ {
		first := (start + p) % n
		voters := []uint64{members[first]}
		if n > 1 {
			shift := (shift0 + p/n) % (n - 1)
			for j := 1; j < rf; j++ {
				voters = append(voters, members[(first+1+(shift+j-1)%(n-1))%n])
			}
		}
		out = append(out, catalog.PartitionAssignment{Voters: voters, Initial: slices.Clone(voters)})
	}
	return out
}

// CheckReplicas checks that every node listed is a node of the cluster.
func (r replicator) CheckReplicas(voters []uint64) error {
	members, err := r.n.Members()
	if err != nil {
		return errs.Wrap(errs.StorageFailed, err, "read the cluster's members")
	}
	reg, err := loadRegistry(r.n.cfg.State)
	if err != nil {
		return errs.Wrap(errs.StorageFailed, err, "read the node registry")
	}
	for _, v := range voters {
		if slices.Contains(members, v) {
			continue
		}
		for _, ni := range reg {
			if ni.ID == v && ni.Removed {
				return errs.New(errs.InvalidArgument, "node %d was removed from the cluster", v)
			}
		}
		return errs.New(errs.InvalidArgument, "node %d is not a node of the cluster (its nodes: %v)", v, members)
	}
	return nil
}

// partitionReplicas returns a partition group's voters, those in sync (on
// its leader, what it sees; elsewhere the voters) and its learners.
func (n *Node) partitionReplicas(id uint64) (voters, inSync, learners []uint64) {
	v, ok := n.rafts.View(id)
	if !ok {
		return nil, nil, nil
	}
	if v.Leader {
		return v.Voters, v.InSync, v.Learners
	}
	return v.Voters, v.Voters, v.Learners
}

// PartitionGroupReplicas returns partition p of the topic with this id's
// voters, those in sync and its learners (partitionReplicas).
func (n *Node) PartitionGroupReplicas(topicID string, p int32) (voters, inSync, learners []uint64) {
	return n.partitionReplicas(PartitionGroupID(topicID, p))
}

// PartitionReplicas is a partition's replicas as this node sees them.
type PartitionReplicas struct {
	Leader, Term             uint64
	Voters, InSync, Learners []uint64
	Offline                  []uint64 // voters this node is not connected to
}

// PartitionReplicas returns partition p of the topic with this id as this
// node sees it.
func (n *Node) PartitionReplicas(topicID string, p int32) PartitionReplicas {
	id := PartitionGroupID(topicID, p)
	var pr PartitionReplicas
	pr.Leader, pr.Term = n.rafts.Leader(id)
	pr.Voters, pr.InSync, pr.Learners = n.partitionReplicas(id)
	connected := map[uint64]bool{n.cfg.Node: true}
	for _, ps := range n.transport.Status() {
		connected[ps.ID] = ps.Connected
	}
	for _, v := range pr.Voters {
		if !connected[v] {
			pr.Offline = append(pr.Offline, v)
		}
	}
	// A leader whose group is quiet (quiesced) does not look again: a
	// voter it cannot reach is not in sync.
	pr.InSync = slices.DeleteFunc(slices.Clone(pr.InSync), func(v uint64) bool { return slices.Contains(pr.Offline, v) })
	return pr
}

// reconcileTicks is how often (in ticks: 1 s by default) a node checks the
// configuration of the partition groups it leads, and maxReconcile how
// many changes it starts per check.
const (
	reconcileTicks = 10
	maxReconcile   = 16
	// confChangeTimeout bounds the wait for one configuration change.
	confChangeTimeout = 5 * time.Second
)

// reconcilePartitions, for the partition groups this node leads, makes
// one step towards the configuration the catalog and the membership want
// (at most maxReconcile groups per call).
func (n *Node) reconcilePartitions() {
	members, err := n.members()
	if err != nil {
		return
	}
	slices.Sort(members)
	type cand struct {
		id  uint64
		asg catalog.PartitionAssignment
	}
	var cs []cand
	n.mu.Lock()
	for id, pi := range n.partitions {
		if !pi.changing {
			cs = append(cs, cand{id, pi.asg})
		}
	}
	n.mu.Unlock()
	started := 0
	for _, c := range cs {
		if started >= maxReconcile {
			return
		}
		if lead, _ := n.rafts.Leader(c.id); lead != n.cfg.Node {
			continue
		}
		v, ok := n.rafts.View(c.id)
		if !ok || !v.Leader || v.Joint {
			continue
		}
		cc, transfer := n.planChange(c.id, v, c.asg.Voters, members)
		switch {
		case transfer != 0:
			n.rafts.TransferLeadership(c.id, transfer)
			started++
		case cc != nil:
			n.startConfChange(c.id, cc)
			started++
		}
	}
}

// planChange returns the next configuration change of a group this node
// leads (nil: none), or a node to hand the leadership to first.
func (n *Node) planChange(id uint64, v multiraft.View, target, members []uint64) (*raftpb.ConfChangeV2, uint64) {
	single := func(t raftpb.ConfChangeType, node uint64) *raftpb.ConfChangeV2 {
		return &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: t.Enum(), NodeId: new(node)}}}
	}
	// Removed nodes that are learners leave; removed voters leave with
	// the voters' change below (the metadata leader reassigns them).
	for _, l := range v.Learners {
		if !slices.Contains(members, l) && !slices.Contains(target, l) {
			return single(raftpb.ConfChangeRemoveNode, l), 0
		}
	}
	// Nodes without a copy become learners.
	for _, m := range members {
		if !slices.Contains(v.Voters, m) && !slices.Contains(v.Learners, m) {
			return single(raftpb.ConfChangeAddLearnerNode, m), 0
		}
	}
	if len(target) == 0 || sameSet(target, v.Voters) {
		return nil, 0
	}
	var add, drop []uint64
	for _, t := range target {
		if !slices.Contains(v.Voters, t) {
			if !slices.Contains(v.Learners, t) {
				return nil, 0 // not a node of the cluster (yet): nothing to promote
			}
			add = append(add, t)
		}
	}
	for _, c := range v.Voters {
		if !slices.Contains(target, c) {
			drop = append(drop, c)
		}
	}
	if len(add) > 0 {
		// Promote only learners that have caught up.
		st, ok := n.rafts.Status(id)
		if !ok {
			return nil, 0
		}
		for _, a := range add {
			if pr, ok := st.Progress[a]; !ok || pr.Match < st.HardState.GetCommit() || pr.State != tracker.StateReplicate {
				return nil, 0
			}
		}
	}
	selfDropped := slices.Contains(drop, n.cfg.Node)
	if selfDropped && len(add) == 0 {
		// Hand the leadership to a replica that stays, then let it finish.
		for _, t := range target {
			if slices.Contains(v.InSync, t) {
				return nil, t
			}
		}
		return nil, 0
	}
	cc := &raftpb.ConfChangeV2{}
	for _, a := range add {
		cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: new(a)})
	}
	if !selfDropped {
		for _, d := range drop {
			t := raftpb.ConfChangeAddLearnerNode // demoted: it keeps a copy
			if !slices.Contains(members, d) {
				t = raftpb.ConfChangeRemoveNode
			}
			cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: t.Enum(), NodeId: new(d)})
		}
	}
	return cc, 0
}

// startConfChange proposes cc to a partition group this node leads and
// waits (in the background, at most confChangeTimeout) until it applied it.
func (n *Node) startConfChange(id uint64, cc *raftpb.ConfChangeV2) {
	n.mu.Lock()
	pi, ok := n.partitions[id]
	if !ok || pi.changing {
		n.mu.Unlock()
		return
	}
	pi.changing = true
	n.partitions[id] = pi
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), confChangeTimeout)
		defer cancel()
		go func() {
			select {
			case <-n.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := n.rafts.ProposeConfChange(ctx, id, cc)
		n.mu.Lock()
		pi, ok := n.partitions[id]
		if ok {
			pi.changing = false
			n.partitions[id] = pi
		}
		n.mu.Unlock()
		switch {
		case err == nil:
			n.cfg.Logger.Info("partition group changed", "partition", pi.name, "changes", describeChanges(cc))
		case errors.Is(err, raft.ErrProposalDropped), errors.Is(err, context.Canceled):
		default:
			n.cfg.Logger.Debug("partition group change not applied", "partition", pi.name, "changes", describeChanges(cc), "err", err)
		}
	}()
}

func describeChanges(cc *raftpb.ConfChangeV2) []string {
	var out []string
	for _, c := range cc.GetChanges() {
		var what string
		switch c.GetType() {
		case raftpb.ConfChangeAddNode:
			what = "voter"
		case raftpb.ConfChangeAddLearnerNode:
			what = "learner"
		default:
			what = "removed"
		}
		out = append(out, what+":"+strconv.FormatUint(c.GetNodeId(), 10))
	}
	return out
}

func sameSet(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// reassignAway reassigns every partition whose replicas include node id
// (about to be removed) to another node, and waits (until ctx ends) for
// the partition groups this node holds to drop it as a voter. A partition
// on a cluster with no other node to take it keeps its other replicas.
func (n *Node) reassignAway(ctx context.Context, id uint64) error {
	n.mu.Lock()
	b := n.broker
	n.mu.Unlock()
	if b == nil {
		return nil
	}
	members, err := n.Members()
	if err != nil {
		return err
	}
	members = slices.DeleteFunc(members, func(m uint64) bool { return m == id })
	// Prefer the nodes this node is connected to (a node added but not
	// started yet would hold the partition back).
	connected := []uint64{n.cfg.Node}
	for _, ps := range n.transport.Status() {
		if ps.Connected && slices.Contains(members, ps.ID) {
			connected = append(connected, ps.ID)
		}
	}
	slices.Sort(connected)
	var wait []uint64
	for _, t := range b.Topics() {
		var rs []broker.Reassignment
		for p := range t.Config.Partitions {
			gid := PartitionGroupID(t.ID, p)
			voters := t.AssignmentOf(p).Voters
			if len(voters) == 0 {
				voters, _, _ = n.partitionReplicas(gid)
			}
			if !slices.Contains(voters, id) {
				continue
			}
			next := replaceReplica(voters, id, connected, int(p))
			if len(next) < len(voters) {
				next = replaceReplica(voters, id, members, int(p))
			}
			rs = append(rs, broker.Reassignment{Partition: p, Voters: next})
			wait = append(wait, gid)
		}
		if len(rs) == 0 {
			continue
		}
		if err := b.MoveReplicas(t.Name, rs); err != nil && !errs.Is(err, errs.TopicNotFound) {
			return err
		}
		n.cfg.Logger.Info("partitions reassigned away from a node being removed", "topic", t.Name, "node", id, "partitions", len(rs))
	}
	for _, gid := range wait {
		for {
			voters, _, _ := n.partitionReplicas(gid)
			if !slices.Contains(voters, id) {
				break
			}
			select {
			case <-ctx.Done():
				n.cfg.Logger.Warn("a partition group still has the node being removed as a voter; it leaves once the group's leader catches up the new replica", "node", id)
				return nil
			case <-time.After(5 * n.cfg.Tick):
			}
		}
	}
	return nil
}

// replaceReplica returns voters with id replaced by a member that is not a
// replica yet (chosen by p, to spread them), or without id if there is
// none.
func replaceReplica(voters []uint64, id uint64, members []uint64, p int) []uint64 {
	var free []uint64
	for _, m := range members {
		if !slices.Contains(voters, m) {
			free = append(free, m)
		}
	}
	out := make([]uint64, 0, len(voters))
	for _, v := range voters {
		switch {
		case v != id:
			out = append(out, v)
		case len(free) > 0:
			out = append(out, free[p%len(free)])
		}
	}
	return out
}

// reassignRemoved, on the metadata leader, reassigns the partitions whose
// replicas include a node that was removed (a removal that did not finish
// reassigning them), in the background, one pass at a time.
func (n *Node) reassignRemoved() {
	if lead, _ := n.rafts.Leader(MetaGroup); lead != n.cfg.Node {
		return
	}
	n.mu.Lock()
	b := n.broker
	if b == nil || n.reassigning {
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()
	reg, err := loadRegistry(n.cfg.State)
	if err != nil {
		return
	}
	var stale []uint64
	for _, ni := range reg {
		if ni.Removed && n.hostsReplicas(b, ni.ID) {
			stale = append(stale, ni.ID)
		}
	}
	if len(stale) == 0 {
		return
	}
	n.mu.Lock()
	n.reassigning = true
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for _, id := range stale {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // no waiting: the next pass looks again
			if err := n.reassignAway(ctx, id); err != nil {
				n.cfg.Logger.Warn("reassigning the partitions of a removed node", "node", id, "err", err)
			}
		}
		n.mu.Lock()
		n.reassigning = false
		n.mu.Unlock()
	}()
}

// hostsReplicas reports whether node id is a replica of a partition: by
// the catalog, or for partitions without recorded replicas by their
// group's configuration here.
func (n *Node) hostsReplicas(b *broker.Broker, id uint64) bool {
	for _, t := range b.Topics() {
		for p := range t.Config.Partitions {
			voters := t.AssignmentOf(p).Voters
			if len(voters) == 0 {
				voters, _, _ = n.partitionReplicas(PartitionGroupID(t.ID, p))
			}
			if slices.Contains(voters, id) {
				return true
			}
		}
	}
	return false
}

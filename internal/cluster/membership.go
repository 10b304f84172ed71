package cluster

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/spoolmq/spool/internal/errs"
)

// Membership of the metadata group: one configuration change at a time.
// A node is added as a learner (it receives the log but does not vote),
// and the leader promotes it to a voter once it has caught up, so that a
// new node that is slow to start never counts against the quorum. A
// removed node's id is recorded as removed in the registry before the
// configuration change, so that its data directory never rejoins.

// AddNode adds node id, reachable for raft at clusterAddr, as a learner of
// the metadata group; start it with --join. It returns once the change is
// applied on this node.
func (n *Node) AddNode(ctx context.Context, id uint64, clusterAddr string) error {
	if id == 0 {
		return errs.New(errs.InvalidArgument, "node id 0 is reserved")
	}
	st, ok := n.rafts.Status(MetaGroup)
	if !ok {
		return errs.New(errs.Unavailable, "the metadata group is not running on this node")
	}
	if _, member := st.Config.Voters.IDs()[id]; member {
		return errs.New(errs.FailedPrecondition, "node %d is already a member of the cluster", id)
	}
	if _, learner := st.Config.Learners[id]; learner {
		return errs.New(errs.FailedPrecondition, "node %d is already being added (a learner catching up)", id)
	}
	if err := n.Commit(ctx, encodeNodeChange(changePutNode, NodeInfo{ID: id, ClusterAddr: clusterAddr})); err != nil {
		return err
	}
	return n.confChange(ctx, raftpb.ConfChangeAddLearnerNode, id)
}

// reassignWait bounds how long RemoveNode waits for the partitions of the
// node to move to others (and so does the caller's deadline, less 5 s for
// the removal itself).
const reassignWait = 20 * time.Second

// RemoveNode removes node id from the cluster for good: the partitions it
// is a replica of are reassigned to other nodes first (it waits up to
// reassignWait for their groups to make the change), then it leaves the
// registry and the metadata group, and the partition groups' leaders
// remove it from theirs.
func (n *Node) RemoveNode(ctx context.Context, id uint64) error {
	st, ok := n.rafts.Status(MetaGroup)
	if !ok {
		return errs.New(errs.Unavailable, "the metadata group is not running on this node")
	}
	_, voter := st.Config.Voters.IDs()[id]
	_, learner := st.Config.Learners[id]
	if !voter && !learner {
		return errs.New(errs.InvalidArgument, "node %d is not a member of the cluster", id)
	}
	if voter && len(st.Config.Voters.IDs()) <= 1 {
		return errs.New(errs.FailedPrecondition, "node %d is the cluster's last voter", id)
	}
	// Its partitions move to other nodes first, while it can still hand
	// them over (a partition whose only replica it is has no other way).
	wait := reassignWait
	if dl, ok := ctx.Deadline(); ok {
		// Leave time for the removal itself.
		wait = min(wait, time.Until(dl)-5*time.Second)
	}
	wctx, cancel := context.WithTimeout(ctx, max(wait, 0))
	err := n.reassignAway(wctx, id)
	cancel()
	if err != nil {
		return err
	}
	if err := n.Commit(ctx, encodeNodeChange(changeRemoveNode, NodeInfo{ID: id})); err != nil {
		return err
	}
	n.letLearn(ctx, id)
	return n.confChange(ctx, raftpb.ConfChangeRemoveNode, id)
}

// letLearn gives node id, if it is up, the chance to apply what this node
// committed so far before the configuration change that stops the leader
// from sending it anything: on the leader, it waits (at most 3 s) until
// id has the entries and then for ten heartbeats (at least half a
// second), which carry the commit index. Elsewhere, or for a node that does not answer, it returns; the
// removed node then does not know it was removed, and its peers ignore it.
func (n *Node) letLearn(ctx context.Context, id uint64) {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		st, ok := n.rafts.Status(MetaGroup)
		if !ok || st.RaftState != raft.StateLeader {
			return
		}
		if pr, ok := st.Progress[id]; ok && pr.Match >= st.HardState.GetCommit() {
			time.Sleep(max(10*n.cfg.Tick, 500*time.Millisecond))
			return
		}
		time.Sleep(n.cfg.Tick)
	}
}

func (n *Node) confChange(ctx context.Context, t raftpb.ConfChangeType, id uint64) error {
	cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: t.Enum(), NodeId: new(id)}}}
	err := n.rafts.ProposeConfChange(ctx, MetaGroup, cc)
	if errors.Is(err, raft.ErrProposalDropped) {
		return errs.New(errs.Unavailable, "the configuration change was refused: another one is in progress, or there is no leader; retry")
	}
	return n.mapErr(err)
}

// TransferLeadership asks the metadata group's leader to hand its
// leadership to node to, and waits until it has (or ctx ends).
func (n *Node) TransferLeadership(ctx context.Context, to uint64) error {
	st, ok := n.rafts.Status(MetaGroup)
	if !ok {
		return errs.New(errs.Unavailable, "the metadata group is not running on this node")
	}
	if _, voter := st.Config.Voters.IDs()[to]; !voter {
		return errs.New(errs.InvalidArgument, "node %d is not a voter of the cluster", to)
	}
	for {
		if st.Lead == to {
			return nil
		}
		n.rafts.TransferLeadership(MetaGroup, to)
		select {
		case <-ctx.Done():
			return errs.New(errs.Unavailable, "node %d did not take the leadership in time (is it caught up and reachable?)", to)
		case <-time.After(5 * n.cfg.Tick):
		}
		if st, ok = n.rafts.Status(MetaGroup); !ok {
			return errs.New(errs.Unavailable, "the metadata group stopped on this node")
		}
	}
}

// maybePromote, on the metadata leader, promotes one learner that has
// caught up with the commit index to a voter.
func (n *Node) maybePromote() {
	n.mu.Lock()
	if !n.started || n.promoting {
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()
	st, ok := n.rafts.Status(MetaGroup)
	if !ok || st.RaftState != raft.StateLeader {
		return
	}
	for id := range st.Config.Learners {
		if pr, ok := st.Progress[id]; !ok || pr.Match < st.HardState.GetCommit() {
			continue
		}
		n.mu.Lock()
		n.promoting = true
		n.mu.Unlock()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.confChange(ctx, raftpb.ConfChangeAddNode, id); err != nil {
				n.cfg.Logger.Warn("cluster: promoting a caught-up learner", "node", id, "err", err)
			} else {
				n.cfg.Logger.Info("cluster: node promoted to voter", "node", id)
			}
			n.mu.Lock()
			n.promoting = false
			n.mu.Unlock()
		}()
		return
	}
}

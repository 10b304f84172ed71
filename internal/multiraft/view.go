package multiraft

import (
	"maps"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/quorum"
	"go.etcd.io/raft/v3/tracker"
)

// View is a group's configuration as of its last processing on this
// node, and on its leader the voters in sync.
type View struct {
	Voters   []uint64 // sorted; in a joint configuration, both halves'
	Learners []uint64 // sorted (and those about to become learners)
	Joint    bool     // a configuration change in progress
	// InSync, on the leader, are the voters it sees caught up: itself and
	// those it replicates to (not probed after a refusal or an unreachable
	// report, not taking a snapshot); nil elsewhere.
	InSync []uint64
	Leader bool // made on the group's leader
}

// View returns group id's view; false for a group unknown here.
func (n *Node) View(id uint64) (View, bool) {
	n.mu.Lock()
	g := n.groups[id]
	n.mu.Unlock()
	if g == nil {
		return View{}, false
	}
	if v := g.view.Load(); v != nil {
		return *v, true
	}
	return View{}, false
}

// updateView refreshes the group's view when its configuration or, on its
// leader, the voters in sync changed (on the group's worker).
func (n *Node) updateView(g *group, leader bool) {
	old := g.view.Load()
	if !g.confNew && !leader && (old == nil || !old.Leader) {
		return
	}
	v := View{Leader: leader}
	if g.confNew || old == nil {
		c := g.rn.Status().Config
		v.Voters = slices.Sorted(maps.Keys(c.Voters.IDs()))
		v.Learners = quorum.MajorityConfig(c.Learners).Slice()
		v.Learners = append(v.Learners, quorum.MajorityConfig(c.LearnersNext).Slice()...)
		slices.Sort(v.Learners)
		v.Learners = slices.Compact(v.Learners)
		v.Joint = len(c.Voters[1]) > 0
		g.confNew = false
	} else {
		v.Voters, v.Learners, v.Joint = old.Voters, old.Learners, old.Joint
	}
	if leader {
		g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			// Not RecentActive: check-quorum clears it every election
			// timeout until the next answer, which would make the set
			// flap. A follower that stops answering is probed again.
			if !pr.IsLearner && (id == n.cfg.ID || pr.State == tracker.StateReplicate) {
				v.InSync = append(v.InSync, id)
			}
		})
		slices.Sort(v.InSync)
	}
	if old != nil && old.Leader == v.Leader && old.Joint == v.Joint && slices.Equal(old.Voters, v.Voters) &&
		slices.Equal(old.Learners, v.Learners) && slices.Equal(old.InSync, v.InSync) {
		return
	}
	g.view.Store(&v)
}

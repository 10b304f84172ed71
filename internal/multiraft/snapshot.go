package multiraft

import (
	"go.etcd.io/raft/v3/quorum"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// maybeSnapshot snapshots a synchronous group's state machine and compacts
// its log once enough entries were applied since the last snapshot. A
// failure is logged and tried again after as many entries: the log only
// grows meanwhile.
func (n *Node) maybeSnapshot(g *group) {
	every, keep := n.cfg.SnapshotEntries, n.cfg.SnapshotKeep
	if every == 0 {
		every = 10_000
	}
	if keep == 0 {
		keep = 2_000
	}
	if every < 0 || g.applied < g.snapIndex+uint64(every) {
		return
	}
	sn, ok := g.sm.(Snapshotter)
	c, ok2 := g.storage.(Compactor)
	if !ok || !ok2 {
		return
	}
	i := g.applied
	g.snapIndex = i // success or not, wait for as many entries again
	data, err := sn.SnapshotData()
	if err == nil {
		err = c.CompactKeep(i, confStateOf(g.rn.Status().Config), data, uint64(max(keep, 0)))
	}
	if err != nil {
		n.cfg.Logger.Error("raft: snapshot and log compaction failed; the log keeps growing until the next attempt", "group", g.id, "index", i, "err", err)
		return
	}
	n.cfg.Logger.Debug("raft: snapshot taken and log compacted", "group", g.id, "index", i, "bytes", len(data))
}

// freshenSnapshot replaces the stored snapshot a MsgSnap carries with one
// of the state machine as of now (the last applied entry, with the
// configuration now): the stored one may predate the follower it goes to
// (a node added since, which raft refuses to restore into a configuration
// without it), and a newer one leaves it less to catch up. Runs on the
// group's worker, which alone applies entries, so data and index agree.
func (n *Node) freshenSnapshot(g *group, m *raftpb.Message) {
	sn, ok := g.sm.(Snapshotter)
	if !ok || g.storage == nil || g.applied <= m.GetSnapshot().GetMetadata().GetIndex() {
		return
	}
	term, err := g.log.Term(g.applied)
	if err != nil {
		return
	}
	data, err := sn.SnapshotData()
	if err != nil {
		n.cfg.Logger.Error("raft: snapshot for a follower failed; sending the stored one", "group", g.id, "err", err)
		return
	}
	m.Snapshot = &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{
		Index: new(g.applied), Term: new(term), ConfState: confStateOf(g.rn.Status().Config)}}
}

// confStateOf is the configuration as a snapshot records it.
func confStateOf(c tracker.Config) *raftpb.ConfState {
	return &raftpb.ConfState{
		Voters:         c.Voters[0].Slice(),
		VotersOutgoing: c.Voters[1].Slice(),
		Learners:       quorum.MajorityConfig(c.Learners).Slice(),
		LearnersNext:   quorum.MajorityConfig(c.LearnersNext).Slice(),
		AutoLeave:      new(c.AutoLeave),
	}
}

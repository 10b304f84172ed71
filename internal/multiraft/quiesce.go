package multiraft

import (
	"github.com/spoolmq/spool/internal/peer"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// maybeQuiesce quiesces a leader's group when every follower has all of
// its log and its commit, nothing is pending and the group has not
// changed since it started to check: it tells the followers with a
// heartbeat marked quiesce, and stops ticking. Anything that happens to
// the group afterwards wakes it on every node.
func (n *Node) maybeQuiesce(g *group) {
	n.mu.Lock()
	already := g.quiesced
	n.mu.Unlock()
	if already {
		return
	}
	st := g.rn.Status()
	last, err := g.log.LastIndex()
	if err != nil || st.RaftState != raft.StateLeader || st.HardState.GetCommit() != last || st.Applied != last ||
		st.LeadTransferee != 0 || len(g.waiting) > 0 {
		return
	}
	for id, pr := range st.Progress {
		if id != n.cfg.ID && pr.Match != last {
			return
		}
	}
	if len(st.Config.Voters[1]) > 0 {
		return // a joint configuration, about to be left
	}
	n.mu.Lock()
	if g.busy || len(g.inbox) > 0 || len(g.props) > 0 {
		n.mu.Unlock()
		return
	}
	g.quiesced = true
	g.voters = g.voters[:0]
	for id := range st.Config.Voters.IDs() {
		g.voters = append(g.voters, id)
	}
	n.mu.Unlock()
	for id := range st.Progress {
		if id == n.cfg.ID {
			continue
		}
		m := &raftpb.Message{Type: new(raftpb.MsgHeartbeat), To: new(id), From: new(n.cfg.ID), Term: new(st.HardState.GetTerm()),
			Commit: new(last), Context: quiesceContext}
		n.cfg.Sender.Send(id, peer.Envelope{Group: g.id, Msg: m})
	}
}

package multiraft

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// PeerLost is the transport's news that peer id closed its connection to
// this node: its process ended (the kernel closes a killed process's
// sockets) or it is shutting down. For every group that peer led, the
// lowest of the group's other voters starts an election at once, as the
// target of a leadership transfer does (raft's MsgTimeoutNow, which the
// other voters answer although they heard from the leader within an
// election timeout), instead of every follower waiting out an election
// timeout (1–2 s). One voter only, so that two candidates do not split
// the votes; if its log is behind another's it loses, and the usual
// election follows. A network that stops carrying packets closes no
// connection, and a peer that is alive but lost one connection has its
// leadership taken only if that voter's log is up to date — a new term,
// not a lost entry. Safe either way: a vote still needs an up-to-date log.
func (n *Node) PeerLost(id uint64) {
	n.mu.Lock()
	var ids []uint64
	for gid, g := range n.groups {
		if g.stopped != nil {
			continue
		}
		seen, v := g.seen.Load(), g.view.Load()
		if seen == nil || seen.lead != id || v == nil {
			continue
		}
		next := uint64(0)
		for _, m := range v.Voters {
			if m != id && (next == 0 || m < next) {
				next = m
			}
		}
		if next == n.cfg.ID {
			ids = append(ids, gid)
		}
	}
	n.mu.Unlock()
	for _, gid := range ids {
		n.Report(gid, func(rn *raft.RawNode) {
			st := rn.BasicStatus()
			if st.Lead != id || st.RaftState != raft.StateFollower {
				return
			}
			_ = rn.Step(&raftpb.Message{Type: raftpb.MsgTimeoutNow.Enum(), From: new(id), To: new(n.cfg.ID), Term: new(st.HardState.GetTerm())})
		})
	}
}

package multiraft

import (
	"slices"
	"time"

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
// timeout (1–2 s). The lowest first, so that two candidates do not split
// the votes; if its log is behind another's it loses, and the next voter
// campaigns lostRetry later if the group has no leader by then. A network
// that stops carrying packets closes no connection, and a peer that is
// alive but lost one connection has its leadership taken only by a voter
// whose log is up to date — a new term, not a lost entry. Safe either
// way: a vote still needs an up-to-date log.
func (n *Node) PeerLost(id uint64) {
	n.mu.Lock()
	type lost struct {
		group uint64
		rank  int
	}
	var groups []lost
	for gid, g := range n.groups {
		if g.stopped != nil {
			continue
		}
		seen, v := g.seen.Load(), g.view.Load()
		if seen == nil || seen.lead != id || v == nil || !slices.Contains(v.Voters, n.cfg.ID) {
			continue
		}
		rank := 0
		for _, m := range v.Voters {
			if m != id && m < n.cfg.ID {
				rank++
			}
		}
		groups = append(groups, lost{gid, rank})
	}
	n.mu.Unlock()
	for _, l := range groups {
		campaign := func() {
			n.Report(l.group, func(rn *raft.RawNode) {
				st := rn.BasicStatus()
				if (st.Lead != id && st.Lead != 0) || st.RaftState != raft.StateFollower {
					return
				}
				_ = rn.Step(&raftpb.Message{Type: raftpb.MsgTimeoutNow.Enum(), From: new(id), To: new(n.cfg.ID), Term: new(st.HardState.GetTerm())})
			})
		}
		if l.rank == 0 {
			campaign()
		} else {
			time.AfterFunc(time.Duration(l.rank)*lostRetry, campaign)
		}
	}
}

// lostRetry is how long after the lowest voter each next one campaigns
// for a group whose leader was lost, if the group still has no leader by
// then (the lower one's log was behind, and lost the vote).
const lostRetry = 100 * time.Millisecond

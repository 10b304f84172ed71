package cluster

import (
	"encoding/hex"
	"maps"
	"sort"
	"strings"
	"time"

	"go.etcd.io/raft/v3"
)

// Status is a node's view of its cluster.
type Status struct {
	ClusterID string
	NodeID    uint64
	Nodes     []NodeStatus // by id, this node included
	Groups    []GroupStatus
}

// NodeStatus describes one node as this node sees it.
type NodeStatus struct {
	ID          uint64
	ClusterAddr string
	Connected   bool
	LastHeard   time.Duration // -1: never
	Dropped     int64
	Leaders     int // groups of this node that it leads
	HTTPAddr    string
	KafkaAddr   string
	Voter       bool // of the metadata group
}

// GroupStatus describes one raft group on this node.
type GroupStatus struct {
	Group                      uint64
	Name                       string
	Role                       string
	Term, Leader               uint64
	Commit, Applied, LastIndex uint64
	Followers                  []Progress // on the leader
}

// Progress is a leader's view of one member of its group.
type Progress struct {
	Node, Match, Next, Lag uint64
	State                  string
	Learner                bool
}

// Status reports the node, its peers and its groups.
func (n *Node) Status() Status {
	st := Status{ClusterID: hex.EncodeToString(n.cfg.Cluster[:]), NodeID: n.cfg.Node}
	now := time.Now()
	st.Nodes = append(st.Nodes, NodeStatus{ID: n.cfg.Node, ClusterAddr: n.cfg.Listener.Addr().String(), Connected: true})
	for _, p := range n.transport.Status() {
		ns := NodeStatus{ID: p.ID, ClusterAddr: p.Addr, Connected: p.Connected, LastHeard: -1, Dropped: p.Dropped}
		if !p.LastHeard.IsZero() {
			ns.LastHeard = now.Sub(p.LastHeard)
		}
		st.Nodes = append(st.Nodes, ns)
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].ID < st.Nodes[j].ID })
	n.mu.Lock()
	started, log := n.started, n.metaLog
	n.mu.Unlock()
	if !started {
		return st
	}
	rs, ok := n.rafts.Status(MetaGroup)
	if !ok {
		st.Groups = append(st.Groups, GroupStatus{Group: MetaGroup, Name: "metadata", Role: "stopped"})
		return st
	}
	last, _ := log.LastIndex()
	st.Groups = append(st.Groups, groupStatus(MetaGroup, "metadata", rs, last))
	n.mu.Lock()
	parts := maps.Clone(n.partitions)
	n.mu.Unlock()
	var pg []GroupStatus
	for id, pi := range parts {
		if rs, ok := n.rafts.Status(id); ok {
			last, _ := pi.storage.LastIndex()
			pg = append(pg, groupStatus(id, pi.name, rs, last))
		} else if n.rafts.Err(id) != nil {
			// Its log failed: the node takes no part in it until restarted.
			pg = append(pg, GroupStatus{Group: id, Name: pi.name, Role: "stopped"})
		}
	}
	sort.Slice(pg, func(i, j int) bool { return pg[i].Name < pg[j].Name })
	st.Groups = append(st.Groups, pg...)
	reg, _ := loadRegistry(n.cfg.State)
	voters := rs.Config.Voters.IDs()
	for i := range st.Nodes {
		_, st.Nodes[i].Voter = voters[st.Nodes[i].ID]
		for _, ni := range reg {
			if ni.ID == st.Nodes[i].ID {
				st.Nodes[i].HTTPAddr, st.Nodes[i].KafkaAddr = ni.HTTPAddr, ni.KafkaAddr
			}
		}
	}
	for i := range st.Nodes {
		for _, g := range st.Groups {
			if g.Leader == st.Nodes[i].ID {
				st.Nodes[i].Leaders++
			}
		}
	}
	return st
}

// FailedPartitions names the partitions (topic/partition) whose group
// stopped on this node because its log failed, sorted: this node takes no
// part in them until it is restarted on a healthy disk.
func (n *Node) FailedPartitions() []string {
	n.mu.Lock()
	parts := maps.Clone(n.partitions)
	n.mu.Unlock()
	var failed []string
	for id, pi := range parts {
		if n.rafts.Err(id) != nil {
			failed = append(failed, pi.name)
		}
	}
	sort.Strings(failed)
	return failed
}

func roleName(s raft.StateType) string {
	switch s {
	case raft.StateLeader:
		return "leader"
	case raft.StateFollower:
		return "follower"
	case raft.StateCandidate:
		return "candidate"
	case raft.StatePreCandidate:
		return "pre-candidate"
	}
	return s.String()
}

// groupStatus describes a group from its raft status; last is its last
// index on this node.
func groupStatus(id uint64, name string, rs raft.Status, last uint64) GroupStatus {
	g := GroupStatus{Group: id, Name: name, Role: roleName(rs.RaftState), Term: rs.HardState.GetTerm(), Leader: rs.Lead,
		Commit: rs.HardState.GetCommit(), Applied: rs.Applied, LastIndex: last}
	for nid, pr := range rs.Progress {
		p := Progress{Node: nid, Match: pr.Match, Next: pr.Next, State: strings.ToLower(strings.TrimPrefix(pr.State.String(), "State")), Learner: pr.IsLearner}
		if g.LastIndex > pr.Match {
			p.Lag = g.LastIndex - pr.Match
		}
		g.Followers = append(g.Followers, p)
	}
	sort.Slice(g.Followers, func(i, j int) bool { return g.Followers[i].Node < g.Followers[j].Node })
	return g
}

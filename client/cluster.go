package client

import (
	"context"
	"time"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// ClusterStatus is a node's view of its cluster.
type ClusterStatus struct {
	// Enabled is false on a single node; nothing else is set then.
	Enabled   bool
	ClusterID string
	NodeID    uint64 // the node that answered
	Nodes     []ClusterNode
	Groups    []RaftGroup
	// Coordinator is the node that coordinates subscriptions (serves
	// consumers, commits, resets, purges, redrives; 0: none right now, an
	// election), and CoordinatorAddr its native API address.
	Coordinator     uint64
	CoordinatorAddr string
}

// ClusterNode is one node as the answering node sees it.
type ClusterNode struct {
	ID          uint64
	ClusterAddr string
	Connected   bool
	// LastHeard is how long ago the answering node last heard from it; -1:
	// never.
	LastHeard time.Duration
	Dropped   int64 // messages to it dropped
	Leaders   int   // groups it leads, of those the answering node is in
	// HTTPAddr and KafkaAddr are the addresses it advertises ("": not yet
	// registered, or no Kafka listener).
	HTTPAddr, KafkaAddr string
	Voter               bool // false: a learner catching up
}

// RaftGroup is one raft group on the answering node.
type RaftGroup struct {
	Group                           uint64
	Name                            string // "metadata", or a partition
	Role                            string // leader, follower, candidate, pre-candidate
	Term, Leader                    uint64
	CommitIndex, AppliedIndex, Last uint64
	Followers                       []RaftProgress // on the leader
}

// RaftProgress is a leader's view of one member of its group.
type RaftProgress struct {
	Node, Match, Next, Lag uint64
	State                  string // probe, replicate or snapshot
	Learner                bool
}

// ClusterStatus asks the server for its view of its cluster.
func (c *Client) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	resp, err := call(ctx, c, clusterRPC(spoolv1connect.ClusterServiceClient.ClusterStatus), &spoolv1.ClusterStatusRequest{})
	if err != nil {
		return ClusterStatus{}, err
	}
	out := ClusterStatus{Enabled: resp.GetEnabled(), ClusterID: resp.GetClusterId(), NodeID: resp.GetNodeId(),
		Coordinator: resp.GetCoordinator(), CoordinatorAddr: resp.GetCoordinatorAddr()}
	for _, n := range resp.GetNodes() {
		heard := time.Duration(-1)
		if n.GetLastHeardMs() >= 0 {
			heard = time.Duration(n.GetLastHeardMs()) * time.Millisecond
		}
		out.Nodes = append(out.Nodes, ClusterNode{ID: n.GetId(), ClusterAddr: n.GetClusterAddr(), Connected: n.GetConnected(),
			LastHeard: heard, Dropped: n.GetDroppedMessages(), Leaders: int(n.GetLeaders()), HTTPAddr: n.GetHttpAddr(),
			KafkaAddr: n.GetKafkaAddr(), Voter: n.GetVoter()})
	}
	for _, g := range resp.GetGroups() {
		rg := RaftGroup{Group: g.GetGroup(), Name: g.GetName(), Role: g.GetRole(), Term: g.GetTerm(), Leader: g.GetLeader(),
			CommitIndex: g.GetCommitIndex(), AppliedIndex: g.GetAppliedIndex(), Last: g.GetLastIndex()}
		for _, p := range g.GetFollowers() {
			rg.Followers = append(rg.Followers, RaftProgress{Node: p.GetNode(), Match: p.GetMatch(), Next: p.GetNext(),
				Lag: p.GetLag(), State: p.GetState(), Learner: p.GetLearner()})
		}
		out.Groups = append(out.Groups, rg)
	}
	return out, nil
}

// AddNode adds node id, listening for its peers at clusterAddr, to the
// server's cluster (a learner until it has caught up). It returns the
// cluster id and the peers list to start the new node with (--join
// --cluster-id ID --peers PEERS).
func (c *Client) AddNode(ctx context.Context, id uint64, clusterAddr string) (clusterID, peers string, err error) {
	resp, err := call(ctx, c, clusterRPC(spoolv1connect.ClusterServiceClient.AddNode), &spoolv1.AddNodeRequest{NodeId: id, ClusterAddr: clusterAddr})
	if err != nil {
		return "", "", err
	}
	return resp.GetClusterId(), resp.GetPeers(), nil
}

// RemoveNode removes node id from the server's cluster for good.
func (c *Client) RemoveNode(ctx context.Context, id uint64) error {
	_, err := call(ctx, c, clusterRPC(spoolv1connect.ClusterServiceClient.RemoveNode), &spoolv1.RemoveNodeRequest{NodeId: id})
	return err
}

// TransferLeadership moves the leadership of the cluster's metadata group
// to node id and returns once it has moved.
func (c *Client) TransferLeadership(ctx context.Context, id uint64) error {
	_, err := call(ctx, c, clusterRPC(spoolv1connect.ClusterServiceClient.TransferLeadership), &spoolv1.TransferLeadershipRequest{NodeId: id})
	return err
}

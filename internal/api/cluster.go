package api

import (
	"context"
	"fmt"
	"net"
	"strings"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/cluster"
	"github.com/spoolmq/spool/internal/errs"
)

type clusterService struct{ h *Handler }

func (c clusterService) ClusterStatus(_ context.Context, _ *connect.Request[spoolv1.ClusterStatusRequest]) (*connect.Response[spoolv1.ClusterStatusResponse], error) {
	n := c.h.cluster.Load()
	if n == nil {
		return connect.NewResponse(&spoolv1.ClusterStatusResponse{}), nil
	}
	st := n.Status()
	out := &spoolv1.ClusterStatusResponse{Enabled: true, ClusterId: st.ClusterID, NodeId: st.NodeID}
	out.Coordinator, out.CoordinatorAddr = n.Coordinator()
	for _, ns := range st.Nodes {
		heard := int64(-1)
		if ns.LastHeard >= 0 {
			heard = ns.LastHeard.Milliseconds()
		}
		out.Nodes = append(out.Nodes, &spoolv1.ClusterNode{Id: ns.ID, ClusterAddr: ns.ClusterAddr, Connected: ns.Connected,
			LastHeardMs: heard, DroppedMessages: ns.Dropped, Leaders: int32(ns.Leaders), HttpAddr: ns.HTTPAddr,
			KafkaAddr: ns.KafkaAddr, Voter: ns.Voter})
	}
	for _, g := range st.Groups {
		rg := &spoolv1.RaftGroup{Group: g.Group, Name: g.Name, Role: g.Role, Term: g.Term, Leader: g.Leader,
			CommitIndex: g.Commit, AppliedIndex: g.Applied, LastIndex: g.LastIndex}
		for _, p := range g.Followers {
			rg.Followers = append(rg.Followers, &spoolv1.RaftProgress{Node: p.Node, Match: p.Match, Next: p.Next,
				State: p.State, Lag: p.Lag, Learner: p.Learner})
		}
		out.Groups = append(out.Groups, rg)
	}
	return connect.NewResponse(out), nil
}

// clusterInfo is what this node knows of its cluster's coordinator and
// nodes' native addresses; nil on a single node.
func (h *Handler) clusterInfo() *spoolv1.ClusterInfo {
	n := h.cluster.Load()
	if n == nil {
		return nil
	}
	info := &spoolv1.ClusterInfo{}
	info.Coordinator, info.CoordinatorAddr = n.Coordinator()
	if reg, err := n.Registry(); err == nil {
		for _, ni := range reg {
			if !ni.Removed && ni.HTTPAddr != "" {
				info.NodeAddrs = append(info.NodeAddrs, ni.HTTPAddr)
			}
		}
	}
	return info
}

func (c clusterService) node() (*cluster.Node, error) {
	n := c.h.cluster.Load()
	if n == nil {
		return nil, toConnect(errs.New(errs.FailedPrecondition, "this server is a single node, not a cluster node"))
	}
	return n, nil
}

func (c clusterService) AddNode(ctx context.Context, req *connect.Request[spoolv1.AddNodeRequest]) (*connect.Response[spoolv1.AddNodeResponse], error) {
	n, err := c.node()
	if err != nil {
		return nil, err
	}
	addr := req.Msg.GetClusterAddr()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, toConnect(errs.Wrap(errs.InvalidArgument, err, "cluster address %q", addr))
	}
	if err := n.AddNode(ctx, req.Msg.GetNodeId(), addr); err != nil {
		return nil, toConnect(err)
	}
	st := n.Status() // the new node is a peer once its address is applied here
	var peers []string
	listed := false
	for _, ns := range st.Nodes {
		peers = append(peers, fmt.Sprintf("%d=%s", ns.ID, ns.ClusterAddr))
		listed = listed || ns.ID == req.Msg.GetNodeId()
	}
	if !listed {
		peers = append(peers, fmt.Sprintf("%d=%s", req.Msg.GetNodeId(), addr))
	}
	return connect.NewResponse(&spoolv1.AddNodeResponse{ClusterId: st.ClusterID, Peers: strings.Join(peers, ",")}), nil
}

func (c clusterService) RemoveNode(ctx context.Context, req *connect.Request[spoolv1.RemoveNodeRequest]) (*connect.Response[spoolv1.RemoveNodeResponse], error) {
	n, err := c.node()
	if err != nil {
		return nil, err
	}
	if err := n.RemoveNode(ctx, req.Msg.GetNodeId()); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.RemoveNodeResponse{}), nil
}

func (c clusterService) TransferLeadership(ctx context.Context, req *connect.Request[spoolv1.TransferLeadershipRequest]) (*connect.Response[spoolv1.TransferLeadershipResponse], error) {
	n, err := c.node()
	if err != nil {
		return nil, err
	}
	if err := n.TransferLeadership(ctx, req.Msg.GetNodeId()); err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.TransferLeadershipResponse{}), nil
}

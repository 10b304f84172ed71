package api

import (
	"context"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

type clusterService struct{ h *Handler }

func (c clusterService) ClusterStatus(_ context.Context, _ *connect.Request[spoolv1.ClusterStatusRequest]) (*connect.Response[spoolv1.ClusterStatusResponse], error) {
	n := c.h.cluster.Load()
	if n == nil {
		return connect.NewResponse(&spoolv1.ClusterStatusResponse{}), nil
	}
	st := n.Status()
	out := &spoolv1.ClusterStatusResponse{Enabled: true, ClusterId: st.ClusterID, NodeId: st.NodeID}
	for _, ns := range st.Nodes {
		heard := int64(-1)
		if ns.LastHeard >= 0 {
			heard = ns.LastHeard.Milliseconds()
		}
		out.Nodes = append(out.Nodes, &spoolv1.ClusterNode{Id: ns.ID, ClusterAddr: ns.ClusterAddr, Connected: ns.Connected,
			LastHeardMs: heard, DroppedMessages: ns.Dropped, Leaders: int32(ns.Leaders)})
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

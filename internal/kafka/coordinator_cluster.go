package kafka

// On a cluster, one node coordinates every consumer group: the leader of
// the cluster's metadata group (the Controller of Metadata). FindCoordinator
// names it; the group requests sent to any other node are answered
// NOT_COORDINATOR, and the client asks FindCoordinator again. So the
// members of a group never split across nodes. Share groups too: their
// heartbeats and descriptions are group requests, and the ShareFetch and
// ShareAcknowledge requests that clients send to partition leaders are
// forwarded to the coordinator (share_forward.go). Committed offsets and
// queue state go through the metadata group (broker/sub_state.go): the
// next coordinator has them; until it has applied its predecessors'
// entries, the cluster names no coordinator (Controller -1).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// coordinator returns the node that coordinates groups and its address,
// ok false when there is none right now. On a single node: this one.
func (s *Server) coordinator() (id int32, host string, port int32, ok bool) {
	c := s.cfg.Cluster
	if c == nil {
		return s.cfg.NodeID, s.cfg.AdvertisedHost, s.cfg.AdvertisedPort, true
	}
	id = c.Controller()
	for _, b := range c.Brokers() {
		if b.NodeID == id && id > 0 {
			return id, b.Host, b.Port, true
		}
	}
	return 0, "", 0, false
}

// coordinates reports whether this node coordinates groups.
func (s *Server) coordinates() bool {
	return s.cfg.Cluster == nil || s.cfg.Cluster.Controller() == s.cfg.NodeID
}

// syncGroupsTerm forgets the classic groups when this node coordinates in
// another term than the one they were formed in (kgroup.Coordinator.Reset):
// between the two, other nodes coordinated them, and the generations this
// node remembers would let a member that missed those rebalances commit
// again with an assignment that is no longer its own. It returns the term
// the groups now belong to (0 on a single node), ok false when this node
// leads the metadata group but does not coordinate yet (it has not applied
// its predecessors' entries): group state must not be used then.
func (s *Server) syncGroupsTerm() (term uint64, ok bool) {
	if s.cfg.Cluster == nil || s.b == nil || !s.b.Clustered() {
		return 0, true
	}
	t := s.b.CoordinatorTerm()
	if t == 0 {
		return 0, false
	}
	if s.groupsTerm.Load() == t {
		return t, true
	}
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	if old := s.groupsTerm.Load(); old != t {
		s.groups.Reset()
		s.groupsTerm.Store(t)
		if old != 0 {
			s.logger.Info("kafka: coordinating consumer groups again; their members join anew", "term", t, "previous_term", old)
		}
	}
	return t, true
}

type groupsTermKey struct{}

// withGroupsTerm returns ctx carrying the coordination term of the group
// state a request is handled with (syncGroupsTerm).
func withGroupsTerm(ctx context.Context, term uint64) context.Context {
	if term == 0 {
		return ctx
	}
	return context.WithValue(ctx, groupsTermKey{}, term)
}

// groupsTermOf returns the term withGroupsTerm put in ctx (0: none, a
// single node). A write that the group state authorized carries it, so
// that it is refused if the coordination changed since (a commit checked
// against one term's generations must not land in the next).
func groupsTermOf(ctx context.Context) uint64 {
	t, _ := ctx.Value(groupsTermKey{}).(uint64)
	return t
}

// groupError answers a group request with code (NOT_COORDINATOR on a node
// that does not coordinate groups, COORDINATOR_LOAD_IN_PROGRESS on one
// about to), or returns nil for a request of another kind.
func groupError(req kmsg.Request, code int16) kmsg.Response {
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.SyncGroupRequest:
		resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.HeartbeatRequest:
		resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.LeaveGroupRequest:
		resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.OffsetDeleteRequest:
		resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.OffsetCommitRequest:
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	case *kmsg.OffsetFetchRequest:
		resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = code
		for _, g := range r.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, code
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.DescribeGroupsRequest:
		resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, code
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.ShareGroupHeartbeatRequest:
		resp := r.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.ShareGroupDescribeRequest:
		resp := r.ResponseKind().(*kmsg.ShareGroupDescribeResponse)
		for _, g := range r.GroupIDs {
			rg := kmsg.NewShareGroupDescribeResponseGroup()
			rg.GroupID, rg.ErrorCode = g, code
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.DeleteGroupsRequest:
		resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, g := range r.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, code
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
	return nil
}

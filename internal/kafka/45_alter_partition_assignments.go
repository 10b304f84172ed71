package kafka

// AlterPartitionReassignments (key 45), v0–v1, and ListPartitionReassignments
// (key 46), v0: a cluster's partition reassignments (broker.
// ReassignPartitions; the partition's leader then moves the replicas,
// docs/cluster.md). Replicas given are the partition's new replicas, as
// many as the topic's replication factor (AllowReplicationFactorChange is
// not honoured: a different count is INVALID_REPLICA_ASSIGNMENT, as are
// unknown or removed nodes and ids listed twice); null replicas cancel a
// reassignment in progress by assigning the replicas the partition has now
// (NO_REASSIGNMENT_IN_PROGRESS if none is). A partition is being reassigned
// while its recorded replicas differ from its group's voters: List reports
// them as Kafka does (replicas: both sets, adding: the recorded ones not yet
// voters, removing: the voters not recorded). On a single node, which holds
// the one replica of each partition, every partition of an Alter is
// INVALID_REPLICA_ASSIGNMENT and List reports none.

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

func (s *Server) alterPartitionAssignments(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterPartitionAssignmentsRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	if !s.can(ctx, acl.Cluster, acl.ClusterName, acl.Admin) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		meta, ok := s.b.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			fail := func(code int16, format string, args ...any) {
				msg := fmt.Sprintf(format, args...)
				sp.ErrorCode, sp.ErrorMessage = code, &msg
			}
			switch {
			case !ok || rp.Partition < 0 || rp.Partition >= meta.Config.Partitions:
				fail(kerr.UnknownTopicOrPartition.Code, "topic %q has no partition %d", rt.Topic, rp.Partition)
			case s.cfg.Cluster == nil:
				fail(kerr.InvalidReplicaAssignment.Code, "this Spool node holds the one replica of every partition")
			default:
				current := s.voters(meta, rp.Partition)
				target := rp.Replicas
				if target == nil {
					// Cancel: back to the replicas it has.
					if !s.reassigning(meta, rp.Partition, current) {
						fail(kerr.NoReassignmentInProgress.Code, "partition %s/%d is not being reassigned", rt.Topic, rp.Partition)
						break
					}
					target = current
				}
				ids := make([]uint64, 0, len(target))
				for _, r := range target {
					if r <= 0 {
						fail(kerr.InvalidReplicaAssignment.Code, "replica %d is not a node id", r)
						break
					}
					ids = append(ids, uint64(r))
				}
				if sp.ErrorCode != 0 {
					break
				}
				err := s.b.ReassignPartitions(rt.Topic, []broker.Reassignment{{Partition: rp.Partition, Voters: ids}})
				switch {
				case err == nil:
				case errs.Is(err, errs.InvalidArgument), errs.Is(err, errs.FailedPrecondition):
					fail(kerr.InvalidReplicaAssignment.Code, "%s", err.Error())
				case errs.Is(err, errs.TopicNotFound):
					fail(kerr.UnknownTopicOrPartition.Code, "%s", err.Error())
				default:
					fail(kerr.RequestTimedOut.Code, "%s", err.Error())
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (s *Server) listPartitionReassignments(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListPartitionReassignmentsRequest)
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	if !s.can(ctx, acl.Cluster, acl.ClusterName, acl.Describe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	if s.cfg.Cluster == nil {
		return resp, nil
	}
	type want struct {
		name  string
		parts []int32 // nil: every partition
	}
	var wants []want
	if req.Topics == nil {
		for _, t := range s.b.Topics() {
			wants = append(wants, want{name: t.Name})
		}
	} else {
		for _, rt := range req.Topics {
			wants = append(wants, want{rt.Topic, rt.Partitions})
		}
	}
	for _, w := range wants {
		meta, ok := s.b.Topic(w.name)
		if !ok {
			continue
		}
		parts := w.parts
		if parts == nil {
			for p := range meta.Config.Partitions {
				parts = append(parts, p)
			}
		}
		st := kmsg.NewListPartitionReassignmentsResponseTopic()
		st.Topic = w.name
		for _, p := range parts {
			if p < 0 || p >= meta.Config.Partitions {
				continue
			}
			current := s.voters(meta, p)
			if !s.reassigning(meta, p, current) {
				continue
			}
			target := int32sOf(meta.AssignmentOf(p).Voters)
			sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
			sp.Partition = p
			sp.Replicas = slices.Clone(current)
			for _, t := range target {
				if !slices.Contains(current, t) {
					sp.Replicas = append(sp.Replicas, t)
					sp.AddingReplicas = append(sp.AddingReplicas, t)
				}
			}
			for _, c := range current {
				if !slices.Contains(target, c) {
					sp.RemovingReplicas = append(sp.RemovingReplicas, c)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		if len(st.Partitions) > 0 {
			resp.Topics = append(resp.Topics, st)
		}
	}
	return resp, nil
}

// voters are partition p's replicas now (its group's voters as this node
// knows them).
func (s *Server) voters(meta catalog.Topic, p int32) []int32 {
	_, _, replicas := s.cfg.Cluster.PartitionLeader(meta.ID, p)
	return replicas
}

// reassigning reports whether partition p's recorded replicas differ from
// its voters now.
func (s *Server) reassigning(meta catalog.Topic, p int32, current []int32) bool {
	target := meta.AssignmentOf(p).Voters
	if len(target) == 0 {
		return false
	}
	if len(target) != len(current) {
		return true
	}
	for _, t := range target {
		if !slices.Contains(current, int32(t)) {
			return true
		}
	}
	return false
}

func int32sOf(ids []uint64) []int32 {
	out := make([]int32, 0, len(ids))
	for _, id := range ids {
		out = append(out, int32(id))
	}
	return out
}

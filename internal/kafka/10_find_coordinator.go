package kafka

// FindCoordinator (key 10), v0–v6. A single node coordinates everything it
// can: every group key (type 0) is answered with this node; on a cluster,
// with the metadata group's leader (coordinator_cluster.go). v4+ batches
// keys (CoordinatorKeys); v0–v3 carry one key and answer at the top level.
// Transactions are not supported: transaction keys (type 1) get
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED (what Kafka answers a client that
// may not use a transactional id), as InitProducerId does: a non-retriable
// error fails a transactional producer at once, where
// COORDINATOR_NOT_AVAILABLE would have it retry forever. Share-coordinator
// keys (type 2, v6+, "group:topicId:partition", used between brokers) need
// CLUSTER_ACTION on the cluster (admin; CLUSTER_AUTHORIZATION_FAILED, as
// Kafka answers) and are answered with this node when well-formed,
// INVALID_REQUEST otherwise, as are unknown key types.

import (
	"context"
	"strconv"
	"strings"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) findCoordinator(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		var msg string
		switch {
		case req.CoordinatorType == 0:
			if !s.can(ctx, acl.Group, key, acl.Describe) {
				c.ErrorCode, msg = kerr.GroupAuthorizationFailed.Code, "not authorized to describe the group"
			}
		case req.CoordinatorType == 1:
			c.ErrorCode, msg = kerr.TransactionalIDAuthorizationFailed.Code, "transactions are not supported"
		case req.CoordinatorType == 2 && req.Version >= 6:
			switch {
			case !s.can(ctx, acl.Cluster, acl.ClusterName, acl.Admin):
				c.ErrorCode, msg = kerr.ClusterAuthorizationFailed.Code, "share coordinator keys are looked up between brokers: CLUSTER_ACTION on the cluster is needed"
			case !validShareCoordinatorKey(key):
				c.ErrorCode, msg = kerr.InvalidRequest.Code, "malformed share coordinator key"
			}
		default:
			c.ErrorCode, msg = kerr.InvalidRequest.Code, "unknown coordinator type "+strconv.Itoa(int(req.CoordinatorType))
		}
		if c.ErrorCode == 0 {
			var ok bool
			if c.NodeID, c.Host, c.Port, ok = s.coordinator(); !ok {
				c.ErrorCode, msg = kerr.CoordinatorNotAvailable.Code, "the cluster has no metadata leader right now"
			}
		}
		if c.ErrorCode != 0 {
			c.NodeID, c.Host, c.Port = -1, "", -1
			c.ErrorMessage = &msg
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 {
		c := resp.Coordinators[0]
		resp.Coordinators = nil
		resp.ErrorCode, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.NodeID, c.Host, c.Port
		if req.Version >= 1 {
			resp.ErrorMessage = c.ErrorMessage
		}
	}
	return resp, nil
}

// validShareCoordinatorKey checks "groupId:topicId:partition".
func validShareCoordinatorKey(key string) bool {
	i := strings.LastIndexByte(key, ':')
	if i <= 0 {
		return false
	}
	if _, err := strconv.ParseInt(key[i+1:], 10, 32); err != nil {
		return false
	}
	j := strings.LastIndexByte(key[:i], ':')
	return j > 0 && j < i-1
}

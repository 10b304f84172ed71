package kafka

// DescribeCluster (key 60), v0–v2. One broker, this node, which is also
// the controller; the cluster id is Config.ClusterID. v1+ EndpointType 2
// (controllers) is UNSUPPORTED_ENDPOINT_TYPE: Spool has no separate
// controller listener. There are no ACLs, so the authorized operations
// (when asked for) are every cluster operation; when not asked for they
// are MinInt32, as in Kafka. v2 brokers are never fenced.

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clusterOperations are the ACL operations on a cluster resource: CREATE
// (5), ALTER (7), DESCRIBE (8), CLUSTER_ACTION (9), DESCRIBE_CONFIGS (10),
// ALTER_CONFIGS (11), IDEMPOTENT_WRITE (12), as a bit set.
const clusterOperations = 1<<5 | 1<<7 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12

func (s *Server) describeCluster(_ context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterAuthorizedOperations = math.MinInt32
	resp.EndpointType = req.EndpointType
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		msg := "only broker endpoints (type 1) are supported"
		resp.ErrorMessage = &msg
		return resp, nil
	}
	resp.ClusterID = s.cfg.ClusterID
	resp.ControllerID = s.cfg.NodeID
	b := kmsg.NewDescribeClusterResponseBroker()
	b.NodeID, b.Host, b.Port = s.cfg.NodeID, s.cfg.AdvertisedHost, s.cfg.AdvertisedPort
	resp.Brokers = append(resp.Brokers, b)
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = clusterOperations
	}
	return resp, nil
}

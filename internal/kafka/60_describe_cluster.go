package kafka

// DescribeCluster (key 60), v0–v2. One broker, this node, which is also
// the controller; the cluster id is Config.ClusterID. v1+ EndpointType 2
// (controllers) is UNSUPPORTED_ENDPOINT_TYPE: Spool has no separate
// controller listener. The authorized operations (when asked for) are the
// principal's on the cluster (every cluster operation with authorization
// off); when not asked for they are MinInt32, as in Kafka. Describing the
// cluster needs describe on it (CLUSTER_AUTHORIZATION_FAILED). v2 brokers
// are never fenced.

import (
	"context"
	"math"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) describeCluster(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
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
	if !s.can(ctx, acl.Cluster, acl.ClusterName, acl.Describe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	resp.ClusterID = s.cfg.ClusterID
	resp.ControllerID = s.cfg.NodeID
	b := kmsg.NewDescribeClusterResponseBroker()
	b.NodeID, b.Host, b.Port = s.cfg.NodeID, s.cfg.AdvertisedHost, s.cfg.AdvertisedPort
	resp.Brokers = append(resp.Brokers, b)
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = s.authorizedOps(ctx, acl.Cluster, acl.ClusterName)
	}
	return resp, nil
}

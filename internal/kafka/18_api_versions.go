package kafka

// ApiVersions (key 18), v0–v5. The response always uses response header v0,
// even for flexible versions. v5 (KIP-1242) lets a client name the cluster
// and node it believes it talks to: both set and either not ours is
// REBOOTSTRAP_REQUIRED, only one set is INVALID_REQUEST (both answers still
// list our versions). A client asking for a version above ours gets
// a v0 response with UNSUPPORTED_VERSION and our range (KIP-511), so it can
// retry with a version we speak. Only implemented APIs are advertised; no
// features (in particular not transaction.version, so transactional clients
// use the classic flow — and transactions are not offered at all).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (s *Server) apiKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(s.apis))
	for k, a := range s.apis {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: a.min, MaxVersion: a.max})
	}
	return keys
}

func (s *Server) apiVersions(_ context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = s.apiKeys()
	if req.Version >= 5 {
		switch {
		case (req.ClusterID == nil) != (req.NodeID < 0):
			resp.ErrorCode = kerr.InvalidRequest.Code
		case req.ClusterID != nil && (*req.ClusterID != s.cfg.ClusterID || req.NodeID != s.cfg.NodeID):
			resp.ErrorCode = kerr.RebootstrapRequired.Code
		}
	}
	return resp, nil
}

// unsupportedApiVersions is the v0 answer to an ApiVersions request of a
// version we do not speak.
func (s *Server) unsupportedApiVersions() kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = s.apiKeys()
	return resp
}

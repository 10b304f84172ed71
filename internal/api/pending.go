package api

// Handlers of RPCs whose implementation is being written. Each is removed
// from this file when its real handler lands.

import (
	"context"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/errs"
)

func pending(name string) error {
	return toConnect(errs.New(errs.UnsupportedFeature, "%s is not available on this server yet", name))
}

func (topics) ReadTopic(context.Context, *connect.Request[spoolv1.ReadTopicRequest], *connect.ServerStream[spoolv1.ReadTopicResponse]) error {
	return pending("ReadTopic")
}

func (subs) PurgeSubscription(context.Context, *connect.Request[spoolv1.PurgeSubscriptionRequest]) (*connect.Response[spoolv1.PurgeSubscriptionResponse], error) {
	return nil, pending("PurgeSubscription")
}

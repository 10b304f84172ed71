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

func (topics) AlterTopic(context.Context, *connect.Request[spoolv1.AlterTopicRequest]) (*connect.Response[spoolv1.AlterTopicResponse], error) {
	return nil, pending("AlterTopic")
}

func (topics) AddPartitions(context.Context, *connect.Request[spoolv1.AddPartitionsRequest]) (*connect.Response[spoolv1.AddPartitionsResponse], error) {
	return nil, pending("AddPartitions")
}

func (subs) AlterSubscription(context.Context, *connect.Request[spoolv1.AlterSubscriptionRequest]) (*connect.Response[spoolv1.AlterSubscriptionResponse], error) {
	return nil, pending("AlterSubscription")
}

package api

import (
	"context"
	"errors"
	"io"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/broker"
)

// ReadTopic streams a topic's messages from a position without a
// subscription: one response per batch the reader yields (at most 4,096
// messages and about 1 MiB), until the read is complete, the client goes
// away, or (following) the topic is deleted. Nothing is stored.
func (h topics) ReadTopic(ctx context.Context, req *connect.Request[spoolv1.ReadTopicRequest], stream *connect.ServerStream[spoolv1.ReadTopicResponse]) error {
	m := req.Msg
	from, err := positionFromProto(m.From)
	if err != nil {
		return err
	}
	if err := h.streams.acquire(); err != nil {
		return err
	}
	defer h.streams.release()
	r, err := h.b.ReadTopic(broker.ReadRequest{Topic: m.Topic, Partition: m.Partition, From: from, Count: m.Count, Follow: m.Follow})
	if err != nil {
		return toConnect(err)
	}
	for {
		rb, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return toConnect(err)
		}
		resp := &spoolv1.ReadTopicResponse{Messages: deliveriesToProto(rb.Messages)}
		for _, n := range rb.Next {
			resp.Next = append(resp.Next, &spoolv1.PartitionOffset{Partition: n.Partition, Offset: n.Offset})
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

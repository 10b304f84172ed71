package client

import (
	"context"
	"fmt"
	"math"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// Admin calls: thin wrappers over TopicService and SubscriptionService with
// Go types. None is retried (creating twice is not idempotent); errors are
// *Error values matching the Err* sentinels.

// CreateTopic creates topic name with cfg (zero fields: server defaults) and
// returns it with the effective configuration; ErrTopicExists if it exists.
func (c *Client) CreateTopic(ctx context.Context, name string, cfg TopicConfig) (Topic, error) {
	if err := cfg.validate(); err != nil {
		return Topic{}, err
	}
	resp, err := call(ctx, c, topicsRPC(spoolv1connect.TopicServiceClient.CreateTopic), &spoolv1.CreateTopicRequest{Name: name, Config: cfg.toProto()})
	if err != nil {
		return Topic{}, err
	}
	return topicFromProto(resp.GetTopic()), nil
}

// DeleteTopic deletes topic name, its data and its subscriptions;
// ErrTopicNotFound if there is none.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	_, err := call(ctx, c, topicsRPC(spoolv1connect.TopicServiceClient.DeleteTopic), &spoolv1.DeleteTopicRequest{Name: name})
	return err
}

// ListTopics returns every topic, in the server's order (empty, not nil, if
// there are none).
func (c *Client) ListTopics(ctx context.Context) ([]Topic, error) {
	resp, err := call(ctx, c, topicsRPC(spoolv1connect.TopicServiceClient.ListTopics), &spoolv1.ListTopicsRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]Topic, 0, len(resp.GetTopics()))
	for _, t := range resp.GetTopics() {
		out = append(out, topicFromProto(t))
	}
	return out, nil
}

// DescribeTopic returns topic name with its partitions' offsets and sizes
// and its subscriptions' names; ErrTopicNotFound if there is none.
func (c *Client) DescribeTopic(ctx context.Context, name string) (*TopicInfo, error) {
	resp, err := call(ctx, c, topicsRPC(spoolv1connect.TopicServiceClient.DescribeTopic), &spoolv1.DescribeTopicRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return topicInfoFromProto(resp), nil
}

// CreateSubscription creates subscription name on topic; ErrTopicNotFound
// or ErrSubscriptionExists on conflict.
func (c *Client) CreateSubscription(ctx context.Context, topic, name string, cfg SubscriptionConfig) (Subscription, error) {
	pcfg, err := cfg.toProto()
	if err != nil {
		return Subscription{}, err
	}
	resp, err := call(ctx, c, subsRPC(spoolv1connect.SubscriptionServiceClient.CreateSubscription), &spoolv1.CreateSubscriptionRequest{Topic: topic, Name: name, Config: pcfg})
	if err != nil {
		return Subscription{}, err
	}
	return subscriptionFromProto(resp.GetSubscription()), nil
}

// DeleteSubscription deletes subscription name of topic and its offsets;
// its live members' streams end. ErrSubscriptionNotFound if there is none.
func (c *Client) DeleteSubscription(ctx context.Context, topic, name string) error {
	_, err := call(ctx, c, subsRPC(spoolv1connect.SubscriptionServiceClient.DeleteSubscription), &spoolv1.DeleteSubscriptionRequest{Topic: topic, Name: name})
	return err
}

// ListSubscriptions returns the subscriptions of topic (empty, not nil, if
// there are none); ErrTopicNotFound if the topic does not exist.
func (c *Client) ListSubscriptions(ctx context.Context, topic string) ([]Subscription, error) {
	resp, err := call(ctx, c, subsRPC(spoolv1connect.SubscriptionServiceClient.ListSubscriptions), &spoolv1.ListSubscriptionsRequest{Topic: topic})
	if err != nil {
		return nil, err
	}
	out := make([]Subscription, 0, len(resp.GetSubscriptions()))
	for _, s := range resp.GetSubscriptions() {
		out = append(out, subscriptionFromProto(s))
	}
	return out, nil
}

// DescribeSubscription returns subscription name of topic with its members,
// per-partition committed offsets (for a queue subscription, the ack floor)
// and lag, and for a queue subscription its queue state and dead-letter
// counts.
func (c *Client) DescribeSubscription(ctx context.Context, topic, name string) (*SubscriptionInfo, error) {
	req := &spoolv1.DescribeSubscriptionRequest{Topic: topic, Name: name}
	m := subsRPC(spoolv1connect.SubscriptionServiceClient.DescribeSubscription)
	resp, route, err := callCoord(ctx, c, m, req)
	if err != nil {
		return nil, err
	}
	if ci := resp.GetCluster(); ci != nil {
		// A cluster node: members and leases are the coordinator's. Ask it
		// when another node answered.
		c.learn(ci.GetNodeAddrs())
		if a := ci.GetCoordinatorAddr(); ci.GetCoordinator() != 0 && validAddr(a) && a != route {
			c.setCoordinator(a)
			if again, err := callOn(ctx, c, a, m, req); err == nil {
				resp = again
			} else {
				c.nodeFailed(a, err)
			}
		}
	}
	return subscriptionInfoFromProto(resp), nil
}

// ResetSubscription moves the subscription's position in every partition
// to pos (replay or skip; an offset is clamped to what each partition
// retains) and returns the new positions. In stream mode running consumers
// continue from there. In queue mode the ack floor and read cursor move:
// leases in flight are dropped (their acks are ignored), waiting and delayed
// messages are forgotten and read again from the new position, dead letters
// stay. A halted partition is released. The zero Position is
// ErrInvalidArgument.
func (c *Client) ResetSubscription(ctx context.Context, topic, name string, pos Position) ([]SubscriptionPartition, error) {
	return c.reset(ctx, "ResetSubscription", topic, name, nil, pos)
}

// ResetPartition is ResetSubscription for one partition (a seek). An
// offset must lie within the partition's retained range: outside it the
// error has code offset_out_of_range.
func (c *Client) ResetPartition(ctx context.Context, topic, name string, partition int32, pos Position) (SubscriptionPartition, error) {
	if partition < 0 {
		return SubscriptionPartition{}, invalidArgument("ResetPartition: negative partition %d", partition)
	}
	ps, err := c.reset(ctx, "ResetPartition", topic, name, &partition, pos)
	if err != nil {
		return SubscriptionPartition{}, err
	}
	if len(ps) != 1 {
		return SubscriptionPartition{}, &Error{Code: "internal", Message: fmt.Sprintf("reset of partition %d answered with %d partitions", partition, len(ps))}
	}
	return ps[0], nil
}

func (c *Client) reset(ctx context.Context, what, topic, name string, partition *int32, pos Position) ([]SubscriptionPartition, error) {
	if pos.IsZero() {
		return nil, invalidArgument("%s: no position", what)
	}
	to, err := pos.toProto()
	if err != nil {
		return nil, err
	}
	resp, _, err := callCoord(ctx, c, subsRPC(spoolv1connect.SubscriptionServiceClient.ResetSubscription), &spoolv1.ResetSubscriptionRequest{Topic: topic, Name: name, To: to, Partition: partition})
	if err != nil {
		return nil, err
	}
	return subscriptionPartitionsFromProto(resp.GetPartitions()), nil
}

// PurgeSubscription acknowledges everything published so far in every
// partition: the subscription's position moves to the end (as
// ResetSubscription to Latest), and the result says how many offsets it
// skipped.
func (c *Client) PurgeSubscription(ctx context.Context, topic, name string) (PurgeResult, error) {
	return c.purge(ctx, topic, name, nil)
}

// PurgePartition is PurgeSubscription for one partition.
func (c *Client) PurgePartition(ctx context.Context, topic, name string, partition int32) (PurgeResult, error) {
	if partition < 0 {
		return PurgeResult{}, invalidArgument("PurgePartition: negative partition %d", partition)
	}
	return c.purge(ctx, topic, name, &partition)
}

func (c *Client) purge(ctx context.Context, topic, name string, partition *int32) (PurgeResult, error) {
	resp, _, err := callCoord(ctx, c, subsRPC(spoolv1connect.SubscriptionServiceClient.PurgeSubscription), &spoolv1.PurgeSubscriptionRequest{Topic: topic, Name: name, Partition: partition})
	if err != nil {
		return PurgeResult{}, err
	}
	return PurgeResult{Partitions: subscriptionPartitionsFromProto(resp.GetPartitions()), Skipped: resp.GetSkipped()}, nil
}

// ListDeadLetters returns up to limit messages (0: the server's default,
// 100; at most 1000) of the dead-letter topic of queue subscription sub,
// starting at offset fromOffset of that topic, and the offset to list from
// next. The server answers about 4 MiB of messages at most, so a page may
// hold fewer than limit with more to follow. It returns an empty list when nothing was dead-lettered; an error
// matching ErrSubscriptionNotFound, or a failed_precondition *Error for a
// stream subscription.
func (c *Client) ListDeadLetters(ctx context.Context, topic, sub string, fromOffset int64, limit int) ([]DeadLetter, int64, error) {
	if fromOffset < 0 || limit < 0 {
		return nil, 0, invalidArgument("ListDeadLetters: negative offset or limit")
	}
	resp, _, err := callCoord(ctx, c, subsRPC(spoolv1connect.SubscriptionServiceClient.ListDeadLetters), &spoolv1.ListDeadLettersRequest{
		Topic: topic, Subscription: sub, FromOffset: fromOffset, Limit: int32(min(limit, math.MaxInt32)),
	})
	if err != nil {
		return nil, 0, err
	}
	out := make([]DeadLetter, 0, len(resp.GetDeadLetters()))
	for _, d := range resp.GetDeadLetters() {
		out = append(out, deadLetterFromProto(d))
	}
	return out, resp.GetNextOffset(), nil
}

// Redrive publishes dead-lettered messages of a queue subscription back to
// its topic, as req selects, and reports what moved. Each message is moved
// once: a Redrive interrupted and run again counts the ones already moved
// in RedriveReport.Already. It takes as long as the messages take to move
// (see RateLimit), so WithRequestTimeout does not bound it: bound it with
// ctx.
func (c *Client) Redrive(ctx context.Context, req RedriveRequest) (RedriveReport, error) {
	preq, err := req.toProto()
	if err != nil {
		return RedriveReport{}, err
	}
	resp, _, err := callCoordUnbounded(ctx, c, subsRPC(spoolv1connect.SubscriptionServiceClient.Redrive), preq)
	if err != nil {
		return RedriveReport{}, err
	}
	return RedriveReport{
		Moved:   resp.GetMoved(),
		Skipped: resp.GetSkipped(),
		Already: resp.GetAlready(),
		Offsets: resp.GetOffsets(),
	}, nil
}

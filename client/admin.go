package client

import (
	"context"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
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
	resp, err := call(ctx, c, c.topics.CreateTopic, &spoolv1.CreateTopicRequest{Name: name, Config: cfg.toProto()})
	if err != nil {
		return Topic{}, err
	}
	return topicFromProto(resp.GetTopic()), nil
}

// DeleteTopic deletes topic name, its data and its subscriptions;
// ErrTopicNotFound if there is none.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	_, err := call(ctx, c, c.topics.DeleteTopic, &spoolv1.DeleteTopicRequest{Name: name})
	return err
}

// ListTopics returns every topic, in the server's order (empty, not nil, if
// there are none).
func (c *Client) ListTopics(ctx context.Context) ([]Topic, error) {
	resp, err := call(ctx, c, c.topics.ListTopics, &spoolv1.ListTopicsRequest{})
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
	resp, err := call(ctx, c, c.topics.DescribeTopic, &spoolv1.DescribeTopicRequest{Name: name})
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
	resp, err := call(ctx, c, c.subs.CreateSubscription, &spoolv1.CreateSubscriptionRequest{Topic: topic, Name: name, Config: pcfg})
	if err != nil {
		return Subscription{}, err
	}
	return subscriptionFromProto(resp.GetSubscription()), nil
}

// DeleteSubscription deletes subscription name of topic and its offsets;
// its live members' streams end. ErrSubscriptionNotFound if there is none.
func (c *Client) DeleteSubscription(ctx context.Context, topic, name string) error {
	_, err := call(ctx, c, c.subs.DeleteSubscription, &spoolv1.DeleteSubscriptionRequest{Topic: topic, Name: name})
	return err
}

// ListSubscriptions returns the subscriptions of topic (empty, not nil, if
// there are none); ErrTopicNotFound if the topic does not exist.
func (c *Client) ListSubscriptions(ctx context.Context, topic string) ([]Subscription, error) {
	resp, err := call(ctx, c, c.subs.ListSubscriptions, &spoolv1.ListSubscriptionsRequest{Topic: topic})
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
// per-partition committed offsets and lag.
func (c *Client) DescribeSubscription(ctx context.Context, topic, name string) (*SubscriptionInfo, error) {
	resp, err := call(ctx, c, c.subs.DescribeSubscription, &spoolv1.DescribeSubscriptionRequest{Topic: topic, Name: name})
	if err != nil {
		return nil, err
	}
	return subscriptionInfoFromProto(resp), nil
}

// ResetSubscription moves every partition's committed offset of the
// subscription to pos (replay or skip) and returns the new offsets; running
// consumers continue from there. The zero Position is ErrInvalidArgument.
func (c *Client) ResetSubscription(ctx context.Context, topic, name string, pos Position) ([]SubscriptionPartition, error) {
	if pos.IsZero() {
		return nil, invalidArgument("ResetSubscription: no position")
	}
	to, err := pos.toProto()
	if err != nil {
		return nil, err
	}
	resp, err := call(ctx, c, c.subs.ResetSubscription, &spoolv1.ResetSubscriptionRequest{Topic: topic, Name: name, To: to})
	if err != nil {
		return nil, err
	}
	return subscriptionPartitionsFromProto(resp.GetPartitions()), nil
}

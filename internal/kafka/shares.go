package kafka

// shareGroups runs KIP-932 share groups on top of the broker's queue
// subscriptions. See 76_share_group_heartbeat.go.
type shareGroups struct{}

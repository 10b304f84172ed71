package kafka

// groupCoordinator runs Kafka's classic consumer-group protocol (JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup) for every group; committed offsets are
// the broker's stream subscriptions'. See 11_join_group.go.
type groupCoordinator struct{}

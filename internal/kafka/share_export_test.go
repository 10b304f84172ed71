package kafka

import "time"

// SetShareTimings sets the share member session timeout and heartbeat
// interval of servers created afterwards and returns a function restoring
// them. Not for parallel tests.
func SetShareTimings(session, heartbeat time.Duration) (restore func()) {
	old := shareTimings
	shareTimings.Session, shareTimings.Heartbeat = session, heartbeat
	return func() { shareTimings = old }
}

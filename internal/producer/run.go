package producer

import (
	"context"
	"time"
)

// Run drives the table until ctx is done: it prunes the snapshots of
// deleted topics, then sweeps (expiry, bounds, snapshots of what changed)
// every SnapshotInterval and whenever Kick fires, and once more when ctx
// ends. The table's owner (the server, or a Kafka front end that made its
// own table) runs it on a goroutine of its own and waits for it to return
// before closing the broker.
func (pt *Table) Run(ctx context.Context) {
	if err := pt.Prune(); err != nil {
		pt.logger.Warn("pruning producer snapshots", "err", err)
	}
	t := time.NewTicker(SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			pt.Sweep()
			return
		case <-t.C:
		case <-pt.kick:
		}
		pt.Sweep()
	}
}

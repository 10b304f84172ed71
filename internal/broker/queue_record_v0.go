package broker

import (
	"fmt"

	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/state"
)

// Version-0 queue records: what releases up to 7e44b4f wrote, json.Marshal
// of queue.Snapshot and queue.Parked of the time, keyed by their Go field
// names (a snapshot's counts an object keyed by the offset in decimal).
// The structs below reproduce them field for field, in the same order.
// Nothing writes version 0 any more.

type snapshotV0 struct {
	Floor  int64
	Done   [][2]int64
	Counts map[int64]countV0
}

type countV0 struct {
	Deliveries       int
	FirstDeliveredAt int64 // ms
	LastError        string
}

type parkedV0 struct {
	Offset           int64
	Due              int64 // ms
	DeliveryCount    int
	FirstDeliveredAt int64 // ms
	LastError        string
	KeyHash          uint64
	HasKey           bool
	ExpiresAt        int64 // ms
}

func decodeSnapshotV0(payload []byte) (queue.Snapshot, error) {
	var w snapshotV0
	if err := state.DecodeJSON(payload, &w, false); err != nil {
		return queue.Snapshot{}, fmt.Errorf("version-0 record: %w", err)
	}
	snap := queue.Snapshot{Floor: w.Floor, Done: w.Done}
	if len(w.Counts) > 0 {
		snap.Counts = make(map[int64]queue.Count, len(w.Counts))
		for off, c := range w.Counts {
			snap.Counts[off] = queue.Count{Deliveries: c.Deliveries, FirstDeliveredAt: c.FirstDeliveredAt, LastError: c.LastError}
		}
	}
	return snap, nil
}

func decodeParkedV0(payload []byte) (queue.Parked, error) {
	var w parkedV0
	if err := state.DecodeJSON(payload, &w, false); err != nil {
		return queue.Parked{}, fmt.Errorf("version-0 record: %w", err)
	}
	return queue.Parked{Offset: w.Offset, Due: w.Due, DeliveryCount: w.DeliveryCount, FirstDeliveredAt: w.FirstDeliveredAt,
		LastError: w.LastError, KeyHash: w.KeyHash, HasKey: w.HasKey, ExpiresAt: w.ExpiresAt}, nil
}

package broker

import (
	"errors"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// Kafka group configs (DescribeConfigs/IncrementalAlterConfigs resource
// type GROUP: share.auto.offset.reset, share.record.lock.duration.ms, …).
// The Kafka front end owns their meaning and encoding; the broker stores
// each group's set, opaque, under "kafka-gcfg/<group>", written with sync,
// so that a config acknowledged to a client survives a crash. A group's
// configs exist independently of its subscriptions (Kafka lets them be set
// before the group first joins); the Kafka front end deletes them with the
// group (DeleteGroups).

var groupConfigPrefix = []byte("kafka-gcfg/")

func groupConfigKey(group string) []byte {
	return append(append([]byte(nil), groupConfigPrefix...), group...)
}

// GroupConfigData returns the stored configs of a group, nil if it has none.
func (b *Broker) GroupConfigData(group string) ([]byte, error) {
	v, err := b.cfg.State.Get(groupConfigKey(group))
	switch {
	case errors.Is(err, state.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, errs.Wrap(errs.StorageFailed, err, "read configs of group %q", group)
	}
	return v, nil
}

// SetGroupConfigData stores a group's configs, durably; nil (or empty)
// data deletes them.
func (b *Broker) SetGroupConfigData(group string, data []byte) error {
	if group == "" {
		return errs.New(errs.InvalidArgument, "group name is empty")
	}
	batch := b.cfg.State.NewBatch()
	if len(data) == 0 {
		batch.Delete(groupConfigKey(group))
	} else {
		batch.Set(groupConfigKey(group), data)
	}
	if err := batch.Commit(true); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "store configs of group %q", group)
	}
	return nil
}

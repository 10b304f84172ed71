package broker

import (
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// Changing a topic's config after creation (Kafka IncrementalAlterConfigs
// and AlterConfigs). Only the settings a running topic can apply at once
// may change: retention by age and by bytes (handed to the open partition
// logs, enforced by the next maintenance pass) and the largest record batch
// accepted (checked on every append). Everything else is fixed at creation.

// TopicDefaults returns the server's topic defaults (what an unset config
// field becomes).
func (b *Broker) TopicDefaults() catalog.Defaults { return b.cfg.Defaults }

// MaxStorableMessageBytes is the largest MaxMessageBytes a topic may have:
// the partition logs' batch limit (the server's storage.max-batch-bytes),
// fixed when a log opens and bounding what recovery reads.
func (b *Broker) MaxStorableMessageBytes() int32 {
	n := b.cfg.Log.Limits.MaxBatchBytes
	if n <= 0 {
		n = batch.DefaultLimits().MaxBatchBytes
	}
	return int32(n)
}

// checkMessageLimit refuses a new message size limit the logs could not
// store.
func (b *Broker) checkMessageLimit(old, c catalog.TopicConfig) error {
	if lim := b.MaxStorableMessageBytes(); c.MaxMessageBytes > old.MaxMessageBytes && c.MaxMessageBytes > lim {
		return errs.New(errs.InvalidArgument, "max message bytes %d exceeds this server's largest storable batch, %d bytes (storage.max-batch-bytes)", c.MaxMessageBytes, lim)
	}
	return nil
}

// UpdateTopicConfig changes a topic's config: update is called with a copy
// of the current config and edits it; the result is validated, stored in
// the catalog (synced) and applied to the live topic. Changing any field
// other than Retention, RetentionBytes and MaxMessageBytes is
// InvalidArgument. It returns the topic as stored.
func (b *Broker) UpdateTopicConfig(topicName string, update func(*catalog.TopicConfig) error) (catalog.Topic, error) {
	topicAdminMu.Lock()
	defer topicAdminMu.Unlock()
	t, err := b.topic(topicName)
	if err != nil {
		return catalog.Topic{}, err
	}
	t.life.RLock()
	meta := t.meta
	t.life.RUnlock()
	cfg := meta.Config
	if err := update(&cfg); err != nil {
		return catalog.Topic{}, err
	}
	mutable := cfg
	mutable.Retention, mutable.RetentionBytes, mutable.MaxMessageBytes = meta.Config.Retention, meta.Config.RetentionBytes, meta.Config.MaxMessageBytes
	if mutable != meta.Config {
		return catalog.Topic{}, errs.New(errs.InvalidArgument, "topic %q: only retention, retention bytes and max message bytes can change after creation", topicName)
	}
	if err := cfg.Validate(); err != nil {
		return catalog.Topic{}, err
	}
	if err := b.checkMessageLimit(meta.Config, cfg); err != nil {
		return catalog.Topic{}, err
	}
	if cfg == meta.Config {
		return meta, nil
	}
	meta.Config = cfg

	t.life.Lock()
	defer t.life.Unlock()
	if t.deleted {
		return catalog.Topic{}, errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	if err := b.catalog.PutTopic(meta, false); err != nil {
		return catalog.Topic{}, err
	}
	// Only the changed fields are written: others read the rest of t.meta
	// (its name, for one) without the lock.
	t.meta.Config.Retention = cfg.Retention
	t.meta.Config.RetentionBytes = cfg.RetentionBytes
	t.meta.Config.MaxMessageBytes = cfg.MaxMessageBytes
	for p, l := range t.logs() {
		if err := l.SetRetention(cfg.Retention, cfg.RetentionBytes); err != nil {
			b.logger.Error("applying retention", "topic", topicName, "partition", p, "err", err)
		}
	}
	b.logger.Info("topic config changed", "topic", topicName, "retention", cfg.Retention,
		"retention_bytes", cfg.RetentionBytes, "max_message_bytes", cfg.MaxMessageBytes)
	return t.meta, nil
}

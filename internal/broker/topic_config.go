package broker

import (
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// Changing a topic's config after creation (AlterTopic; Kafka
// IncrementalAlterConfigs and AlterConfigs). Every setting but two applies
// to the running topic at once:
//
//   - retention by age and by bytes: handed to the open partition logs,
//     enforced by the next maintenance pass;
//   - the largest message and record batch: checked on every publish;
//   - max messages, max bytes and discard: checked on every publish
//     (discard=new) and by every maintenance pass (discard=old). A bounded
//     topic's segment size (an eighth of the bound per partition) is chosen
//     when its partitions open, so after a new bound the topic is held to
//     within the old segment size until the next restart;
//   - the de-duplication window: the window of the topic's ids (a longer
//     window keeps the ids it still has for longer; ids it already forgot
//     stay forgotten);
//   - the message TTL: applies to messages queue subscriptions read from
//     then on (messages already read keep their expiry);
//   - work-queue retention: the next maintenance pass.
//
// The partition count changes only with AddPartitions. Durability cannot
// change: it decides how a partition's writer syncs and how much of its
// active segment recovery treats as a torn write after a crash, both fixed
// when the partition opens; data written under a lazy policy and recovered
// under "always" could be reported as corruption.

// TopicDefaults returns the server's topic defaults (what an unset config
// field becomes).
func (b *Broker) TopicDefaults() catalog.Defaults { return b.cfg.Defaults }

// MaxStorableMessageBytes is the largest MaxMessageBytes a topic may have:
// the partition logs' batch limit (the server's storage.max-batch-bytes),
// fixed when a log opens and bounding what recovery reads.
func (b *Broker) MaxStorableMessageBytes() int32 {
	return int32(b.cfg.Log.Limits.MaxBatchBytes)
}

// validateTopicConfig checks a filled topic config as created or
// changed by any front end: its settings, then its schema binding and
// catalog description.
func validateTopicConfig(c catalog.TopicConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := catalog.ValidateCatalogInfo(c); err != nil {
		return errs.New(errs.InvalidArgument, "%v", err)
	}
	return nil
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
// the catalog (synced) and applied to the live topic, or nothing changes.
// Changing Partitions or Durability is InvalidArgument. It returns the topic
// as stored.
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
	meta.Assignment = b.assignment(meta.Name, meta.ID)
	cfg := meta.Config
	if err := update(&cfg); err != nil {
		return catalog.Topic{}, err
	}
	if cfg.Replicas != meta.Config.Replicas {
		return catalog.Topic{}, errs.New(errs.InvalidArgument, "topic %q: the replication factor is fixed when the topic is created; move a partition's replicas with a reassignment instead", topicName)
	}
	if cfg.Partitions != meta.Config.Partitions {
		return catalog.Topic{}, errs.New(errs.InvalidArgument, "topic %q: the partition count changes only by adding partitions (it has %d)", topicName, meta.Config.Partitions)
	}
	if cfg.Durability != meta.Config.Durability {
		return catalog.Topic{}, errs.New(errs.InvalidArgument, "topic %q: durability cannot change from %s to %s: it decides how the partitions sync and how much of their newest data recovery may cut off after a crash, both fixed when they open; create a new topic with the durability you want",
			topicName, meta.Config.Durability, cfg.Durability)
	}
	if err := validateTopicConfig(cfg); err != nil {
		return catalog.Topic{}, err
	}
	if err := b.checkMessageLimit(meta.Config, cfg); err != nil {
		return catalog.Topic{}, err
	}
	if cfg.Equal(meta.Config) {
		return meta, nil
	}
	meta.Config = cfg
	if err := b.decide(change{kind: changeTopicConfig, topic: meta}); err != nil {
		return catalog.Topic{}, err
	}
	return meta, nil
}

// applyTopicConfig gives the topic of meta's id meta's config, but for its
// partition count (AddPartitions changes that).
func (b *Broker) applyTopicConfig(meta catalog.Topic, stamps []catalog.Stamp) error {
	topicName := meta.Name
	t, err := b.topic(topicName)
	if err != nil || t.meta.ID != meta.ID {
		return errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	t.life.Lock()
	defer t.life.Unlock()
	if t.deleted {
		return errs.New(errs.TopicNotFound, "topic %q not found", topicName)
	}
	cfg := meta.Config
	cfg.Partitions, cfg.Replicas = t.meta.Config.Partitions, t.meta.Config.Replicas
	next := t.meta
	next.Config = cfg
	next.Assignment = b.assignment(next.Name, next.ID)
	if err := b.catalog.PutTopic(next, false, stamps...); err != nil {
		return err
	}
	// Only the config is written: others read the rest of t.meta (its name,
	// for one) without the lock; the config is read under life.
	t.meta.Config = cfg
	for p, l := range t.logs() {
		if err := l.SetRetention(cfg.Retention, cfg.RetentionBytes); err != nil {
			b.logger.Error("applying retention", "topic", topicName, "partition", p, "err", err)
		}
	}
	t.dedup.setWindow(cfg.DedupWindow)
	b.logger.Info("topic config changed", "topic", topicName, "retention", cfg.Retention,
		"retention_bytes", cfg.RetentionBytes, "max_message_bytes", cfg.MaxMessageBytes,
		"max_messages", cfg.MaxMessages, "max_bytes", cfg.MaxBytes, "discard", cfg.Discard,
		"dedup_window", cfg.DedupWindow, "message_ttl", cfg.MessageTTL, "work_queue", cfg.WorkQueue,
		"schema_subject", cfg.SchemaSubject, "schema_mode", cfg.SchemaMode)
	return nil
}

// messageTTL is the topic's default message TTL (configs change under
// life).
func (t *topic) messageTTL() time.Duration {
	t.life.RLock()
	defer t.life.RUnlock()
	return t.meta.Config.MessageTTL
}

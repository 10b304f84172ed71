package kafka

import (
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
)

// applyConfigs applies Kafka topic configs to a Spool topic config.
func applyConfigs(cfg *catalog.TopicConfig, cs []kmsg.CreateTopicsRequestTopicConfig) error {
	for _, c := range cs {
		if c.Value == nil {
			continue
		}
		if err := applyConfig(cfg, c.Name, *c.Value); err != nil {
			return err
		}
	}
	return nil
}

// applyConfig sets one Kafka topic config.
func applyConfig(cfg *catalog.TopicConfig, name, value string) error {
	num := func() (int64, error) {
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("config %s: %q is not an integer", name, value)
		}
		return v, nil
	}
	switch name {
	case "retention.ms":
		v, err := num()
		if err != nil {
			return err
		}
		if v < 0 {
			cfg.Retention = 0 // -1: forever
		} else {
			cfg.Retention = time.Duration(v) * time.Millisecond
		}
	case "retention.bytes":
		v, err := num()
		if err != nil {
			return err
		}
		cfg.RetentionBytes = max(v, 0)
	case "max.message.bytes":
		v, err := num()
		if err != nil {
			return err
		}
		if v <= 0 || v > 64<<20 {
			return fmt.Errorf("config max.message.bytes: %d is outside [1, %d]", v, 64<<20)
		}
		cfg.MaxMessageBytes = int32(v)
	case "cleanup.policy":
		if value != "delete" {
			return fmt.Errorf("config cleanup.policy: only delete is supported")
		}
	case "min.insync.replicas", "segment.bytes", "segment.ms", "compression.type", "message.timestamp.type", "unclean.leader.election.enable":
		// Accepted and ignored: a single node; segments and compression are
		// the server's.
	default:
		return fmt.Errorf("config %s is not supported", name)
	}
	return nil
}

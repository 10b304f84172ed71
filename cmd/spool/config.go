package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/config"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/server"
)

// fileConfig is the YAML configuration of `spool serve` (docs/config.md).
// Precedence: built-in defaults < file (--config) < SPOOL_* environment
// variables < command-line flags.
type fileConfig struct {
	Data             string `yaml:"data"`
	AllowNonLoopback bool   `yaml:"allow-non-loopback"`
	HTTP             struct {
		Addr string `yaml:"addr"`
	} `yaml:"http"`
	Kafka struct {
		Addr           string `yaml:"addr"`            // "-" disables the Kafka listener
		AdvertisedAddr string `yaml:"advertised-addr"` // host:port named in Metadata; default the listener's
		// GroupInitialRebalanceDelay: a consumer group leaving Empty waits
		// this long for more members before its first rebalance.
		GroupInitialRebalanceDelay time.Duration `yaml:"group-initial-rebalance-delay"`
	} `yaml:"kafka"`
	Log struct {
		Format string `yaml:"format"` // text or json
		Level  string `yaml:"level"`  // debug, info, warn, error
	} `yaml:"log"`
	Storage struct {
		SegmentBytes  config.ByteSize `yaml:"segment-bytes"`
		MaxBatchBytes config.ByteSize `yaml:"max-batch-bytes"`
		FlushBytes    config.ByteSize `yaml:"flush-bytes"`
	} `yaml:"storage"`
	Topics struct {
		Partitions      int32           `yaml:"partitions"`
		Durability      string          `yaml:"durability"`
		DedupWindow     time.Duration   `yaml:"dedup-window"`
		MaxMessageBytes config.ByteSize `yaml:"max-message-bytes"`
		Retention       time.Duration   `yaml:"retention"`
		RetentionBytes  config.ByteSize `yaml:"retention-bytes"`
	} `yaml:"topics"`
	Dedup struct {
		MaxEntries int `yaml:"max-entries"`
	} `yaml:"dedup"`
}

func defaultFileConfig() fileConfig {
	var c fileConfig
	c.Data = server.DefaultDataDir
	c.HTTP.Addr = server.DefaultHTTPAddr
	c.Kafka.Addr = server.DefaultKafkaAddr
	c.Kafka.GroupInitialRebalanceDelay = server.DefaultKafkaGroupInitialRebalanceDelay
	c.Log.Format = "text"
	c.Log.Level = "info"
	c.Storage.SegmentBytes = 128 * config.MiB
	c.Storage.MaxBatchBytes = config.ByteSize(server.DefaultMaxBatchBytes)
	c.Storage.FlushBytes = 1 * config.MiB
	d := catalog.DefaultDefaults()
	c.Topics.Partitions = d.Partitions
	c.Topics.Durability = "always"
	c.Topics.DedupWindow = d.DedupWindow
	c.Topics.MaxMessageBytes = config.ByteSize(d.MaxMessageBytes)
	c.Dedup.MaxEntries = 200_000
	return c
}

// loadFileConfig applies the config file (if any) and the environment.
func loadFileConfig(path string, environ []string) (fileConfig, error) {
	c := defaultFileConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, err
		}
		if err := config.Load(path, data, &c); err != nil {
			return c, err
		}
	}
	// Variables that configure the CLI rather than the server.
	var env []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "SPOOL_SERVER=") || strings.HasPrefix(kv, "SPOOL_CONFIG=") {
			continue
		}
		env = append(env, kv)
	}
	if err := config.ApplyEnv("SPOOL", env, &c); err != nil {
		return c, err
	}
	return c, nil
}

// serverConfig validates c and turns it into a server.Config.
func (c fileConfig) serverConfig(logger *slog.Logger) (server.Config, error) {
	policy, err := seglog.ParsePolicy(c.Topics.Durability)
	if err != nil {
		return server.Config{}, err
	}
	if c.Storage.MaxBatchBytes > c.Storage.SegmentBytes {
		return server.Config{}, fmt.Errorf("storage.max-batch-bytes (%s) exceeds storage.segment-bytes (%s)", c.Storage.MaxBatchBytes, c.Storage.SegmentBytes)
	}
	lim := batch.DefaultLimits()
	lim.MaxBatchBytes = int(c.Storage.MaxBatchBytes)
	delay := c.Kafka.GroupInitialRebalanceDelay
	if delay < 0 || delay > 5*time.Minute {
		return server.Config{}, fmt.Errorf("kafka.group-initial-rebalance-delay (%s) must be between 0 and 5m", delay)
	}
	return server.Config{
		DataDir:                         c.Data,
		HTTPAddr:                        c.HTTP.Addr,
		KafkaAddr:                       c.Kafka.Addr,
		KafkaAdvertisedAddr:             c.Kafka.AdvertisedAddr,
		KafkaGroupInitialRebalanceDelay: &delay,
		AllowNonLoopback:                c.AllowNonLoopback,
		Logger:                          logger,
		Log: seglog.Options{
			SegmentBytes: int64(c.Storage.SegmentBytes),
			FlushBytes:   int(c.Storage.FlushBytes),
			Limits:       lim,
		},
		Topics: catalog.Defaults{
			Partitions:      c.Topics.Partitions,
			DedupWindow:     c.Topics.DedupWindow,
			MaxMessageBytes: int32(c.Topics.MaxMessageBytes),
			Durability:      policy,
			Retention:       c.Topics.Retention,
			RetentionBytes:  int64(c.Topics.RetentionBytes),
		},
		DedupMaxEntries: c.Dedup.MaxEntries,
	}, nil
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

package server

import (
	"fmt"
	"github.com/spoolmq/spool/bytesize"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spoolmq/spool/internal/config"
)

// FileConfig is the configuration file of `spool serve` (docs/config.md):
// YAML, read strictly, whose keys are the yaml tags below. Every setting
// of the file is a field of Config too; FileConfig adds the log format and
// level, from which Config makes the Logger.
type FileConfig struct {
	Data     string `yaml:"data"`
	Insecure bool   `yaml:"insecure"`
	// AllowNonLoopback is Insecure's deprecated former name.
	AllowNonLoopback bool `yaml:"allow-non-loopback"`
	HTTP             struct {
		Addr string `yaml:"addr"`
	} `yaml:"http"`
	Kafka struct {
		Addr                       string        `yaml:"addr"` // "-" disables the Kafka listener
		AdvertisedAddr             string        `yaml:"advertised-addr"`
		GroupInitialRebalanceDelay time.Duration `yaml:"group-initial-rebalance-delay"`
	} `yaml:"kafka"`
	SchemaRegistry struct {
		Addr string `yaml:"addr"` // "-" disables the schema registry's listener
	} `yaml:"schema-registry"`
	Log struct {
		Format string `yaml:"format"` // text or json
		Level  string `yaml:"level"`  // debug, info, warn or error
	} `yaml:"log"`
	Storage StorageConfig `yaml:"storage"`
	Topics  TopicDefaults `yaml:"topics"`
	Dedup   struct {
		MaxEntries int `yaml:"max-entries"`
	} `yaml:"dedup"`
	Memory struct {
		// Limit is the process's memory budget (Config.MemoryLimit).
		Limit bytesize.Size `yaml:"limit"`
	} `yaml:"memory"`
	Cluster ClusterConfig `yaml:"cluster"`
	TLS     TLSConfig     `yaml:"tls"`
	Auth    AuthConfig    `yaml:"auth"`
}

// DefaultFileConfig returns the configuration before any file, variable or
// flag: DefaultConfig's settings, text logs at level info.
func DefaultFileConfig() FileConfig {
	d := DefaultConfig()
	var f FileConfig
	f.Data = d.DataDir
	f.Insecure = d.Insecure
	f.AllowNonLoopback = d.AllowNonLoopback
	f.HTTP.Addr = d.HTTPAddr
	f.Kafka.Addr = d.KafkaAddr
	f.Kafka.AdvertisedAddr = d.KafkaAdvertisedAddr
	f.Kafka.GroupInitialRebalanceDelay = *d.KafkaGroupInitialRebalanceDelay
	f.SchemaRegistry.Addr = d.SchemaRegistryAddr
	f.Log.Format = "text"
	f.Log.Level = "info"
	f.Storage = d.Storage
	f.Topics = d.Topics
	f.Dedup.MaxEntries = d.DedupMaxEntries
	f.Memory.Limit = d.MemoryLimit
	f.TLS = d.TLS
	f.Auth = d.Auth
	return f
}

// envPrefix begins the environment variables that set keys of the file:
// SPOOL_HTTP_ADDR sets http.addr.
const envPrefix = "SPOOL"

// notKeys are the SPOOL_ variables that are not keys of the file: the
// file's name, and the server and schema registry addresses of the
// command-line client.
var notKeys = []string{"SPOOL_CONFIG", "SPOOL_SERVER", "SPOOL_SCHEMA_REGISTRY", "SPOOL_API_KEY"}

// LoadFileConfig returns the configuration of `spool serve` before its
// command-line flags: the defaults, then the YAML file at path, then the
// SPOOL_* variables of environ (as os.Environ gives them), such as
// SPOOL_HTTP_ADDR for http.addr. An empty path means the file that
// SPOOL_CONFIG names in environ, or no file.
//
// Every problem of the file is reported at once, one per line, with file,
// line and column; an unknown SPOOL_* variable is a problem too (but for
// SPOOL_CONFIG and SPOOL_SERVER, the client's server address).
func LoadFileConfig(path string, environ []string) (FileConfig, error) {
	if path == "" {
		path = lookupEnv(environ, "SPOOL_CONFIG")
	}
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return FileConfig{}, fmt.Errorf("server: config file: %w", err)
		}
	}
	return ParseFileConfig(path, data, environ)
}

// ParseFileConfig is LoadFileConfig for a file already read: data is its
// YAML (none if empty), name its name in messages. SPOOL_CONFIG is
// ignored.
func ParseFileConfig(name string, data []byte, environ []string) (FileConfig, error) {
	f := DefaultFileConfig()
	if err := config.Load(name, data, &f); err != nil {
		return FileConfig{}, err
	}
	var env []string
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(notKeys, k) {
			env = append(env, kv)
		}
	}
	if err := config.ApplyEnv(envPrefix, env, &f); err != nil {
		return FileConfig{}, err
	}
	return f, nil
}

// LoadConfig is LoadFileConfig followed by FileConfig.Config, for a
// program that runs a server as `spool serve` would.
func LoadConfig(path string, environ []string) (Config, error) {
	f, err := LoadFileConfig(path, environ)
	if err != nil {
		return Config{}, err
	}
	return f.Config()
}

// Config returns the server configuration f sets, with a Logger writing
// to standard error in f's log format and level. New checks the rest.
func (f FileConfig) Config() (Config, error) {
	logger, err := newLogger(os.Stderr, f.Log.Format, f.Log.Level)
	if err != nil {
		return Config{}, err
	}
	delay := f.Kafka.GroupInitialRebalanceDelay
	return Config{
		DataDir:                         f.Data,
		HTTPAddr:                        f.HTTP.Addr,
		KafkaAddr:                       f.Kafka.Addr,
		KafkaAdvertisedAddr:             f.Kafka.AdvertisedAddr,
		KafkaGroupInitialRebalanceDelay: &delay,
		SchemaRegistryAddr:              f.SchemaRegistry.Addr,
		Insecure:                        f.Insecure,
		AllowNonLoopback:                f.AllowNonLoopback,
		Logger:                          logger,
		Storage:                         f.Storage,
		Topics:                          f.Topics,
		DedupMaxEntries:                 f.Dedup.MaxEntries,
		MemoryLimit:                     f.Memory.Limit,
		Cluster:                         f.Cluster,
		TLS:                             f.TLS,
		Auth:                            f.Auth,
	}, nil
}

// Marshal returns f as YAML, every key included, as `spool serve
// --print-config` prints it; LoadFileConfig reads it back.
func (f FileConfig) Marshal() ([]byte, error) { return config.Marshal(f) }

// newLogger returns a logger writing to w in format (text or json) at
// level (debug, info, warn or error).
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("server: log.level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("server: log.format %q: want text or json", format)
}

// lookupEnv returns the value of name in environ, "" if it is not set.
func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v // the first one, as os.Getenv reads it
		}
	}
	return ""
}

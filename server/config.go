package server

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spoolmq/spool/bytesize"
	"github.com/spoolmq/spool/internal/api"
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/kafka"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/tlsutil"
)

// Config configures a Server. The zero value of every field means its
// default (see DefaultConfig). Where a field is also a key of the
// configuration file of `spool serve` (docs/config.md, FileConfig), its
// comment names the key; New's errors name fields by those keys.
type Config struct {
	// DataDir is the data directory (data); default "./spool-data".
	DataDir string
	// HTTPAddr is where the native API, /healthz, /readyz and /metrics
	// listen (http.addr); default "127.0.0.1:7070". Port 0 picks a free
	// port (see Server.HTTPAddr).
	HTTPAddr string
	// KafkaAddr is where the Kafka protocol listens (kafka.addr); default
	// "127.0.0.1:9092", or "127.0.0.1:0" (a free port) when HTTPAddr asks
	// for a free port, so that embedded servers in tests never collide;
	// "-" disables it.
	KafkaAddr string
	// KafkaAdvertisedAddr is the host:port Kafka Metadata responses name
	// (kafka.advertised-addr); default the listener's address.
	KafkaAdvertisedAddr string
	// KafkaGroupInitialRebalanceDelay is how long a Kafka consumer group
	// leaving the Empty state waits for more members before its first
	// rebalance (kafka.group-initial-rebalance-delay), 0 to 5 minutes; nil:
	// 100 ms.
	KafkaGroupInitialRebalanceDelay *time.Duration
	// SchemaRegistryAddr is where the schema registry's REST API listens
	// (schema-registry.addr); default "127.0.0.1:8081", or
	// "127.0.0.1:0" when HTTPAddr asks for a free port; "-" disables the
	// listener (the registry still validates publishes and applies a
	// cluster's changes).
	SchemaRegistryAddr string
	// Insecure accepts listeners on non-loopback addresses without
	// authentication (insecure): without it, New refuses any listener
	// (HTTPAddr, KafkaAddr, SchemaRegistryAddr, the cluster's addresses,
	// DebugAddr) that is not on loopback unless Auth.Enabled (the debug
	// listener: in any case). With it, the server logs a warning naming the
	// exposed listeners at start and every minute while it runs.
	Insecure bool
	// AllowNonLoopback (allow-non-loopback) is Insecure's former name.
	//
	// Deprecated: set Insecure; this one still means it, and the server
	// logs that it is deprecated.
	AllowNonLoopback bool
	// DebugAddr is the address of a listener the embedding program serves
	// itself without authentication (spool serve --debug-addr: Go's
	// profiles), "" for none. The server does not open it, but checks it as
	// its own: on a non-loopback address it needs Insecure, even with
	// Auth.Enabled, and Insecure's warnings name it.
	DebugAddr string
	// Logger receives the server's structured logs; default slog.Default().
	Logger *slog.Logger
	// Storage configures the partition logs.
	Storage StorageConfig
	// Topics are the defaults for new topics' configs.
	Topics TopicDefaults
	// DedupMaxEntries bounds the message ids remembered per topic for
	// de-duplication (dedup.max-entries), about 190 bytes of memory each;
	// default 200,000.
	DedupMaxEntries int
	// MemoryLimit is the memory budget of the process (memory.limit):
	// spool serve hands it, less a tenth and at least 64 MiB, to the Go
	// runtime as its soft memory limit (SoftMemoryLimitOf; the rest is for
	// what the runtime does not count, such as the program's code) unless GOMEMLIMIT is
	// set, which wins, and
	// the in-memory bounds left unset derive from it so that their sum
	// stays under it: the native publish budget (API.PublishBudgetBytes)
	// is a quarter of it, the budget of publish bodies waiting for it and
	// the Kafka produce budget a sixteenth each, and an HTTP/2
	// connection's receive window a thousandth (DESIGN.md, "Memory
	// budget"). Default 512 MiB; at least 128 MiB.
	MemoryLimit bytesize.Size
	// API bounds the native API's memory use.
	API APILimits
	// MaxConnections bounds the concurrent connections of each listener;
	// further clients wait in the kernel's backlog. Default 10,000.
	MaxConnections int
	// Cluster makes the server a node of a cluster; unset: a single node.
	Cluster ClusterConfig
	// TLS makes every listener speak TLS; unset: plaintext.
	TLS TLSConfig
	// Auth turns authentication on (users and API keys,
	// internal/auth/users); unset: off.
	Auth AuthConfig

	// insecureWarnEvery is how often an insecure server repeats its
	// warning; 0: every minute. Tests shorten it.
	insecureWarnEvery time.Duration
}

// StorageConfig configures the partition logs (the storage section of the
// configuration file). Durability and retention come from each topic's
// config.
type StorageConfig struct {
	// SegmentBytes is the size at which a partition log's active segment
	// is rolled (storage.segment-bytes), 4 KiB to 2 GiB; default 128 MiB.
	SegmentBytes bytesize.Size `yaml:"segment-bytes"`
	// MaxBatchBytes is the largest record batch stored
	// (storage.max-batch-bytes), at most SegmentBytes: the ceiling of
	// every topic's max message bytes, and a bound on what recovery reads.
	// Default 16 MiB.
	MaxBatchBytes bytesize.Size `yaml:"max-batch-bytes"`
	// FlushBytes caps the bytes of one group-commit write
	// (storage.flush-bytes); default 1 MiB.
	FlushBytes bytesize.Size `yaml:"flush-bytes"`
	// MinFreeBytes is the free-space watermark of the data directory's
	// file system (storage.min-free-bytes): below it publishes are refused
	// with the retriable disk_full and /readyz fails with reason disk,
	// until the free space is back at 1.25 × the watermark (at least 1 MiB
	// more). Default 128 MiB; 1B effectively turns it off.
	MinFreeBytes bytesize.Size `yaml:"min-free-bytes"`
}

// DefaultMinFreeBytes is StorageConfig.MinFreeBytes's default.
const DefaultMinFreeBytes = broker.DefaultMinFreeBytes

// TopicDefaults are what a new topic gets for the config fields its
// creator leaves unset (the topics section of the configuration file).
type TopicDefaults struct {
	// Partitions (topics.partitions), 1 to 1,024; default 1.
	Partitions int32 `yaml:"partitions"`
	// Durability (topics.durability); default DurabilityAlways.
	Durability Durability `yaml:"durability"`
	// DedupWindow is how long a message id is remembered
	// (topics.dedup-window), 1 ms to 7 days; default 2 minutes.
	DedupWindow time.Duration `yaml:"dedup-window"`
	// MaxMessageBytes bounds a message's key, value and headers
	// (topics.max-message-bytes), at most 64 MiB; default 1 MiB. It is
	// capped at Storage.MaxBatchBytes.
	MaxMessageBytes bytesize.Size `yaml:"max-message-bytes"`
	// Retention deletes whole segments older than this
	// (topics.retention); 0 keeps them forever.
	Retention time.Duration `yaml:"retention"`
	// RetentionBytes keeps at most this many bytes per partition, oldest
	// segments deleted first (topics.retention-bytes); 0: no limit.
	RetentionBytes bytesize.Size `yaml:"retention-bytes"`
}

// Durability says when a topic's writes are made durable.
type Durability string

const (
	// DurabilityAlways acknowledges a publish only once it is fsynced;
	// concurrent publishes share one fsync (group commit).
	DurabilityAlways Durability = "always"
	// DurabilityInterval acknowledges once written to the operating system
	// and fsyncs every 50 ms: a power loss can lose what was acknowledged
	// in the last interval.
	DurabilityInterval Durability = "interval"
	// DurabilityNone fsyncs only when a segment is rolled and at shutdown:
	// a power loss can lose anything acknowledged since.
	DurabilityNone Durability = "none"
)

// policy returns the partition logs' policy of d; "" is DurabilityAlways.
func (d Durability) policy() (seglog.Policy, error) {
	p, err := seglog.ParsePolicy(string(d))
	if err != nil {
		return 0, fmt.Errorf("durability %q: want always, interval or none", string(d))
	}
	return p, nil
}

// UnmarshalText accepts always, interval or none.
func (d *Durability) UnmarshalText(text []byte) error {
	v := Durability(text)
	if _, err := v.policy(); err != nil {
		return errors.New("want always, interval or none")
	}
	*d = v
	return nil
}

// MarshalText returns d as it is written in a configuration file.
func (d Durability) MarshalText() ([]byte, error) { return []byte(d), nil }

// APILimits bound the memory the native API can be made to use.
type APILimits struct {
	// MaxRequestBytes bounds one request message (a publish batch);
	// larger requests are refused while being read. Default 8 MiB.
	MaxRequestBytes bytesize.Size
	// PublishBudgetBytes bounds the memory held by all publish requests in
	// flight together; a request that does not fit waits, which stops its
	// stream from being read. Default a quarter of MemoryLimit (128 MiB).
	PublishBudgetBytes bytesize.Size
	// MaxSessions bounds concurrent Consume and ReadTopic streams
	// together; more are refused with resource_exhausted. Default 10,000.
	MaxSessions int
}

// DefaultDataDir is where Spool keeps its data unless told otherwise.
const DefaultDataDir = "./spool-data"

// DefaultHTTPAddr is the native API's default address.
const DefaultHTTPAddr = "127.0.0.1:7070"

// DefaultKafkaAddr is the Kafka protocol's default address.
const DefaultKafkaAddr = "127.0.0.1:9092"

// DefaultSchemaRegistryAddr is the schema registry's default address.
const DefaultSchemaRegistryAddr = "127.0.0.1:8081"

// DefaultMemoryLimit is the default of Config.MemoryLimit (memory.limit).
const DefaultMemoryLimit = 512 * bytesize.MiB

// minMemoryLimit is the smallest Config.MemoryLimit accepted.
const minMemoryLimit = 128 * bytesize.MiB

// The in-memory bounds that derive from the memory limit (DESIGN.md,
// "Memory budget"): together the three budgets take three eighths of it,
// leaving the rest to what grows with connections, topics and sessions
// and to the process's base.

// SoftMemoryLimitOf is the Go runtime's soft memory limit spool serve
// sets under a memory limit: the limit less an eighth of it, and less at
// least 80 MiB, left to the resident memory the runtime does not count
// (the program's code and read-only data: about 40 MiB resident measured
// under load) and to the runtime's own overshoot of its soft limit under
// overload (peaks of 95 % of the limit were measured with a tenth and
// 64 MiB left).
func SoftMemoryLimitOf(limit bytesize.Size) bytesize.Size {
	return limit - max(limit/8, 80*bytesize.MiB)
}

// PublishBudgetOf is the native publish budget that derives from a memory
// limit: a quarter of it.
func PublishBudgetOf(limit bytesize.Size) bytesize.Size { return limit / 4 }

// PublishIntakeOf is the budget of the native publish requests being read
// or waiting for the publish budget that derives from a memory limit: a
// sixteenth of it.
func PublishIntakeOf(limit bytesize.Size) bytesize.Size { return limit / 16 }

// KafkaProduceBudgetOf is the Kafka produce budget that derives from a
// memory limit: a sixteenth of it, charged twice each request's bytes.
func KafkaProduceBudgetOf(limit bytesize.Size) bytesize.Size { return limit / 16 }

// HTTP2ReceiveBufferOf is what one HTTP/2 connection may buffer unread
// (its receive window) under a memory limit: a thousandth of it, between
// 64 KiB and Go's default of 1 MiB (512 KiB at the default limit).
func HTTP2ReceiveBufferOf(limit bytesize.Size) bytesize.Size {
	return min(max(limit/1024, 64*bytesize.KiB), bytesize.MiB)
}

// defaultMaxConnections is the default of Config.MaxConnections.
const defaultMaxConnections = 10_000

// maxRebalanceDelay bounds Config.KafkaGroupInitialRebalanceDelay.
const maxRebalanceDelay = 5 * time.Minute

// DefaultConfig returns the configuration a zero Config stands for, every
// field at its default (Logger nil: slog.Default()). The defaults belong
// to the parts of the server they configure; this gathers them.
func DefaultConfig() Config {
	topics := catalog.DefaultDefaults()
	lim := api.DefaultLimits()
	delay := kafka.DefaultGroupInitialRebalanceDelay
	return Config{
		DataDir:                         DefaultDataDir,
		HTTPAddr:                        DefaultHTTPAddr,
		KafkaAddr:                       DefaultKafkaAddr,
		SchemaRegistryAddr:              DefaultSchemaRegistryAddr,
		KafkaGroupInitialRebalanceDelay: &delay,
		Storage: StorageConfig{
			SegmentBytes:  seglog.DefaultSegmentBytes,
			MaxBatchBytes: batch.DefaultMaxBatchBytes,
			FlushBytes:    seglog.DefaultFlushBytes,
			MinFreeBytes:  DefaultMinFreeBytes,
		},
		Topics: TopicDefaults{
			Partitions:      topics.Partitions,
			Durability:      Durability(topics.Durability.String()),
			DedupWindow:     topics.DedupWindow,
			MaxMessageBytes: bytesize.Size(topics.MaxMessageBytes),
			Retention:       topics.Retention,
			RetentionBytes:  bytesize.Size(topics.RetentionBytes),
		},
		DedupMaxEntries: broker.DefaultDedupMaxEntries,
		MemoryLimit:     DefaultMemoryLimit,
		API: APILimits{
			MaxRequestBytes:    bytesize.Size(lim.MaxRequestBytes),
			PublishBudgetBytes: PublishBudgetOf(DefaultMemoryLimit),
			MaxSessions:        lim.MaxSessions,
		},
		MaxConnections: defaultMaxConnections,
		TLS:            TLSConfig{ClientAuth: tlsutil.ClientAuthNone, MinVersion: "1.2"},
	}
}

// complete returns c with every unset field at its default and the data
// directory absolute, or every problem with c at once.
func (c Config) complete() (Config, error) {
	def := DefaultConfig()
	orDefault(&c.DataDir, def.DataDir)
	orDefault(&c.HTTPAddr, def.HTTPAddr)
	if c.KafkaAddr == "" {
		c.KafkaAddr = def.KafkaAddr
		if _, port, err := net.SplitHostPort(c.HTTPAddr); err == nil && port == "0" {
			c.KafkaAddr = "127.0.0.1:0"
		}
	}
	if c.SchemaRegistryAddr == "" {
		c.SchemaRegistryAddr = def.SchemaRegistryAddr
		if _, port, err := net.SplitHostPort(c.HTTPAddr); err == nil && port == "0" {
			c.SchemaRegistryAddr = "127.0.0.1:0"
		}
	}
	if c.KafkaGroupInitialRebalanceDelay == nil {
		c.KafkaGroupInitialRebalanceDelay = def.KafkaGroupInitialRebalanceDelay
	} else {
		d := *c.KafkaGroupInitialRebalanceDelay // a copy: the caller's may change
		c.KafkaGroupInitialRebalanceDelay = &d
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	orDefault(&c.Storage.SegmentBytes, def.Storage.SegmentBytes)
	orDefault(&c.Storage.MaxBatchBytes, def.Storage.MaxBatchBytes)
	orDefault(&c.Storage.FlushBytes, def.Storage.FlushBytes)
	orDefault(&c.Storage.MinFreeBytes, def.Storage.MinFreeBytes)
	orDefault(&c.Topics.Partitions, def.Topics.Partitions)
	orDefault(&c.Topics.Durability, def.Topics.Durability)
	orDefault(&c.Topics.DedupWindow, def.Topics.DedupWindow)
	orDefault(&c.Topics.MaxMessageBytes, def.Topics.MaxMessageBytes)
	orDefault(&c.DedupMaxEntries, def.DedupMaxEntries)
	orDefault(&c.API.MaxRequestBytes, def.API.MaxRequestBytes)
	orDefault(&c.MemoryLimit, def.MemoryLimit)
	if c.MemoryLimit > 0 {
		orDefault(&c.API.PublishBudgetBytes, PublishBudgetOf(c.MemoryLimit))
	}
	orDefault(&c.API.MaxSessions, def.API.MaxSessions)
	orDefault(&c.MaxConnections, def.MaxConnections)
	orDefault(&c.TLS.ClientAuth, def.TLS.ClientAuth)
	orDefault(&c.TLS.MinVersion, def.TLS.MinVersion)

	var errList []error
	check := func(err error) {
		if err != nil {
			errList = append(errList, err)
		}
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		check(fmt.Errorf("server: data directory: %w", err))
	}
	c.DataDir = abs
	if c.AllowNonLoopback {
		c.Insecure = true // the deprecated name
	}
	check(checkAddr("http", c.HTTPAddr))
	if c.KafkaAddr != "-" {
		check(checkAddr("kafka", c.KafkaAddr))
	}
	if c.SchemaRegistryAddr != "-" {
		check(checkAddr("schema-registry", c.SchemaRegistryAddr))
	}
	if c.DebugAddr != "" {
		check(checkAddr("debug", c.DebugAddr))
	}
	if adv := c.KafkaAdvertisedAddr; adv != "" {
		_, _, err := splitAdvertised(adv)
		check(err)
	}
	errList = append(errList, c.Cluster.check()...)
	check(c.checkExposure())
	check(c.TLS.check(c.Cluster.Enabled()))
	if c.Auth.Enabled && c.Cluster.Enabled() && (!c.TLS.Enabled() || c.TLS.ClientAuth == tlsutil.ClientAuthNone) {
		// Nodes forward publishes and share requests to each other's
		// listeners, authenticated by their certificates.
		check(errors.New("server: auth.enabled on a cluster node needs TLS with client certificates (tls.client-auth: request or require): " +
			"nodes authenticate the requests they forward to each other with their certificates (with auth.authorization, name the nodes' certificates in auth.super-users)"))
	}
	if c.Auth.Authorization && !c.Auth.Enabled {
		check(errors.New("server: auth.authorization needs auth.enabled: rules name authenticated principals"))
	}
	for _, u := range c.Auth.SuperUsers {
		if strings.TrimSpace(u) == "" {
			check(errors.New("server: auth.super-users holds an empty name"))
		}
	}
	if d := *c.KafkaGroupInitialRebalanceDelay; d < 0 || d > maxRebalanceDelay {
		check(fmt.Errorf("server: kafka.group-initial-rebalance-delay (%s) must be between 0 and %s", d, maxRebalanceDelay))
	}
	st := c.Storage
	if st.SegmentBytes < seglog.MinSegmentBytes || st.SegmentBytes > seglog.MaxSegmentBytes {
		check(fmt.Errorf("server: storage.segment-bytes (%s) must be between %s and %s",
			st.SegmentBytes, bytesize.Size(seglog.MinSegmentBytes), bytesize.Size(seglog.MaxSegmentBytes)))
	}
	switch {
	case st.MaxBatchBytes < 0:
		check(fmt.Errorf("server: storage.max-batch-bytes (%s) must not be negative", st.MaxBatchBytes))
	case st.MaxBatchBytes > st.SegmentBytes:
		check(fmt.Errorf("server: storage.max-batch-bytes (%s) exceeds storage.segment-bytes (%s)", st.MaxBatchBytes, st.SegmentBytes))
	}
	if st.FlushBytes < 0 || st.FlushBytes > seglog.MaxSegmentBytes {
		check(fmt.Errorf("server: storage.flush-bytes (%s) must be between 1B and %s", st.FlushBytes, bytesize.Size(seglog.MaxSegmentBytes)))
	}
	_, err = c.Topics.catalog()
	check(err)
	if c.DedupMaxEntries < 0 {
		check(fmt.Errorf("server: dedup.max-entries (%d) must not be negative", c.DedupMaxEntries))
	}
	if c.API.MaxRequestBytes < 0 {
		check(fmt.Errorf("server: API.MaxRequestBytes (%s) must not be negative", c.API.MaxRequestBytes))
	}
	if c.API.PublishBudgetBytes < 0 {
		check(fmt.Errorf("server: API.PublishBudgetBytes (%s) must not be negative", c.API.PublishBudgetBytes))
	}
	if c.MemoryLimit < minMemoryLimit {
		check(fmt.Errorf("server: memory.limit (%s) must be at least %s", c.MemoryLimit, minMemoryLimit))
	}
	if c.API.MaxSessions < 0 {
		check(fmt.Errorf("server: API.MaxSessions (%d) must not be negative", c.API.MaxSessions))
	}
	if c.MaxConnections < 0 {
		check(fmt.Errorf("server: MaxConnections (%d) must not be negative", c.MaxConnections))
	}
	return c, errors.Join(errList...)
}

// orDefault sets *v to def if it is the zero value.
func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// catalog returns the broker's topic defaults for t, checked as the config
// of a topic that sets nothing itself.
func (t TopicDefaults) catalog() (catalog.Defaults, error) {
	policy, err := t.Durability.policy()
	if err != nil {
		return catalog.Defaults{}, fmt.Errorf("server: topics.%w", err)
	}
	if t.MaxMessageBytes > math.MaxInt32 {
		return catalog.Defaults{}, fmt.Errorf("server: topics.max-message-bytes (%s) is too large", t.MaxMessageBytes)
	}
	d := catalog.Defaults{
		Partitions:      t.Partitions,
		DedupWindow:     t.DedupWindow,
		MaxMessageBytes: int32(t.MaxMessageBytes),
		Durability:      policy,
		Retention:       t.Retention,
		RetentionBytes:  int64(t.RetentionBytes),
	}
	if err := d.Fill(catalog.TopicConfig{}).Validate(); err != nil {
		return catalog.Defaults{}, fmt.Errorf("server: topic defaults (topics): %w", err)
	}
	return d, nil
}

// splitAdvertised splits the Kafka advertised address into host and port.
func splitAdvertised(adv string) (string, int32, error) {
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return "", 0, fmt.Errorf("server: kafka advertised address %q: %w", adv, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("server: kafka advertised port %q: want a number from 0 to 65535", port)
	}
	return host, int32(p), nil
}

// brokerConfig returns the broker's view of c (complete) and its
// partition logs.
func (c Config) brokerConfig() broker.Config {
	lim := batch.DefaultLimits()
	lim.MaxBatchBytes = int(c.Storage.MaxBatchBytes)
	topics, _ := c.Topics.catalog() // checked by complete
	return broker.Config{
		DataDir: c.DataDir,
		Logger:  c.Logger,
		Log: seglog.Options{
			SegmentBytes: int64(c.Storage.SegmentBytes),
			FlushBytes:   int(c.Storage.FlushBytes),
			Limits:       lim,
		},
		Defaults:        topics,
		DedupMaxEntries: c.DedupMaxEntries,
		MinFreeBytes:    int64(c.Storage.MinFreeBytes),
	}
}

// apiLimits returns the native API's view of c (complete).
func (c Config) apiLimits() api.Limits {
	return api.Limits{
		MaxRequestBytes:    int(c.API.MaxRequestBytes),
		PublishBudgetBytes: int64(c.API.PublishBudgetBytes),
		PublishIntakeBytes: int64(PublishIntakeOf(c.MemoryLimit)),
		MaxSessions:        c.API.MaxSessions,
	}
}

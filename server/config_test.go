package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/bytesize"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/internal/state"
)

// TestDefaultsAgree: a broker opened without the server (as tests and
// tools open one) has the limits and defaults of a server started with a
// zero Config, which are the ones `spool serve` runs with.
func TestDefaultsAgree(t *testing.T) {
	srv := start(t, t.TempDir())
	defer srv.Shutdown(context.Background())
	viaServer := serverhook.Broker(srv)

	st, err := state.Open(filepath.Join(t.TempDir(), "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	alone, err := broker.Open(broker.Config{DataDir: t.TempDir(), State: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()

	s, a := viaServer.Config(), alone.Config()
	if s.Log.SegmentBytes != a.Log.SegmentBytes || s.Log.FlushBytes != a.Log.FlushBytes || s.Log.Limits != a.Log.Limits {
		t.Errorf("partition logs: server %d/%d/%+v, broker alone %d/%d/%+v",
			s.Log.SegmentBytes, s.Log.FlushBytes, s.Log.Limits, a.Log.SegmentBytes, a.Log.FlushBytes, a.Log.Limits)
	}
	if viaServer.MaxStorableMessageBytes() != alone.MaxStorableMessageBytes() {
		t.Errorf("largest storable message: server %d, broker alone %d", viaServer.MaxStorableMessageBytes(), alone.MaxStorableMessageBytes())
	}
	if s.MinFreeBytes != a.MinFreeBytes || int64(DefaultConfig().Storage.MinFreeBytes) != a.MinFreeBytes {
		t.Errorf("free-space watermark: server %d, broker alone %d, DefaultConfig %d", s.MinFreeBytes, a.MinFreeBytes, DefaultConfig().Storage.MinFreeBytes)
	}
	if s.Defaults != a.Defaults || s.DedupMaxEntries != a.DedupMaxEntries {
		t.Errorf("topic defaults: server %+v/%d, broker alone %+v/%d", s.Defaults, s.DedupMaxEntries, a.Defaults, a.DedupMaxEntries)
	}

	// And they are what DefaultConfig says.
	d := DefaultConfig()
	if int64(d.Storage.SegmentBytes) != a.Log.SegmentBytes || int(d.Storage.MaxBatchBytes) != a.Log.Limits.MaxBatchBytes ||
		int(d.Storage.FlushBytes) != a.Log.FlushBytes || d.DedupMaxEntries != a.DedupMaxEntries {
		t.Errorf("DefaultConfig %+v / %d, broker alone %d/%d/%d / %d", d.Storage, d.DedupMaxEntries,
			a.Log.SegmentBytes, a.Log.Limits.MaxBatchBytes, a.Log.FlushBytes, a.DedupMaxEntries)
	}
	if topics, err := d.Topics.catalog(); err != nil || topics != a.Defaults {
		t.Errorf("DefaultConfig topics %+v (%v), broker alone %+v", topics, err, a.Defaults)
	}
}

// TestConfigDefaults: Server.Config reports a zero Config's fields at
// their defaults.
func TestConfigDefaults(t *testing.T) {
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Config()
	want := DefaultConfig()
	abs, _ := filepath.Abs(DefaultDataDir)
	want.DataDir, want.Logger = abs, slog.Default()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Config() =\n%+v\nwant\n%+v", got, want)
	}
	if got.Storage != (StorageConfig{SegmentBytes: 128 * bytesize.MiB, MaxBatchBytes: 16 * bytesize.MiB, FlushBytes: bytesize.MiB, MinFreeBytes: DefaultMinFreeBytes}) ||
		got.Topics != (TopicDefaults{Partitions: 1, Durability: DurabilityAlways, DedupWindow: 2 * time.Minute, MaxMessageBytes: bytesize.MiB}) ||
		got.DedupMaxEntries != 200_000 || *got.KafkaGroupInitialRebalanceDelay != 100*time.Millisecond ||
		got.MemoryLimit != 512*bytesize.MiB ||
		got.API != (APILimits{MaxRequestBytes: 8 * bytesize.MiB, PublishBudgetBytes: 128 * bytesize.MiB, MaxSessions: 10_000}) ||
		got.MaxConnections != 10_000 || got.KafkaAddr != DefaultKafkaAddr {
		t.Errorf("defaults are not the documented ones: %+v", got)
	}
	// Config returns a copy: changing it changes nothing.
	*got.KafkaGroupInitialRebalanceDelay = time.Hour
	if *srv.Config().KafkaGroupInitialRebalanceDelay != 100*time.Millisecond {
		t.Error("Config shares the rebalance delay")
	}

	// A free HTTP port means a free Kafka port; set fields are kept.
	zero := time.Duration(0)
	srv, err = New(Config{HTTPAddr: "127.0.0.1:0", KafkaGroupInitialRebalanceDelay: &zero,
		Storage: StorageConfig{SegmentBytes: 64 * bytesize.MiB}, Topics: TopicDefaults{Partitions: 4, Durability: DurabilityNone}})
	if err != nil {
		t.Fatal(err)
	}
	got = srv.Config()
	if got.KafkaAddr != "127.0.0.1:0" || *got.KafkaGroupInitialRebalanceDelay != 0 ||
		got.Storage != (StorageConfig{SegmentBytes: 64 * bytesize.MiB, MaxBatchBytes: 16 * bytesize.MiB, FlushBytes: bytesize.MiB, MinFreeBytes: DefaultMinFreeBytes}) ||
		got.Topics.Partitions != 4 || got.Topics.Durability != DurabilityNone || got.Topics.DedupWindow != 2*time.Minute {
		t.Errorf("Config() = %+v", got)
	}
}

// TestNewRefusesBadConfig: every problem is reported, each naming the
// setting by its key in the configuration file where it has one.
func TestNewRefusesBadConfig(t *testing.T) {
	long := 10 * time.Minute
	negative := -time.Second
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{HTTPAddr: "nowhere"}, `server: http address "nowhere"`},
		{Config{KafkaAddr: "10.1.2.3:9092"}, "without authentication (kafka 10.1.2.3:9092)"},
		{Config{KafkaAdvertisedAddr: "broker"}, `server: kafka advertised address "broker"`},
		{Config{KafkaAdvertisedAddr: "broker:x"}, `server: kafka advertised port "x": want a number from 0 to 65535`},
		{Config{KafkaAdvertisedAddr: "broker:70000"}, `server: kafka advertised port "70000"`},
		{Config{KafkaGroupInitialRebalanceDelay: &long}, "server: kafka.group-initial-rebalance-delay (10m0s) must be between 0 and 5m0s"},
		{Config{KafkaGroupInitialRebalanceDelay: &negative}, "server: kafka.group-initial-rebalance-delay (-1s) must be between 0 and 5m0s"},
		{Config{Storage: StorageConfig{SegmentBytes: bytesize.KiB}}, "server: storage.segment-bytes (1KiB) must be between 4KiB and 2GiB"},
		{Config{Storage: StorageConfig{SegmentBytes: 3 * bytesize.GiB}}, "server: storage.segment-bytes (3GiB) must be between 4KiB and 2GiB"},
		{Config{Storage: StorageConfig{SegmentBytes: -bytesize.MiB}}, "server: storage.segment-bytes (-1MiB) must be between"},
		{Config{Storage: StorageConfig{SegmentBytes: 8 * bytesize.MiB}}, "server: storage.max-batch-bytes (16MiB) exceeds storage.segment-bytes (8MiB)"},
		{Config{Storage: StorageConfig{MaxBatchBytes: -1}}, "server: storage.max-batch-bytes (-1B) must not be negative"},
		{Config{Storage: StorageConfig{FlushBytes: -1}}, "server: storage.flush-bytes (-1B) must be between 1B and 2GiB"},
		{Config{Topics: TopicDefaults{Durability: "sometimes"}}, `server: topics.durability "sometimes": want always, interval or none`},
		{Config{Topics: TopicDefaults{Partitions: 2000}}, "server: topic defaults (topics): partitions must be between 1 and 1024, not 2000"},
		{Config{Topics: TopicDefaults{Partitions: -1}}, "server: topic defaults (topics): partitions must be between 1 and 1024, not -1"},
		{Config{Topics: TopicDefaults{DedupWindow: 30 * 24 * time.Hour}}, "server: topic defaults (topics): dedup window must be between"},
		{Config{Topics: TopicDefaults{MaxMessageBytes: 100 * bytesize.MiB}}, "server: topic defaults (topics): max message bytes must be between 1 and 67108864"},
		{Config{Topics: TopicDefaults{MaxMessageBytes: 4 * bytesize.GiB}}, "server: topics.max-message-bytes (4GiB) is too large"},
		{Config{Topics: TopicDefaults{Retention: -time.Hour}}, "server: topic defaults (topics): retention must not be negative"},
		{Config{Topics: TopicDefaults{RetentionBytes: -1}}, "server: topic defaults (topics): retention bytes must not be negative"},
		{Config{DedupMaxEntries: -1}, "server: dedup.max-entries (-1) must not be negative"},
		{Config{API: APILimits{MaxRequestBytes: -1}}, "server: API.MaxRequestBytes (-1B) must not be negative"},
		{Config{API: APILimits{PublishBudgetBytes: -1}}, "server: API.PublishBudgetBytes (-1B) must not be negative"},
		{Config{API: APILimits{MaxSessions: -1}}, "server: API.MaxSessions (-1) must not be negative"},
		{Config{MaxConnections: -1}, "server: MaxConnections (-1) must not be negative"},
	} {
		srv, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, %v; want an error with %q", tc.cfg, srv, err, tc.want)
		}
	}

	// All at once, one per line.
	_, err := New(Config{HTTPAddr: "nowhere", Storage: StorageConfig{SegmentBytes: bytesize.KiB, MaxBatchBytes: 512}, DedupMaxEntries: -5})
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("three problems: %v", err)
	}
}

func TestDurabilityText(t *testing.T) {
	for _, s := range []string{"always", "interval", "none"} {
		var d Durability
		if err := d.UnmarshalText([]byte(s)); err != nil || string(d) != s {
			t.Errorf("UnmarshalText(%q): %q, %v", s, d, err)
		}
		if text, err := d.MarshalText(); err != nil || string(text) != s {
			t.Errorf("MarshalText(%q) = %q, %v", s, text, err)
		}
		if p, err := d.policy(); err != nil || p.String() != s {
			t.Errorf("%q is policy %v, %v", s, p, err)
		}
	}
	d := DurabilityInterval
	if err := d.UnmarshalText([]byte("Always")); err == nil || d != DurabilityInterval {
		t.Errorf("a bad durability: %q, %v", d, err)
	}
	if p, err := Durability("").policy(); err != nil || p != seglog.SyncAlways {
		t.Errorf("the zero durability is %v, %v", p, err)
	}
}

// TestConfigApplied starts a server with every setting changed and checks
// each reaches what it configures.
func TestConfigApplied(t *testing.T) {
	delay := 2 * time.Second
	srv, err := New(Config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Logger: quiet,
		KafkaAdvertisedAddr:             "kafka.example:19092",
		KafkaGroupInitialRebalanceDelay: &delay,
		Storage:                         StorageConfig{SegmentBytes: 256 * bytesize.KiB, MaxBatchBytes: 64 * bytesize.KiB, FlushBytes: 32 * bytesize.KiB},
		Topics: TopicDefaults{Partitions: 3, Durability: DurabilityInterval, DedupWindow: time.Minute,
			MaxMessageBytes: 8 * bytesize.KiB, Retention: time.Hour, RetentionBytes: bytesize.MiB},
		DedupMaxEntries: 1000,
		API:             APILimits{MaxRequestBytes: 64 * bytesize.KiB},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	b := serverhook.Broker(srv)
	c := b.Config()
	if c.Log.SegmentBytes != 256<<10 || c.Log.Limits.MaxBatchBytes != 64<<10 || c.Log.FlushBytes != 32<<10 || !c.Log.Limits.CheckRecords {
		t.Errorf("log options %+v", c.Log)
	}
	if c.DedupMaxEntries != 1000 {
		t.Errorf("dedup max entries %d", c.DedupMaxEntries)
	}
	wantDefaults := catalog.Defaults{Partitions: 3, Durability: seglog.SyncInterval, DedupWindow: time.Minute,
		MaxMessageBytes: 8 << 10, Retention: time.Hour, RetentionBytes: 1 << 20}
	if c.Defaults != wantDefaults {
		t.Errorf("topic defaults %+v, want %+v", c.Defaults, wantDefaults)
	}
	meta, err := b.CreateTopic("t", catalog.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := meta.Config; got.Partitions != 3 || got.DedupWindow != time.Minute || got.MaxMessageBytes != 8<<10 ||
		got.Retention != time.Hour || got.RetentionBytes != 1<<20 {
		t.Errorf("a new topic's config %+v", got)
	}
	// The native API's request limit.
	body := `{"topic":"t","messages":[{"value":"` + strings.Repeat("A", 100<<10) + `"}]}`
	resp, err := http.Post("http://"+srv.HTTPAddr()+"/spool.v1.PublishService/Publish", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || !strings.Contains(string(out), "resource_exhausted") {
		t.Errorf("a 100 KiB request under a 64 KiB limit: %d %.200s", resp.StatusCode, out)
	}
	http.DefaultClient.CloseIdleConnections()
}

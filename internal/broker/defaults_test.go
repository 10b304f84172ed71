package broker

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
)

// TestOpenDefaults: a broker opened with a zero config takes every
// default from the package that owns it, the same ones `spool serve` uses
// (the server's tests check that side).
func TestOpenDefaults(t *testing.T) {
	e := newEnv(t)
	c := e.b.Config()
	if c.Log.SegmentBytes != seglog.DefaultSegmentBytes || c.Log.FlushBytes != seglog.DefaultFlushBytes {
		t.Errorf("segment bytes %d, flush bytes %d", c.Log.SegmentBytes, c.Log.FlushBytes)
	}
	if c.Log.Limits != batch.DefaultLimits() || c.Log.Limits.MaxBatchBytes != 16<<20 {
		t.Errorf("limits %+v, want %+v", c.Log.Limits, batch.DefaultLimits())
	}
	if got := e.b.MaxStorableMessageBytes(); got != batch.DefaultMaxBatchBytes {
		t.Errorf("MaxStorableMessageBytes = %d", got)
	}
	if c.Defaults != catalog.DefaultDefaults() || e.b.TopicDefaults() != c.Defaults {
		t.Errorf("topic defaults %+v", c.Defaults)
	}
	if c.DedupMaxEntries != DefaultDedupMaxEntries {
		t.Errorf("dedup max entries %d", c.DedupMaxEntries)
	}
}

// TestOpenPartialDefaults: each unset field takes its default, whatever
// else is set.
func TestOpenPartialDefaults(t *testing.T) {
	e := &env{t: t, dir: t.TempDir(), clk: clock.NewFake(time.Unix(1_700_000_000, 0))}
	e.opts = func(c *Config) {
		c.Defaults = catalog.Defaults{Partitions: 3}
		c.Log.Limits.MaxBatchBytes = 2 << 20
	}
	e.open()
	t.Cleanup(e.close)
	c := e.b.Config()
	want := catalog.DefaultDefaults()
	want.Partitions = 3
	if c.Defaults != want {
		t.Errorf("topic defaults %+v, want %+v", c.Defaults, want)
	}
	lim := batch.DefaultLimits()
	lim.MaxBatchBytes, lim.CheckRecords = 2<<20, false
	if c.Log.Limits != lim {
		t.Errorf("limits %+v, want %+v", c.Log.Limits, lim)
	}
	meta, err := e.b.CreateTopic("t", catalog.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if meta.Config.Partitions != 3 || meta.Config.DedupWindow != 2*time.Minute || meta.Config.MaxMessageBytes != 1<<20 {
		t.Errorf("topic config %+v", meta.Config)
	}
}

// TestOpenRefusesBadLogOptions: options no partition log could open with
// are refused by Open, not at the first topic.
func TestOpenRefusesBadLogOptions(t *testing.T) {
	for name, set := range map[string]func(*seglog.Options){
		"segment too small":         func(o *seglog.Options) { o.SegmentBytes = 1024 },
		"batch larger than segment": func(o *seglog.Options) { o.SegmentBytes = 8 << 20 },
	} {
		t.Run(name, func(t *testing.T) {
			st, err := state.Open(filepath.Join(t.TempDir(), "state"), state.Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			cfg := Config{DataDir: t.TempDir(), State: st, Logger: quiet}
			set(&cfg.Log)
			b, err := Open(cfg)
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), "broker: partition log options: seglog: ") {
				t.Errorf("error %q", err)
			}
		})
	}
}

// TestBoundedTopicSegmentsHoldLargestBatch: a bounded topic's segments
// shrink with its bound, but never below the largest batch the logs
// store, which every segment must be able to hold.
func TestBoundedTopicSegmentsHoldLargestBatch(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("small", catalog.TopicConfig{MaxBytes: 10 << 20, MaxMessageBytes: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	big := Message{Value: make([]byte, 3<<20), Partition: -1}
	for range 5 {
		if _, err := e.b.Publish("small", []Message{big}); err != nil {
			t.Fatal(err)
		}
	}
	e.restart()
	if info, err := e.b.DescribeTopic("small"); err != nil || info.Messages == 0 {
		t.Fatalf("after restart: %+v, %v", info, err)
	}
}

package server

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/bytesize"
)

// TestFileConfigDefaults: with no file and no variables, the configuration
// is DefaultConfig's.
func TestFileConfigDefaults(t *testing.T) {
	f, err := ParseFileConfig("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, DefaultFileConfig()) {
		t.Errorf("ParseFileConfig of nothing = %+v", f)
	}
	c, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.Logger == nil {
		t.Error("no logger")
	}
	c.Logger = nil
	want := DefaultConfig()
	want.API, want.MaxConnections = APILimits{}, 0 // not in the file: their zero is their default
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Config() =\n%+v\nwant\n%+v", c, want)
	}
}

const fullFile = `# every key
data: /var/lib/spool
allow-non-loopback: true
http:
  addr: 0.0.0.0:8080
kafka:
  addr: "-"
  advertised-addr: kafka.example:9092
  group-initial-rebalance-delay: 3s
log:
  format: json
  level: debug
storage:
  segment-bytes: 64MiB
  max-batch-bytes: 4194304
  flush-bytes: 512KiB
  min-free-bytes: 1GiB
topics:
  partitions: 6
  durability: interval
  dedup-window: 10m
  max-message-bytes: 2MB
  retention: 168h
  retention-bytes: 10GiB
dedup:
  max-entries: 50000
`

func TestParseFileConfig(t *testing.T) {
	f, err := ParseFileConfig("spool.yml", []byte(fullFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultFileConfig()
	want.Data = "/var/lib/spool"
	want.AllowNonLoopback = true
	want.HTTP.Addr = "0.0.0.0:8080"
	want.Kafka.Addr = "-"
	want.Kafka.AdvertisedAddr = "kafka.example:9092"
	want.Kafka.GroupInitialRebalanceDelay = 3 * time.Second
	want.Log.Format, want.Log.Level = "json", "debug"
	want.Storage = StorageConfig{SegmentBytes: 64 * bytesize.MiB, MaxBatchBytes: 4 * bytesize.MiB, FlushBytes: 512 * bytesize.KiB, MinFreeBytes: bytesize.GiB}
	want.Topics = TopicDefaults{Partitions: 6, Durability: DurabilityInterval, DedupWindow: 10 * time.Minute,
		MaxMessageBytes: 2_000_000, Retention: 168 * time.Hour, RetentionBytes: 10 * bytesize.GiB}
	want.Dedup.MaxEntries = 50_000
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", f, want)
	}
	c, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/spool" || c.HTTPAddr != "0.0.0.0:8080" || c.KafkaAddr != "-" || c.KafkaAdvertisedAddr != "kafka.example:9092" ||
		*c.KafkaGroupInitialRebalanceDelay != 3*time.Second || !c.AllowNonLoopback || c.Storage != want.Storage || c.Topics != want.Topics ||
		c.DedupMaxEntries != 50_000 || !c.Logger.Enabled(t.Context(), -4) {
		t.Errorf("Config() = %+v", c)
	}
	if _, err := New(c); err != nil {
		t.Errorf("New of the file's config: %v", err)
	}

	// Marshal prints what reads back the same.
	out, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseFileConfig("printed", out, nil)
	if err != nil || !reflect.DeepEqual(back, f) {
		t.Errorf("round trip: %v\n%s", err, out)
	}
}

// TestFileConfigEnvironment: variables override the file, name keys by
// their paths, and an unknown one is an error; SPOOL_CONFIG and
// SPOOL_SERVER are not keys.
func TestFileConfigEnvironment(t *testing.T) {
	env := []string{
		"SPOOL_HTTP_ADDR=127.0.0.1:9999",
		"SPOOL_TOPICS_PARTITIONS=12",
		"SPOOL_TOPICS_DURABILITY=none",
		"SPOOL_STORAGE_SEGMENT_BYTES=32MiB",
		"SPOOL_KAFKA_GROUP_INITIAL_REBALANCE_DELAY=0s",
		"SPOOL_ALLOW_NON_LOOPBACK=false",
		"SPOOL_SERVER=http://elsewhere:7070",
		"SPOOL_API_KEY=spool_0123456789abcdef_x",
		"SPOOL_AUTH_ENABLED=true",
		"SPOOL_CONFIG=/nonexistent.yml",
		"HOME=/root",
	}
	f, err := ParseFileConfig("spool.yml", []byte(fullFile), env)
	if err != nil {
		t.Fatal(err)
	}
	if f.HTTP.Addr != "127.0.0.1:9999" || f.Topics.Partitions != 12 || f.Topics.Durability != DurabilityNone ||
		f.Storage.SegmentBytes != 32*bytesize.MiB || f.Kafka.GroupInitialRebalanceDelay != 0 || f.AllowNonLoopback ||
		f.Data != "/var/lib/spool" || f.Topics.DedupWindow != 10*time.Minute || !f.Auth.Enabled {
		t.Errorf("file and environment gave %+v", f)
	}

	_, err = ParseFileConfig("", nil, []string{"SPOOL_HTTP_ADRR=x", "SPOOL_TOPICS_PARTITIONS=two", "SPOOL_TOPICS_DURABILITY=maybe"})
	if err == nil {
		t.Fatal("bad variables accepted")
	}
	for _, want := range []string{"SPOOL_HTTP_ADRR", "SPOOL_TOPICS_PARTITIONS", `invalid value "maybe": want always, interval or none`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestFileConfigErrors: every problem of a file, at once, with its line
// and column.
func TestFileConfigErrors(t *testing.T) {
	bad := "htp:\n  addr: x\ntopics:\n  partitions: two\n  durability: sometimes\nstorage:\n  segment-bytes: 64M\n  flush-bytes: -1\nkafka:\n  group-initial-rebalance-delay: 5\n"
	_, err := ParseFileConfig("spool.yml", []byte(bad), nil)
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		`spool.yml:1:1: htp: unknown key (did you mean "http"?)`,
		`spool.yml:4:15: topics.partitions: expected an integer, got string "two"`,
		`spool.yml:5:15: topics.durability: invalid value "sometimes": want always, interval or none`,
		`spool.yml:7:18: storage.segment-bytes: invalid size "64M": unknown unit "M"`,
		`spool.yml:8:16: storage.flush-bytes: invalid size -1: sizes cannot be negative`,
		`spool.yml:10:34: kafka.group-initial-rebalance-delay: bare number 5 is not a duration`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d problems reported, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d: %q, want %q", i+1, lines[i], w)
		}
	}
}

func TestLoadFileConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spool.yml")
	if err := os.WriteFile(path, []byte("topics: {partitions: 3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.yml")
	if err := os.WriteFile(other, []byte("topics: {partitions: 5}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		env  []string
		want int32
	}{
		{path, nil, 3},
		{"", []string{"SPOOL_CONFIG=" + path}, 3},
		{other, []string{"SPOOL_CONFIG=" + path}, 5}, // the path given wins
		{"", []string{"SPOOL_CONFIG="}, 1},
		{"", nil, 1},
		{path, []string{"SPOOL_TOPICS_PARTITIONS=7"}, 7},
	} {
		f, err := LoadFileConfig(tc.path, tc.env)
		if err != nil || f.Topics.Partitions != tc.want {
			t.Errorf("LoadFileConfig(%q, %q): partitions %d, %v; want %d", tc.path, tc.env, f.Topics.Partitions, err, tc.want)
		}
	}
	if _, err := LoadFileConfig(filepath.Join(dir, "missing.yml"), nil); err == nil || !strings.Contains(err.Error(), "server: config file: ") {
		t.Errorf("a missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte("topics: {partitions: 0x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path, nil); err == nil || !strings.HasPrefix(err.Error(), path+":1:22: topics.partitions: ") {
		t.Errorf("a bad file through LoadConfig: %v", err)
	}
	if err := os.WriteFile(path, []byte("log: {format: xml}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path, nil); err == nil || err.Error() != `server: log.format "xml": want text or json` {
		t.Errorf("a bad log format: %v", err)
	}
	if err := os.WriteFile(path, []byte("log: {level: loud}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path, nil); err == nil || err.Error() != `server: log.level "loud": want debug, info, warn or error` {
		t.Errorf("a bad log level: %v", err)
	}
	c, err := LoadConfig("", []string{"SPOOL_DEDUP_MAX_ENTRIES=9"})
	if err != nil || c.DedupMaxEntries != 9 || c.Logger == nil {
		t.Errorf("LoadConfig: %+v, %v", c, err)
	}
}

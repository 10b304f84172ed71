package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spoolmq/spool/server"
)

// serve runs `spool serve args...` in-process and returns its exit code,
// stdout and stderr.
func serve(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	root := newRootCmd()
	var stdout, stderr strings.Builder
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(append([]string{"serve"}, args...))
	code := execute(root)
	return code, stdout.String(), stderr.String()
}

// TestServePrecedence: defaults < file < SPOOL_* variables < flags, as
// --print-config shows.
func TestServePrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.yml")
	file := "http: {addr: 127.0.0.1:8000}\nkafka: {addr: 127.0.0.1:8100}\n" +
		"topics: {partitions: 2, durability: interval, retention-bytes: 1GB}\nlog: {format: json}\n"
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SPOOL_TOPICS_PARTITIONS", "4")
	t.Setenv("SPOOL_LOG_LEVEL", "warn")
	t.Setenv("SPOOL_HTTP_ADDR", "127.0.0.1:8001")
	t.Setenv("SPOOL_SERVER", "http://127.0.0.1:1") // the client's, not a key

	for _, how := range []string{"flag", "env"} {
		args := []string{"--print-config", "--http", "127.0.0.1:8002", "--durability", "none", "--data", "/srv/spool"}
		if how == "flag" {
			args = append(args, "--config", path)
			t.Setenv("SPOOL_CONFIG", "")
		} else {
			t.Setenv("SPOOL_CONFIG", path)
		}
		code, out, errOut := serve(t, args...)
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", how, code, errOut)
		}
		f, err := server.ParseFileConfig("printed", []byte(out), nil)
		if err != nil {
			t.Fatalf("%s: the printed config does not load: %v\n%s", how, err, out)
		}
		want := server.DefaultFileConfig()
		want.Data = "/srv/spool"                       // flag
		want.HTTP.Addr = "127.0.0.1:8002"              // flag over variable over file
		want.Kafka.Addr = "127.0.0.1:8100"             // file
		want.Topics.Partitions = 4                     // variable over file
		want.Topics.Durability = server.DurabilityNone // flag over file
		want.Topics.RetentionBytes = 1_000_000_000     // file
		want.Log.Format, want.Log.Level = "json", "warn"
		if !reflect.DeepEqual(f, want) {
			t.Errorf("%s: printed\n%s\nwant %+v", how, out, want)
		}
	}
}

// TestServeFlagDefaults: the flags' defaults are the configuration's.
func TestServeFlagDefaults(t *testing.T) {
	def := server.DefaultFileConfig()
	f := newServeCmd().Flags()
	for name, want := range map[string]string{
		"data": def.Data, "http": def.HTTP.Addr, "kafka": def.Kafka.Addr, "durability": string(def.Topics.Durability),
		"log-format": def.Log.Format, "log-level": def.Log.Level, "insecure": "false", "allow-non-loopback": "false",
	} {
		if got := f.Lookup(name).DefValue; got != want {
			t.Errorf("--%s defaults to %q, want %q", name, got, want)
		}
	}
}

func TestServeBadConfig(t *testing.T) {
	t.Setenv("SPOOL_CONFIG", "")
	data := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args []string
		env  string
		code int
		want string
	}{
		{[]string{"--durability", "sometimes"}, "", exitUsage, `--durability "sometimes": want always, interval or none`},
		{[]string{"--log-format", "xml"}, "", exitError, `server: log.format "xml": want text or json`},
		{[]string{"--config", filepath.Join(data, "missing.yml")}, "", exitError, "server: config file: "},
		{nil, "SPOOL_STORAGE_SEGMENT_BYTES=1KiB", exitError, "server: storage.segment-bytes (1KiB) must be between 4KiB and 2GiB"},
		{nil, "SPOOL_STORAGE_MAX_BATCH_BYTES=256MiB", exitError, "server: storage.max-batch-bytes (256MiB) exceeds storage.segment-bytes (128MiB)"},
		{nil, "SPOOL_TOPICS_MAX_MESSAGE_BYTES=10x", exitError, `invalid size "10x": unknown unit "x"`},
		{nil, "SPOOL_NO_SUCH_KEY=1", exitError, "unknown environment variable SPOOL_NO_SUCH_KEY"},
	} {
		if tc.env != "" {
			k, v, _ := strings.Cut(tc.env, "=")
			t.Setenv(k, v)
		}
		code, _, errOut := serve(t, append([]string{"--data", data, "--http", "127.0.0.1:0"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("serve %q (%s): exit %d, %q; want exit %d and %q", tc.args, tc.env, code, errOut, tc.code, tc.want)
		}
		if tc.env != "" {
			k, _, _ := strings.Cut(tc.env, "=")
			os.Unsetenv(k)
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("a refused configuration created the data directory: %v", err)
	}
}

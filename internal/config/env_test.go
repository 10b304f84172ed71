package config

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestApplyEnv(t *testing.T) {
	environ := []string{
		"HOME=/root",
		"PATH=/bin",
		"SPOOLX=not ours",
		"spool_http_addr=lower case is not ours",
		"SPOOL_DATA_DIR=/srv/spool",
		"SPOOL_HTTP_ADDR=127.0.0.1:9000",
		"SPOOL_HTTP_ENABLED=0",
		"SPOOL_HTTP_READ_TIMEOUT=1m",
		"SPOOL_HTTP_MAX_BODY=8MiB",
		"SPOOL_KAFKA_ADVERTISED= a:1 , b:2,c:3",
		"SPOOL_KAFKA_MAX_REQUEST_SIZE=1048576",
		"SPOOL_LOG_DURABILITY=none",
		"SPOOL_LOG_LEVEL=debug",
		"SPOOL_LIMITS_I8=-5",
		"SPOOL_LIMITS_U16=0x10",
		"SPOOL_LIMITS_U64=18446744073709551615",
		"SPOOL_LIMITS_F64=2.5",
		"SPOOL_LIMITS_F32=.inf",
		"SPOOL_LIMITS_DEEP_NAME=with = sign",
		"SPOOL_NODES=",
	}
	c := defaults()
	c.Nodes = []string{"x"}
	for _, prefix := range []string{"SPOOL", "SPOOL_"} {
		got := c
		if err := ApplyEnv(prefix, environ, &got); err != nil {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
		want := defaults()
		want.DataDir = "/srv/spool"
		want.HTTP = httpSection{Addr: "127.0.0.1:9000", Enabled: false, ReadTimeout: time.Minute, MaxBodyBytes: 8 * MiB}
		want.Kafka.Advertised = []string{"a:1", "b:2", "c:3"}
		want.Kafka.MaxRequest = MiB
		want.Log.Durability = syncNone
		want.Log.Level = "debug"
		want.Limits.I8 = -5
		want.Limits.U16 = 16
		want.Limits.U64 = 1<<64 - 1
		want.Limits.F64 = 2.5
		want.Limits.F32 = float32(math.Inf(1))
		want.Limits.Deep.Name = "with = sign"
		want.Nodes = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("prefix %q:\n got %+v\nwant %+v", prefix, got, want)
		}
	}
}

// TestApplyEnvOverridesFile checks the usual order: file over defaults,
// then environment over file.
func TestApplyEnvOverridesFile(t *testing.T) {
	c := defaults()
	if err := Load("x.yml", []byte("http: {addr: ':1', enabled: false}\n"), &c); err != nil {
		t.Fatal(err)
	}
	if err := ApplyEnv("SPOOL", []string{"SPOOL_HTTP_ADDR=:2"}, &c); err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":2" || c.HTTP.Enabled || c.Kafka.Listener != ":9092" {
		t.Errorf("got %+v", c.HTTP)
	}
}

func TestApplyEnvErrors(t *testing.T) {
	environ := []string{
		"SPOOL_HTTP_ADR=x",
		"SPOOL_HTTP_ENABLED=maybe",
		"SPOOL_HTTP_READ_TIMEOUT=30",
		"SPOOL_HTTP_ADDR=ok",
		"SPOOL_KAFKA=x",
		"SPOOL_LOG_SEGMENT_SIZE=1G",
		"SPOOL_LOG_DURABILITY=sometimes",
		"SPOOL_LIMITS_U8=-1",
		"SPOOL_LIMITS_I=",
		"SPOOL_LIMITS_F64=abc",
		"SPOOL_CONFIG=/etc/spool.yml",
		"SPOOL_=x",
	}
	c := defaults()
	err := ApplyEnv("SPOOL", environ, &c)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	want := strings.Join([]string{
		`config: unknown environment variable SPOOL_HTTP_ADR (did you mean SPOOL_HTTP_ADDR?)`,
		`config: http.enabled: SPOOL_HTTP_ENABLED: invalid boolean "maybe" (want true or false)`,
		`config: http.read-timeout: SPOOL_HTTP_READ_TIMEOUT: bare number 30 is not a duration: add a unit, such as "30s"`,
		`config: kafka: SPOOL_KAFKA: names a section; set its keys one by one`,
		`config: log.segment-size: SPOOL_LOG_SEGMENT_SIZE: invalid size "1G": unknown unit "G" (want B, KB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB or EiB)`,
		`config: log.durability: SPOOL_LOG_DURABILITY: invalid value "sometimes": want always, interval or none`,
		`config: limits.u8: SPOOL_LIMITS_U8: -1 is out of range (want 0 to 255)`,
		`config: limits.i: SPOOL_LIMITS_I: invalid integer ""`,
		`config: limits.f64: SPOOL_LIMITS_F64: invalid number "abc"`,
		`config: unknown environment variable SPOOL_CONFIG`,
		`config: unknown environment variable SPOOL_`,
	}, "\n")
	if err.Error() != want {
		t.Errorf("got\n%v\nwant\n%v", err, want)
	}
	if !reflect.DeepEqual(c, defaults()) {
		t.Errorf("ApplyEnv changed dst despite errors: %+v", c.HTTP)
	}
}

type collide struct {
	A struct {
		B string `yaml:"b"`
	} `yaml:"a"`
	AB string `yaml:"a-b"`
}

func TestApplyEnvBadCalls(t *testing.T) {
	c := defaults()
	for _, tc := range []struct {
		prefix string
		dst    any
		want   string
	}{
		{"", &c, "config: ApplyEnv needs a prefix"},
		{"_", &c, "config: ApplyEnv needs a prefix"},
		{"SPOOL", c, "config: ApplyEnv needs a non-nil pointer to a struct"},
		{"SPOOL", new(withMap), "unsupported type"},
		{"SPOOL", new(collide), "config: keys a.b and a-b both map to variable SPOOL_A_B"},
	} {
		err := ApplyEnv(tc.prefix, []string{"SPOOL_A_B=1"}, tc.dst)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ApplyEnv(%q, %T) = %v, want %q", tc.prefix, tc.dst, err, tc.want)
		}
	}
}

func TestEnvName(t *testing.T) {
	for path, want := range map[string]string{
		"http.addr":            "HTTP_ADDR",
		"log.segment-size":     "LOG_SEGMENT_SIZE",
		"kafka.max_batch.size": "KAFKA_MAX_BATCH_SIZE",
	} {
		if got := envName(path); got != want {
			t.Errorf("envName(%q) = %q, want %q", path, got, want)
		}
	}
}

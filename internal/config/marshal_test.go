package config

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/bytesize"
)

// TestMarshalRoundTrip prints configs whose values YAML could misread if
// printed carelessly and loads them back.
func TestMarshalRoundTrip(t *testing.T) {
	awkward := []string{
		"", " ", " lead", "trail ", "true", "false", "yes", "no", "on", "null", "~", "123", "-1", "0x10",
		"1.5", ".inf", "1e3", "2024-01-01", "a: b", "- x", "#x", "x #y", "'q'", `"dq"`, "&a", "*a", "!tag",
		"%x", "@x", "`x", "{x}", "[x]", "a,b", "?", ":", "<<", "multi\nline", "trailing\n", "\ttab",
		"ünïcode ☃", "nul\x00byte", "bell\a", "\u2028sep", "---", "...",
	}
	for i, s := range awkward {
		c := defaults()
		c.DataDir = s
		c.Limits.Deep.Name = s
		c.Kafka.Advertised = []string{s, "x", s}
		c.Log.Level = "error"
		c.Limits.I64 = math.MinInt64
		c.Limits.U64 = math.MaxUint64
		c.Limits.F64 = []float64{0, 1, -1.5, 1e300, 5e-324, math.MaxFloat64, math.Inf(1), math.Inf(-1), 1 << 62}[i%9]
		c.Limits.F32 = math.MaxFloat32
		c.HTTP.ReadTimeout = time.Duration(i)*time.Hour + 1
		c.HTTP.MaxBodyBytes = bytesize.Size(i)*GiB + 1
		c.Log.SegmentSize = math.MaxInt64
		c.Log.Retention = math.MinInt64
		roundTrip(t, c)
	}
}

func roundTrip(t *testing.T, c testConfig) {
	t.Helper()
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back testConfig
	if err := Load("out.yml", out, &back); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Fields Load does not touch are not printed either.
	c.Ignored, c.private = "", ""
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n got %+v\nwant %+v\n%s", back, c, out)
	}
}

func TestMarshalForms(t *testing.T) {
	c := defaults()
	c.Limits.F64 = 3
	c.Limits.F32 = float32(math.NaN())
	c.Kafka.MaxRequest = 0
	out, err := Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\n  read-timeout: 30s\n", "\n  max-body: 4MiB\n", "\n  retention: 168h0m0s\n",
		"\n  durability: always\n", "\n  advertised: []\n", "\n  f64: 3.0\n", "\n  f32: .nan\n",
		"\nnodes: []\n", "\n  max-request-size: 0\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "ignored") || strings.Contains(string(out), "private") {
		t.Errorf("output has skipped fields:\n%s", out)
	}
	empty, err := Marshal(struct{}{})
	if err != nil || string(empty) != "{}\n" {
		t.Errorf("Marshal(struct{}{}) = %q, %v", empty, err)
	}
	if err := Load("empty", empty, &struct{}{}); err != nil {
		t.Error(err)
	}
}

// onlyUnmarshal can be read but not printed.
type onlyUnmarshal struct{ v string }

func (o *onlyUnmarshal) UnmarshalText(text []byte) error { o.v = string(text); return nil }

type failingMarshal struct{ onlyUnmarshal }

func (failingMarshal) MarshalText() ([]byte, error) { return nil, errFailing }

var errFailing = &Error{Msg: "cannot print"}

func TestMarshalErrors(t *testing.T) {
	var one struct {
		S struct {
			O onlyUnmarshal `yaml:"o"`
		} `yaml:"s"`
	}
	if err := Load("x", []byte("s: {o: hello}"), &one); err != nil || one.S.O.v != "hello" {
		t.Fatalf("Load = %v, %+v", err, one)
	}
	_, err := Marshal(one)
	if err == nil || !strings.Contains(err.Error(), "config: s.o: type config.onlyUnmarshal has UnmarshalText but neither") {
		t.Errorf("Marshal = %v", err)
	}
	var two struct {
		F failingMarshal `yaml:"f"`
	}
	if _, err := Marshal(&two); err == nil || !strings.Contains(err.Error(), "config: f: ") {
		t.Errorf("Marshal = %v", err)
	}
	for _, src := range []any{nil, 3, (*testConfig)(nil), new(withMap)} {
		if _, err := Marshal(src); err == nil || !strings.HasPrefix(err.Error(), "config: ") {
			t.Errorf("Marshal(%T) = %v", src, err)
		}
	}
}

func TestKeys(t *testing.T) {
	want := []string{
		"data-dir string",
		"http.addr string",
		"http.enabled bool",
		"http.read-timeout time.Duration",
		"http.max-body bytesize.Size",
		"kafka.listener string",
		"kafka.advertised []string",
		"kafka.max-request-size bytesize.Size",
		"log.segment-size bytesize.Size",
		"log.retention time.Duration",
		"log.durability config.syncMode",
		"log.level config.level",
		"limits.i int",
		"limits.i8 int8",
		"limits.i16 int16",
		"limits.i32 int32",
		"limits.i64 int64",
		"limits.u uint",
		"limits.u8 uint8",
		"limits.u16 uint16",
		"limits.u32 uint32",
		"limits.u64 uint64",
		"limits.f64 float64",
		"limits.f32 float32",
		"limits.deep.name string",
		"nodes []string",
	}
	if got := Keys(testConfig{}); !reflect.DeepEqual(got, want) {
		t.Errorf("Keys =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := Keys(&testConfig{}); len(got) != len(want) {
		t.Errorf("Keys of a pointer gave %d keys", len(got))
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("Keys of an unsupported struct did not panic")
		}
	}()
	Keys(withMap{})
}

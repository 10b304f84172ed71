package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files under testdata and the seed corpus")

// golden compares got with the file at path, or rewrites the file when
// -rewrite is given.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *rewrite {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -rewrite to update it)\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestLoadBad loads each testdata/*.bad.yml over the defaults and compares
// the errors with the golden file beside it.
func TestLoadBad(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".bad.yml"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c := defaults()
			err = Load(name, data, &c)
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load = %v, want *Errors", err)
			}
			for _, e := range errs.List {
				if e.File != name || e.Msg == "" {
					t.Errorf("bad Error %#v", e)
				}
			}
			if !reflect.DeepEqual(c, defaults()) {
				t.Errorf("Load changed dst despite errors: %+v", c)
			}
			golden(t, path+".err", []byte(err.Error()+"\n"))
		})
	}
}

// TestLoadGood loads each testdata/good/*.yml over the defaults, compares
// Marshal's output with the golden .out file, and checks that the output
// loads back to an equal config.
func TestLoadGood(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good files: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".yml"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c := defaults()
			if err := Load(path, data, &c); err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(&c)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, path+".out", out)
			var back testConfig
			if err := Load("marshaled", out, &back); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("round trip:\n got %+v\nwant %+v", back, c)
			}
		})
	}
}

// TestLoadEveryKind sets every field from YAML and checks each value.
func TestLoadEveryKind(t *testing.T) {
	data, err := os.ReadFile("testdata/good/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	c := defaults()
	c.Ignored = "kept"
	c.private = "kept"
	if err := Load("full.yml", data, &c); err != nil {
		t.Fatal(err)
	}
	want := testConfig{
		DataDir: "/srv/spool",
		HTTP:    httpSection{Addr: "127.0.0.1:8081", Enabled: false, ReadTimeout: 90 * time.Second, MaxBodyBytes: 512 * KiB},
		Kafka: kafkaSection{
			Listener:   ":19092",
			Advertised: []string{"broker-1.example:9092", "broker-2.example:9092"},
			MaxRequest: 10_000_000,
		},
		Log: logSection{SegmentSize: 64 * MiB, Retention: 72 * time.Hour, Durability: syncInterval, Level: "warn"},
		Limits: limitsSection{
			I: -1, I8: -128, I16: 32767, I32: -2147483648, I64: 9223372036854775807,
			U: 1, U8: 255, U16: 65535, U32: 4294967295, U64: 18446744073709551615,
			F64: 0.25, F32: -2.5e-3,
		},
		Nodes:   []string{"a", "b c", "", "123"},
		Ignored: "kept",
		private: "kept",
	}
	want.Limits.Deep.Name = "true"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestLoadNumbers(t *testing.T) {
	data, err := os.ReadFile("testdata/good/numbers.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c testConfig
	if err := Load("numbers.yml", data, &c); err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if c.HTTP.MaxBodyBytes != MiB || c.Kafka.MaxRequest != MiB || c.Log.SegmentSize != GiB ||
		l.I != 15 || l.I8 != -128 || l.I16 != 10 || l.I32 != 42 || l.U != 0o755 || l.U64 != 1000 ||
		!(l.F64 > 1e308) || !(l.F32 < -1e38) {
		t.Errorf("got %+v", c)
	}
}

func TestLoadKeepsDefaults(t *testing.T) {
	for _, in := range []string{"", "\n", "# nothing\n", "~\n", "null\n", "{}\n", "---\n", "http:\n", "http: {}\nkafka: ~\n", "http:\n  addr:\n"} {
		c := defaults()
		if err := Load("x.yml", []byte(in), &c); err != nil {
			t.Errorf("Load(%q): %v", in, err)
		}
		if !reflect.DeepEqual(c, defaults()) {
			t.Errorf("Load(%q) changed the config: %+v", in, c)
		}
	}
	c := defaults()
	if err := Load("x.yml", []byte("http:\n  addr: \":1\"\n"), &c); err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.HTTP.Addr = ":1"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v, want only http.addr changed", c)
	}
}

func TestLoadListsReplace(t *testing.T) {
	c := defaults()
	c.Kafka.Advertised = []string{"a", "b", "c"}
	shared := c.Kafka.Advertised
	if err := Load("x.yml", []byte("kafka:\n  advertised: [z]\n"), &c); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Kafka.Advertised, []string{"z"}) || shared[0] != "a" {
		t.Errorf("got %q, old slice %q", c.Kafka.Advertised, shared)
	}
	if err := Load("x.yml", []byte("kafka:\n  advertised: []\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Advertised != nil {
		t.Errorf("empty list gave %#v, want nil", c.Kafka.Advertised)
	}
}

// TestLoadErrorsTogether checks that problems all over a file come back in
// one error, in line order, with exact positions.
func TestLoadErrorsTogether(t *testing.T) {
	in := strings.Join([]string{
		"data-dir: 1",         // 1
		"http:",               // 2
		"  adr: x",            // 3
		"  read-timeout: 5",   // 4
		"kafka:",              // 5
		"  advertised:",       // 6
		"    - ok",            // 7
		"    - [nested]",      // 8
		"log:",                // 9
		"  segment-size: 1XB", // 10
		"limits: {u8: 256}",   // 11
		"bogus: true",         // 12
		"data-dir: /x",        // 13
		"",
	}, "\n")
	err := Load("spool.yml", []byte(in), new(testConfig))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	type pos struct {
		line, col int
		path      string
	}
	want := []pos{
		{1, 11, "data-dir"},
		{3, 3, "http.adr"},
		{4, 17, "http.read-timeout"},
		{8, 7, "kafka.advertised[1]"},
		{10, 17, "log.segment-size"},
		{11, 14, "limits.u8"},
		{12, 1, "bogus"},
		{13, 1, "data-dir"},
	}
	var got []pos
	for _, e := range errs.List {
		got = append(got, pos{e.Line, e.Column, e.Path})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v\n%v", got, want, err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("Error() has %d lines, want %d", n, len(want))
	}
	var one *Error
	if !errors.As(err, &one) || one.Path != "data-dir" {
		t.Errorf("errors.As found %v", one)
	}
	if len(errs.Unwrap()) != len(want) {
		t.Errorf("Unwrap gave %d errors", len(errs.Unwrap()))
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "spool.yml", Line: 12, Column: 3, Path: "kafka.listen", Msg: "unknown key"}, "spool.yml:12:3: kafka.listen: unknown key"},
		{Error{File: "spool.yml", Line: 4, Msg: "invalid YAML: x"}, "spool.yml:4: invalid YAML: x"},
		{Error{File: "spool.yml", Msg: "invalid YAML: y"}, "spool.yml: invalid YAML: y"},
		{Error{Path: "http.addr", Msg: "SPOOL_HTTP_ADDR: z"}, "config: http.addr: SPOOL_HTTP_ADDR: z"},
		{Error{Msg: "unknown environment variable SPOOL_X"}, "config: unknown environment variable SPOOL_X"},
		{Error{Line: 2, Column: 1, Msg: "m"}, "config:2:1: m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

type withMap struct {
	M map[string]string `yaml:"m"`
}

type withPointer struct {
	S struct {
		P *int `yaml:"p"`
	} `yaml:"s"`
}

type withInline struct {
	H httpSection `yaml:",inline"`
}

type withDupKeys struct {
	A string `yaml:"a"`
	B string `yaml:"a"`
}

func TestLoadBadTarget(t *testing.T) {
	var c testConfig
	for _, tc := range []struct {
		dst  any
		want string
	}{
		{c, "config: Load needs a non-nil pointer to a struct, not config.testConfig"},
		{(*testConfig)(nil), "config: Load needs a non-nil pointer to a struct"},
		{nil, "config: Load needs a non-nil pointer to a struct, not <nil>"},
		{new(int), "config: Load needs a non-nil pointer to a struct, not *int"},
		{new(withMap), "config: config.withMap.M (key m): unsupported type map[string]string"},
		{new(withPointer), "(key s.p): unsupported type *int"},
		{new(withInline), "inline tag option is not supported"},
		{new(withDupKeys), `two fields have the key "a"`},
	} {
		err := Load("x.yml", []byte("{}"), tc.dst)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%T) = %v, want %q", tc.dst, err, tc.want)
		}
		var errs *Errors
		if errors.As(err, &errs) {
			t.Errorf("Load(%T) returned *Errors for a programming error", tc.dst)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"listener", "advertised", "max-request-size", "addr", "port"}
	for _, tc := range []struct{ in, want string }{
		{"listen", "listener"},
		{"advertized", "advertised"},
		{"LISTENER", "listener"},
		{"max-request-szie", "max-request-size"},
		{"prot", "port"},
		{"adr", "addr"},
		{"colour", ""},
		{"x", ""},
		{"", ""},
	} {
		if got := suggest(tc.in, keys); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := suggest("a", nil); got != "" {
		t.Errorf("suggest with no candidates = %q", got)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"ab", "ba", 1}, {"listen", "listener", 2}, {"höst", "host", 1}, {"abc", "abc", 0},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestLoadAliasBomb checks that aliases are not expanded beyond what the
// config struct can hold: a "billion laughs" document loads (and fails)
// quickly.
func TestLoadAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("nodes: *a9\nhttp: *a9\nlimits: {deep: *a9}\n")
	err := Load("bomb.yml", []byte(b.String()), new(testConfig))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	if len(errs.List) > 100 {
		t.Errorf("got %d errors", len(errs.List))
	}
}

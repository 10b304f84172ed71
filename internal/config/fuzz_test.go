package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// corpusSeeds are inputs aimed at the decoder's corners, written to
// testdata/fuzz/FuzzLoad/ by TestWriteCorpus.
var corpusSeeds = map[string]string{
	"empty":      "",
	"null":       "~\n",
	"full":       "data-dir: /srv\nhttp: {addr: ':1', enabled: true, read-timeout: 1h30m, max-body: 64MiB}\nkafka:\n  advertised: [a, b]\n  max-request-size: 10MB\nlog: {durability: none, level: warn}\nlimits: {i8: -128, u64: 18446744073709551615, f64: .nan, f32: -.inf, deep: {name: x}}\nnodes: []\n",
	"aliases":    "a: &a {addr: x}\nhttp: *a\nkafka: {advertised: [*a, &s str, *s]}\n",
	"merge":      "base: &b {addr: x}\nhttp:\n  <<: *b\n  <<: [*b]\ndata-dir: <<\n",
	"two-docs":   "data-dir: a\n---\ndata-dir: b\n...\n---\n",
	"tags":       "data-dir: !!str 1\nhttp: !!map {addr: !custom x, enabled: !!bool true}\nlimits: {i: !!float 1, f64: !!int 2}\n",
	"numbers":    "limits: {i: 0x7fffffffffffffff, i8: 0o177, i16: 0b1, u: 0755, u8: 09, i32: 1_000, u64: 99999999999999999999, f32: 1e39}\n",
	"sizes":      "http: {max-body: 1.5KiB}\nkafka: {max-request-size: -0}\nlog: {segment-size: 8EiB}\n",
	"durations":  "http: {read-timeout: 0}\nlog: {retention: -1.5h}\n",
	"keys":       "? [a]\n: 1\n? {b: c}\n: 2\n1: x\nnull: y\nhttp: {ADDR: a, addr: b, addr: c}\n",
	"syntax":     "http:\n  addr: [\n\tenabled: 'x\n",
	"strings":    "nodes: [\"\\u2028\", \"\\0\", '''', \"\\xff\", |\n    block\n  ]\n",
	"deep":       strings.Repeat("[", 200) + strings.Repeat("]", 200) + "\n",
	"not-a-map":  "- a\n- b\n",
	"top-scalar": "hello\n",
}

// TestWriteCorpus rewrites the seed corpus from corpusSeeds:
// go test -run TestWriteCorpus -rewrite ./internal/config
func TestWriteCorpus(t *testing.T) {
	if !*rewrite {
		t.Skip("run with -rewrite to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzLoad")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range corpusSeeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzLoad feeds arbitrary bytes to Load. Load must not panic; it must
// either fail with a well-formed *Errors and leave its target alone, or
// succeed with a config that Marshal prints and Load reads back the same.
func FuzzLoad(f *testing.F) {
	for _, s := range corpusSeeds {
		f.Add([]byte(s))
	}
	for _, pattern := range []string{"testdata/*.bad.yml", "testdata/good/*.yml"} {
		files, _ := filepath.Glob(pattern)
		for _, path := range files {
			data, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := defaults()
		err := Load("fuzz.yml", data, &c)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) == 0 {
				t.Fatalf("Load returned %T %v, want a non-empty *Errors", err, err)
			}
			for _, e := range errs.List {
				if e.File != "fuzz.yml" || e.Msg == "" || e.Line < 0 || e.Column < 0 {
					t.Fatalf("malformed error %#v", e)
				}
			}
			if !reflect.DeepEqual(c, defaults()) {
				t.Fatalf("Load failed but changed its target: %+v", c)
			}
			return
		}
		out, err := Marshal(&c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		var back testConfig
		if err := Load("marshaled.yml", out, &back); err != nil {
			t.Fatalf("loading Marshal's output: %v\n%s", err, out)
		}
		// Compare printed forms, which treat NaN as equal to itself.
		again, err := Marshal(&back)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("round trip differs (%v):\n%s\n---\n%s", err, out, again)
		}
	})
}

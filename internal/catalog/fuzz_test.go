package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets of the catalog's records (DESIGN.md, "Fuzzing and the
// bad-input set"): arbitrary bytes never panic, and a record that decodes,
// of any version, encodes again to a record that decodes to the same
// value.

// addGolden seeds f with the golden files whose names start with prefix.
func addGolden(f *testing.F, prefix string) {
	names, err := filepath.Glob(filepath.Join("testdata", "format", prefix+"*"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no golden files %s*: %v", prefix, err)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzDecodeTopic(f *testing.F) {
	addGolden(f, "topic-")
	for _, c := range topicCases {
		b, err := EncodeTopic(c.want)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"name":"t","config":{"partitions":1,"discard":1,"durability":2}}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		topic, err := DecodeTopic(v)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		again, err := EncodeTopic(topic)
		if err != nil {
			t.Fatalf("%q decoded as %+v, which does not encode: %v", v, topic, err)
		}
		back, err := DecodeTopic(again)
		if err != nil {
			t.Fatalf("%q re-encoded as %q, which does not decode: %v", v, again, err)
		}
		if !sameTopic(back, topic) {
			t.Fatalf("%q decoded as %+v, re-encoded as %+v", v, topic, back)
		}
	})
}

func FuzzDecodeSub(f *testing.F) {
	addGolden(f, "sub-")
	for _, c := range subCases {
		b, err := EncodeSub(c.want)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"topic":"t","name":"s","config":{"mode":1,"start":{"kind":2,"time":"2025-01-01T00:00:00+01:00"}}}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		sub, err := DecodeSub(v)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		again, err := EncodeSub(sub)
		if err != nil {
			t.Fatalf("%q decoded as %+v, which does not encode: %v", v, sub, err)
		}
		back, err := DecodeSub(again)
		if err != nil {
			t.Fatalf("%q re-encoded as %q, which does not decode: %v", v, again, err)
		}
		if !sameSub(back, sub) {
			t.Fatalf("%q decoded as %+v, re-encoded as %+v", v, sub, back)
		}
	})
}

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

// TestFormatV3EveryField: a version-3 topic record needs every field of
// its config, those it shares with version 2 (an embedded struct) too.
func TestFormatV3EveryField(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "format", "topic-orders.v3.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeTopic(b); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"partitions", "retention", "durability", "replicas", "schema_subject"} {
		i := strings.Index(string(b), `"`+field+`":`)
		if i < 0 {
			t.Fatalf("no %s in %q", field, b)
		}
		j := i + strings.IndexAny(string(b[i:]), ",}")
		cut := append(append([]byte{}, b[:i]...), b[j+1:]...)
		if _, err := DecodeTopic(cut); err == nil || !strings.Contains(err.Error(), `"config.`+field+`" missing`) {
			t.Errorf("without %s: %v", field, err)
		}
	}
}

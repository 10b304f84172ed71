package kafka

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeGroupConfigs decodes arbitrary bytes as a group's config
// record (DESIGN.md, "Fuzzing and the bad-input set"): never a panic, and
// what decodes encodes again to a record of the same configs.
func FuzzDecodeGroupConfigs(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("testdata", "format", "group-configs*"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	if b, err := encodeGroupConfigs(groupConfigCase); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"a":"b","a":"c"}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		cfg, err := decodeGroupConfigs(v)
		if err != nil {
			return
		}
		again, err := encodeGroupConfigs(cfg)
		if err != nil {
			t.Fatalf("%q decoded as %v, which does not encode: %v", v, cfg, err)
		}
		back, err := decodeGroupConfigs(again)
		if err != nil {
			t.Fatalf("%q re-encoded as %q, which does not decode: %v", v, again, err)
		}
		if !maps.Equal(back, cfg) {
			t.Fatalf("%q decoded as %v, re-encoded as %v", v, cfg, back)
		}
	})
}

package kgroup

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeCommitMeta decodes arbitrary bytes as a partition's commit
// metadata (DESIGN.md, "Fuzzing and the bad-input set"): never a panic,
// and what decodes encodes again to the same bytes.
func FuzzDecodeCommitMeta(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("..", "testdata", "format", "commit-meta*"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range commitMetaCases {
		f.Add(c.want.encode())
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		m, err := decodeCommitMeta(v)
		if err != nil {
			return
		}
		if again := m.encode(); !bytes.Equal(again, v) {
			t.Fatalf("%x decoded as %+v, re-encoded as %x", v, m, again)
		}
	})
}

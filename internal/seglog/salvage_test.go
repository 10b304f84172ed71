package seglog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/spoolmq/spool/internal/vfs"
)

// The salvage docs/operations.md ("Storage errors") describes for a
// corrupt sealed segment works: truncating the segment at the byte the
// error names and moving the later segments away leaves a log that opens,
// holding every record before the offset the error names.
func TestSalvageCorruptSegment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, _ := mustOpen(t, vfs.Default, dir, testOpts())
	for i := range 300 {
		if _, err := l.Append(padBatch(fmt.Sprintf("a%d", i), 900, int64(i))); err != nil {
			t.Fatal(err)
		}
	}
	before := readAll(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Flip a byte inside the second segment, and drop its seal so that
	// recovery scans it (a seal makes it trusted until read).
	names, _ := vfs.Default.List(dir)
	var segs []string
	for _, n := range names {
		if filepath.Ext(n) == ".log" {
			segs = append(segs, n)
		}
	}
	victim := filepath.Join(dir, segs[1])
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.WriteFile(victim, b, 0o644)
	os.Remove(victim[:len(victim)-len(".log")] + ".index")

	_, _, err = Open(vfs.Default, dir, testOpts())
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("open of a corrupt log: %v", err)
	}
	t.Log(err)
	if err := os.Truncate(ce.Path, ce.Position); err != nil {
		t.Fatal(err)
	}
	os.Remove(ce.Path[:len(ce.Path)-len(".log")] + ".index")
	for _, n := range segs[2:] {
		os.Remove(filepath.Join(dir, n))
		os.Remove(filepath.Join(dir, n[:len(n)-len(".log")]+".index"))
	}
	c, _ := mustOpen(t, vfs.Default, dir, testOpts())
	defer c.Close()
	if c.EndOffset() != ce.Offset {
		t.Fatalf("salvaged log ends at %d, want %d", c.EndOffset(), ce.Offset)
	}
	got := readAll(t, c)
	for off, bt := range before {
		if off < ce.Offset && string(got[off]) != string(bt) {
			t.Fatalf("batch at %d differs after the salvage", off)
		}
	}
	if _, err := c.Append(padBatch("after", 900, 1000)); err != nil {
		t.Fatal(err)
	}
}

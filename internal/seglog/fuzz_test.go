package seglog

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"path/filepath"
	"testing"

	"github.com/spoolmq/spool/internal/vfs"
)

// FuzzDecodeIndex: no input makes the index decoder panic or allocate more
// than the input justifies, and a decoded index encodes back to the same
// bytes.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex(&indexData{base: 0, dataSize: 100, next: 3, maxTS: 5,
		offs: []offEntry{{0, 0}, {2, 50}}, times: []timeEntry{{5, 0}}}))
	f.Add(encodeIndex(&indexData{base: 7, next: 7, maxTS: -1}))
	f.Add([]byte("SPIX\x01"))
	check := func(t *testing.T, b []byte) {
		d, err := decodeIndex(b)
		if err != nil {
			if !errors.Is(err, errBadIndex) {
				t.Fatalf("error does not wrap errBadIndex: %v", err)
			}
			return
		}
		if got := encodeIndex(d); string(got) != string(b) {
			t.Fatal("index does not round-trip")
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, b)
		// Again with the checksum repaired, so mutations reach the checks
		// behind it.
		if len(b) >= 4 {
			fixed := append([]byte(nil), b...)
			binary.BigEndian.PutUint32(fixed[len(fixed)-4:], crc32.Checksum(fixed[:len(fixed)-4], crcTable))
			check(t, fixed)
		}
	})
}

// FuzzRecoverSegment: whatever bytes the active segment holds, Open either
// recovers a log whose every batch reads back, or reports corruption; it
// never panics.
func FuzzRecoverSegment(f *testing.F) {
	good := append(mkBatch("a", 2, 1), mkBatch("b", 3, 2)...)
	f.Add(good)
	f.Add(good[:len(good)-7])
	f.Add(append(append([]byte{}, good...), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := vfs.NewMemFS()
		if err := fs.MkdirAll("/p", 0o755); err != nil {
			t.Fatal(err)
		}
		w, err := fs.Create(filepath.Join("/p", segmentName(0)+logSuffix))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
		o := testOpts()
		l, _, err := Open(fs, "/p", o)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open failed without a corruption error: %v", err)
			}
			return
		}
		defer l.Close()
		readAll(t, l)
	})
}

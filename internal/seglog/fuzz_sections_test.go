package seglog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"testing"
)

// Fuzz targets of the log's small files and sections (DESIGN.md, "Fuzzing
// and the bad-input set"): the start file, the snapshot record and file
// list, and the replication section of a version-2 index. No input panics,
// and what decodes encodes back to the same bytes (the file list: the
// same names).

// withCRC returns b with its last four bytes replaced by the CRC-32C of
// the others, so that mutations reach the checks behind the checksum.
func withCRC(b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	fixed := bytes.Clone(b)
	binary.BigEndian.PutUint32(fixed[len(fixed)-4:], crc32c(fixed[:len(fixed)-4]))
	return fixed
}

func FuzzDecodeStart(f *testing.F) {
	f.Add(encodeStart(0))
	f.Add(encodeStart(1 << 40))
	f.Add(encodeStart(-1))
	check := func(t *testing.T, b []byte) {
		off, err := decodeStart(b)
		if err != nil {
			return
		}
		if off < 0 {
			t.Fatalf("%x decoded as offset %d", b, off)
		}
		if again := encodeStart(off); !bytes.Equal(again, b) {
			t.Fatalf("%x decoded as %d, re-encoded as %x", b, off, again)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, b)
		check(t, withCRC(b))
	})
}

func FuzzDecodeSnapMeta(f *testing.F) {
	f.Add(encodeSnapMeta(nil))
	f.Add(encodeSnapMeta([]byte("the raft layer's record")))
	f.Add(encodeFileList(nil))
	f.Add(encodeFileList([]string{segmentName(0) + logSuffix, segmentName(0) + indexSuffix, startFileName, snapMetaFile, snapListFile}))
	check := func(t *testing.T, b []byte) {
		if meta, err := decodeSnapMeta(b); err == nil {
			if again := encodeSnapMeta(meta); !bytes.Equal(again, b) {
				t.Fatalf("snapshot record %x decoded as %x, re-encoded as %x", b, meta, again)
			}
		}
		if keep, err := decodeFileList(b); err == nil {
			names := slices.Sorted(maps.Keys(keep))
			back, err := decodeFileList(encodeFileList(names))
			if err != nil || !maps.Equal(back, keep) {
				t.Fatalf("file list %x decoded as %v, re-encoded as %v (%v)", b, names, back, err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, b)
		check(t, withCRC(b))
	})
}

// FuzzDecodeRaftSection decodes arbitrary bytes as the replication section
// of a seal describing dataSize bytes, and as a whole version-2 index. A
// section that decodes holds its invariants: raft index entries and term
// runs ascending inside [firstIndex, nextIndex), positions inside the
// data, term runs covering the segment from its first entry.
func FuzzDecodeRaftSection(f *testing.F) {
	good := &raftSection{firstIndex: 10, prevTerm: 2, nextIndex: 20, hasHeader: true,
		ridx: []idxEntry{{0, 0}, {4, 300}, {9, 900}}, runs: []termRun{{10, 3}, {15, 4}}}
	f.Add(appendRaftSection(nil, good), int64(1000))
	f.Add(appendRaftSection(nil, &raftSection{firstIndex: 5, nextIndex: 5}), int64(0))
	f.Add(encodeIndex(&indexData{base: 0, dataSize: 1000, next: 3, maxTS: 5, offs: []offEntry{{0, 0}}, raft: good}), int64(0))
	f.Add(encodeIndex(&indexData{base: 0, dataSize: 0, next: 0, maxTS: -1, raft: &raftSection{firstIndex: 1, nextIndex: 1}}), int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, dataSize int64) {
		if r, err := decodeRaftSection(b, dataSize); err == nil {
			checkRaftSection(t, r, dataSize)
			if again := appendRaftSection(nil, r); !bytes.Equal(again, b) {
				t.Fatalf("section %x re-encoded as %x", b, again)
			}
		} else if !errors.Is(err, errBadIndex) {
			t.Fatalf("error does not wrap errBadIndex: %v", err)
		}
		for _, in := range [][]byte{b, withCRC(b)} {
			d, err := decodeIndex(in)
			if err != nil || d.raft == nil {
				continue
			}
			checkRaftSection(t, d.raft, d.dataSize)
			if again := encodeIndex(d); !bytes.Equal(again, in) {
				t.Fatalf("index %x re-encoded as %x", in, again)
			}
		}
	})
}

func checkRaftSection(t *testing.T, r *raftSection, dataSize int64) {
	t.Helper()
	if r.nextIndex < r.firstIndex {
		t.Fatalf("next index %d before the first %d", r.nextIndex, r.firstIndex)
	}
	span := r.nextIndex - r.firstIndex
	for k, e := range r.ridx {
		if uint64(e.rel) >= span || int64(e.pos) >= dataSize || (k > 0 && (e.rel <= r.ridx[k-1].rel || e.pos <= r.ridx[k-1].pos)) {
			t.Fatalf("raft index entry %d %+v in a section [%d, %d) of %d bytes", k, e, r.firstIndex, r.nextIndex, dataSize)
		}
	}
	for k, run := range r.runs {
		if run.index < r.firstIndex || run.index >= r.nextIndex || (k > 0 && (run.index <= r.runs[k-1].index || run.term <= r.runs[k-1].term)) {
			t.Fatalf("term run %d %+v in a section [%d, %d)", k, run, r.firstIndex, r.nextIndex)
		}
	}
	if (span > 0) != (len(r.runs) > 0) || (len(r.runs) > 0 && r.runs[0].index != r.firstIndex) {
		t.Fatalf("term runs %+v do not cover [%d, %d)", r.runs, r.firstIndex, r.nextIndex)
	}
}

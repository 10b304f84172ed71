package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/vfs"
)

func replOpts() Options {
	o := testOpts()
	o.Replicated = true
	o.SegmentBytes = MinSegmentBytes
	o.IndexInterval = 256
	o.FlushBytes = 2 << 10
	o.Limits.MaxBatchBytes = 2 << 10
	return o
}

// modelEntry is what a test expects at one raft index.
type modelEntry struct {
	term     uint64
	internal bool
	tag      string
}

func seededRand(t *testing.T) *rand.Rand {
	seed := rand.Uint64()
	if v := os.Getenv("SPOOL_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SPOOL_SEED: %v", err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d (replay with SPOOL_SEED=%d)", seed, seed)
		}
	})
	return rand.New(rand.NewPCG(seed, 7))
}

// submit appends model entries to the log and waits for them.
func submit(t *testing.T, l *Log, first uint64, ms []modelEntry) {
	t.Helper()
	ents := make([]Entry, len(ms))
	for k, m := range ms {
		ents[k] = Entry{Term: m.term, Internal: m.internal, Data: []byte(m.tag)}
		if !m.internal {
			ents[k].Data = padBatch(m.tag, 60+len(m.tag)*3, 1000+int64(first)+int64(k))
		}
	}
	p, err := l.SubmitEntries(first, ents)
	if err != nil {
		t.Fatalf("submit at %d: %v", first, err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatalf("wait at %d: %v", first, err)
	}
}

// checkModel compares the log with the model: raft indexes, terms, entries,
// and the records readers see.
func checkModel(t *testing.T, l *Log, first uint64, model []modelEntry, what string) {
	t.Helper()
	last := first + uint64(len(model)) - 1
	if l.FirstIndex() != first || l.LastIndex() != last || l.NextIndex() != last+1 {
		t.Fatalf("%s: indexes [%d, %d] next %d, want [%d, %d]", what, l.FirstIndex(), l.LastIndex(), l.NextIndex(), first, last)
	}
	for k, m := range model {
		if got, err := l.Term(first + uint64(k)); err != nil || got != m.term {
			t.Fatalf("%s: term %d = %d %v, want %d", what, first+uint64(k), got, err, m.term)
		}
	}
	if _, err := l.Term(last + 1); !errors.Is(err, ErrIndexUnavailable) {
		t.Fatalf("%s: term after the last: %v", what, err)
	}
	k := 0
	err := l.ScanEntries(first, last+1, func(e Entry) bool {
		m := model[k]
		if e.Index != first+uint64(k) || e.Term != m.term || e.Internal != m.internal {
			t.Fatalf("%s: entry %d: %+v, want %+v", what, first+uint64(k), e, m)
		}
		if m.internal && string(e.Data) != m.tag || !m.internal && tagOf(t, e.Data) != m.tag {
			t.Fatalf("%s: entry %d has the wrong data", what, e.Index)
		}
		k++
		return true
	})
	if err != nil || k != len(model) {
		t.Fatalf("%s: scan: %d entries, %v", what, k, err)
	}
	var tags []string
	for _, m := range model {
		if !m.internal {
			tags = append(tags, m.tag)
		}
	}
	off, n := l.StartOffset(), 0
	for off < l.EndOffset() {
		data, err := l.Read(off, 300)
		if err != nil || len(data) == 0 {
			t.Fatalf("%s: read at %d: %v", what, off, err)
		}
		for bt, err := range batch.Batches(data) {
			if err != nil || bt.BaseOffset != off || bt.Attributes&AttrInternal != 0 {
				t.Fatalf("%s: read at %d gave batch at %d (attributes %#x): %v", what, off, bt.BaseOffset, bt.Attributes, err)
			}
			if n >= len(tags) || tagOf(t, bt.Bytes) != tags[n] {
				t.Fatalf("%s: record batch %d at offset %d is not the model's", what, n, off)
			}
			off, n = bt.LastOffset()+1, n+1
		}
	}
	if n != len(tags) || l.EndOffset() != int64(n) {
		t.Fatalf("%s: read %d data batches up to %d, want %d", what, n, l.EndOffset(), len(tags))
	}
}

// TestReplicatedModel submits random runs of data and internal entries,
// truncates at random indexes and reopens (cleanly, or from the synced
// state only, or without seals), checking the log against a model.
func TestReplicatedModel(t *testing.T) {
	rng := seededRand(t)
	mem := vfs.NewMemFS()
	o := replOpts()
	l, _ := mustOpen(t, mem, "/p", o)
	defer func() { l.Close() }()
	var model []modelEntry
	term := uint64(1)
	maxSegs := 0
	for step := range 400 {
		switch r := rng.IntN(10); {
		case r < 7:
			var ms []modelEntry
			for range 1 + rng.IntN(10) {
				if rng.IntN(8) == 0 {
					term++
				}
				ms = append(ms, modelEntry{term: term, internal: rng.IntN(3) == 0, tag: fmt.Sprintf("s%d.%d", step, len(ms))})
			}
			submit(t, l, uint64(len(model))+1, ms)
			model = append(model, ms...)
		case r < 8 && len(model) > 0:
			keep := len(model) - rng.IntN(min(len(model), 12)+1)
			if rng.IntN(10) == 0 {
				keep = rng.IntN(len(model) + 1)
			}
			if err := l.TruncateAfterIndex(uint64(keep)); err != nil {
				t.Fatalf("step %d: truncate after %d: %v", step, keep, err)
			}
			model = model[:keep]
			term++
		default:
			if rng.IntN(2) == 0 {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				mem = mem.CrashClone(vfs.CrashOptions{})
				l.Close()
			}
			if rng.IntN(3) == 0 {
				names, _ := mem.List("/p")
				for _, n := range names {
					if _, ok := parseSegmentName(n, indexSuffix); ok {
						mem.Remove("/p/" + n)
					}
				}
			}
			l, _ = mustOpen(t, mem, "/p", o)
		}
		checkModel(t, l, 1, model, fmt.Sprintf("step %d", step))
		maxSegs = max(maxSegs, len(l.Segments()))
	}
	if maxSegs < 3 {
		t.Fatalf("at most %d segments: the test did not roll", maxSegs)
	}
}

// TestReplicatedRefusals: a replicated log takes raft entries only, in
// order, with terms that fit its field; a plain log has no raft methods.
func TestReplicatedRefusals(t *testing.T) {
	l, _ := mustOpen(t, vfs.NewMemFS(), "/p", replOpts())
	defer l.Close()
	if _, err := l.Append(mkBatch("a", 1, 1)); !errors.Is(err, ErrReplicated) {
		t.Fatalf("plain append: %v", err)
	}
	if err := l.TruncateAfter(0); !errors.Is(err, ErrReplicated) {
		t.Fatalf("plain truncation: %v", err)
	}
	marked := mkBatch("m", 1, 1)
	marked[21] |= 0x40 // attributes bit 14
	binary.BigEndian.PutUint32(marked[17:], batch.CRC(marked))
	for name, ents := range map[string][]Entry{
		"term 0":         {{Term: 0, Internal: true}},
		"term too large": {{Term: 1 << 31, Internal: true}},
		"terms decrease": {{Term: 2, Internal: true}, {Term: 1, Internal: true}},
		"not a batch":    {{Term: 1, Data: []byte("x")}},
		"marker bit set": {{Term: 1, Data: marked}},
	} {
		if _, err := l.SubmitEntries(1, ents); !errors.Is(err, ErrBadEntry) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := l.SubmitEntries(2, []Entry{{Term: 1, Internal: true}}); !errors.Is(err, ErrBadEntry) {
		t.Errorf("gap: %v", err)
	}
	submit(t, l, 1, []modelEntry{{term: 3, internal: true, tag: "x"}})
	if _, err := l.SubmitEntries(2, []Entry{{Term: 2, Internal: true}}); !errors.Is(err, ErrBadEntry) {
		t.Errorf("lower term after the last entry: %v", err)
	}
	if err := l.TruncateAfterIndex(5); err == nil {
		t.Error("truncation past the end accepted")
	}
	plain, _ := mustOpen(t, vfs.NewMemFS(), "/q", testOpts())
	defer plain.Close()
	if _, err := plain.SubmitEntries(1, []Entry{{Term: 1, Internal: true}}); !errors.Is(err, ErrNotReplicated) {
		t.Errorf("plain log: %v", err)
	}
}

// TestReplicatedTornTail: a crash that keeps part of the unsynced writes
// recovers a prefix of what was submitted that holds everything
// acknowledged, with matching terms.
func TestReplicatedTornTail(t *testing.T) {
	rng := seededRand(t)
	o := replOpts()
	for round := range 30 {
		mem := vfs.NewMemFS()
		l, _ := mustOpen(t, mem, "/p", o)
		var model []modelEntry
		acked := 0
		for step := range 20 + rng.IntN(60) {
			ms := []modelEntry{{term: uint64(1 + step/10), internal: step%3 == 0, tag: fmt.Sprintf("r%d.%d", round, step)}}
			submit(t, l, uint64(len(model))+1, ms)
			model = append(model, ms...)
			acked = len(model)
		}
		// One more submission, not waited for: it may land in part.
		p, err := l.SubmitEntries(uint64(len(model))+1, []Entry{{Term: 9, Data: padBatch("torn", 1500, 5)}, {Term: 9, Internal: true, Data: []byte("t2")}})
		if err != nil {
			t.Fatal(err)
		}
		crash := mem.CrashClone(vfs.CrashOptions{Rand: rng, TearLastWrite: true})
		p.Wait()
		l.Close()
		l2, _ := mustOpen(t, crash, "/p", o)
		got := int(l2.LastIndex())
		if got < acked || got > acked+2 {
			t.Fatalf("round %d: recovered %d entries, acknowledged %d", round, got, acked)
		}
		full := append(model, modelEntry{term: 9, tag: "torn"}, modelEntry{term: 9, internal: true, tag: "t2"})
		checkModel(t, l2, 1, full[:got], fmt.Sprintf("round %d", round))
		l2.Close()
	}
}

// TestReplicatedSealVersions: a replicated segment's seal is version 2 and
// round-trips; a plain log's stays version 1.
func TestReplicatedSealVersions(t *testing.T) {
	s := newSegment("/p", 0, nil)
	s.firstIndex, s.prevTerm = 5, 2
	s.nextIndex.Store(5)
	s.hasHeader.Store(true)
	s.trackRaft(78, 3, 100, 1)
	s.trackRaft(178, 4, 100, 1)
	s.size.Store(278)
	b := encodeIndex(s.indexData(true))
	if b[4] != indexVersionReplicated {
		t.Fatalf("version %d", b[4])
	}
	d, err := decodeIndex(b)
	if err != nil || d.raft == nil || d.raft.nextIndex != 7 || len(d.raft.runs) != 2 || len(d.raft.ridx) != 2 {
		t.Fatalf("decode: %+v %v", d, err)
	}
	if v1 := encodeIndex(s.indexData(false)); v1[4] != indexVersion {
		t.Fatalf("plain seal has version %d", v1[4])
	}
	b[len(b)-5] ^= 1
	if _, err := decodeIndex(b); err == nil {
		t.Fatal("damaged seal accepted")
	}
}

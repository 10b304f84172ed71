package producer

import (
	"math"
	"testing"
)

func TestIncSeq(t *testing.T) {
	for _, tc := range []struct{ seq, inc, want int32 }{
		{0, 1, 1},
		{5, 10, 15},
		{math.MaxInt32 - 1, 1, math.MaxInt32},
		{math.MaxInt32, 1, 0},
		{math.MaxInt32 - 2, 5, 2},
		{math.MaxInt32, 0, math.MaxInt32},
	} {
		if got := incSeq(tc.seq, tc.inc); got != tc.want {
			t.Errorf("incSeq(%d, %d) = %d, want %d", tc.seq, tc.inc, got, tc.want)
		}
	}
}

// state builds a producer state with epoch e whose window holds batches
// given as first/last pairs (oldest first).
func seqState(e int16, batches ...[2]int32) *producerState {
	st := &producerState{}
	for i, b := range batches {
		st.push(e, seqBatch{first: b[0], last: b[1], base: int64(100 * (i + 1))})
	}
	return st
}

func TestCheckSeqRules(t *testing.T) {
	type batchArgs struct {
		epoch       int16
		first, last int32
	}
	full := seqState(3, [2]int32{0, 9}, [2]int32{10, 19}, [2]int32{20, 29}, [2]int32{30, 39}, [2]int32{40, 49}, [2]int32{50, 59})
	for _, tc := range []struct {
		name         string
		st           *producerState
		b            batchArgs
		neverWritten bool
		want         seqVerdict
		wantBase     int64
	}{
		{"unknown producer, any first sequence", nil, batchArgs{0, 57, 60}, false, seqAccept, 0},
		{"unknown producer, sequence 0", nil, batchArgs{0, 0, 3}, false, seqAccept, 0},
		{"unknown producer on a never-written partition needs 0", nil, batchArgs{0, 5, 6}, true, seqOutOfOrder, 0},
		{"unknown producer on a never-written partition at 0", nil, batchArgs{0, 0, 6}, true, seqAccept, 0},
		{"next in sequence", seqState(1, [2]int32{0, 4}), batchArgs{1, 5, 9}, false, seqAccept, 0},
		{"gap", seqState(1, [2]int32{0, 4}), batchArgs{1, 6, 9}, false, seqOutOfOrder, 0},
		{"older sequence not remembered", full, batchArgs{3, 0, 9}, false, seqOutOfOrder, 0},
		{"repeat of the newest", full, batchArgs{3, 50, 59}, false, seqDuplicate, 600},
		{"repeat of the oldest remembered", full, batchArgs{3, 10, 19}, false, seqDuplicate, 200},
		{"same first, different last", full, batchArgs{3, 50, 55}, false, seqOutOfOrder, 0},
		{"lower epoch", seqState(2, [2]int32{0, 4}), batchArgs{1, 5, 9}, false, seqFenced, 0},
		{"lower epoch, even a repeat", seqState(2, [2]int32{0, 4}), batchArgs{1, 0, 4}, false, seqFenced, 0},
		{"higher epoch at 0", seqState(2, [2]int32{0, 4}), batchArgs{3, 0, 1}, false, seqAccept, 0},
		{"higher epoch not at 0", seqState(2, [2]int32{0, 4}), batchArgs{3, 5, 9}, false, seqOutOfOrder, 0},
		{"wrap past MaxInt32", seqState(0, [2]int32{math.MaxInt32 - 9, math.MaxInt32}), batchArgs{0, 0, 4}, false, seqAccept, 0},
		{"wrap inside a batch", seqState(0, [2]int32{0, math.MaxInt32 - 3}), batchArgs{0, math.MaxInt32 - 2, 1}, false, seqAccept, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, dup := checkSeq(tc.st, tc.b.epoch, tc.b.first, tc.b.last, tc.neverWritten)
			if got != tc.want {
				t.Fatalf("verdict %d, want %d", got, tc.want)
			}
			if got == seqDuplicate && dup.base != tc.wantBase {
				t.Fatalf("duplicate answered with base %d, want %d", dup.base, tc.wantBase)
			}
		})
	}
}

func TestProducerStateWindow(t *testing.T) {
	st := &producerState{}
	for i := range int32(8) {
		st.push(0, seqBatch{first: 10 * i, last: 10*i + 9, base: int64(i)})
	}
	if st.n != seqWindow || st.nextSeq != 80 {
		t.Fatalf("window %d next %d", st.n, st.nextSeq)
	}
	for i := range int32(8) {
		if want := i >= 3; st.has(10*i, 10*i+9) != want {
			t.Errorf("batch %d remembered: %v, want %v", i, !want, want)
		}
	}
	// A new epoch starts a new window.
	st.push(1, seqBatch{first: 0, last: 0, base: 9})
	if st.n != 1 || st.epoch != 1 || st.nextSeq != 1 || st.has(70, 79) {
		t.Fatalf("after epoch bump: %+v", st)
	}
}

func TestProducerSnapshotStates(t *testing.T) {
	snap := producerSnapshot{end: 42, producers: []snapshotProducer{
		{id: 7, epoch: 2, lastSeen: 5, batches: []snapshotBatch{{0, 4, 10}, {5, 9, 20}}},
		{id: 8, epoch: 0}, // nothing durable: dropped
	}}
	states := snap.states()
	if len(states) != 1 {
		t.Fatalf("states %v", states)
	}
	st := states[7]
	if st.epoch != 2 || st.nextSeq != 10 || !st.has(5, 9) || st.lastSeen != 5 {
		t.Fatalf("state %+v", st)
	}
}

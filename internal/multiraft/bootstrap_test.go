package multiraft

import (
	"math"
	"testing"

	"go.etcd.io/raft/v3"
	"google.golang.org/protobuf/proto"
)

// TestBootstrapEntriesAgree: members bootstrapped with their peers listed
// in different orders (a map's) write the same first entries, as raft's
// log matching requires of entries with the same index and term.
func TestBootstrapEntriesAgree(t *testing.T) {
	orders := [][]raft.Peer{{{ID: 1}, {ID: 2}, {ID: 3}}, {{ID: 3}, {ID: 1}, {ID: 2}}, {{ID: 2}, {ID: 3}, {ID: 1}}}
	nw := &net{cut: map[[2]uint64]bool{}}
	var first []*member
	for i, peers := range orders {
		m := &member{id: uint64(i + 1), dir: t.TempDir()}
		m.start(t, nw, peers)
		m.node.Process()
		defer m.crash()
		first = append(first, m)
	}
	want, err := first[0].log.Entries(1, 4, math.MaxUint64)
	if err != nil || len(want) != 3 {
		t.Fatalf("member 1's bootstrap entries: %v, %v", want, err)
	}
	for _, m := range first[1:] {
		got, err := m.log.Entries(1, 4, math.MaxUint64)
		if err != nil || len(got) != len(want) {
			t.Fatalf("member %d's bootstrap entries: %v, %v", m.id, got, err)
		}
		for i := range got {
			if !proto.Equal(got[i], want[i]) {
				t.Errorf("entry %d: member 1 wrote %v, member %d %v", i+1, want[i], m.id, got[i])
			}
		}
	}
}

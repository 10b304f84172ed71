package multiraft

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/partlog"
	"github.com/spoolmq/spool/internal/peer"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/internal/vfs"
)

// partStorage adapts a partition log's raft storage to AsyncStorage.
type partStorage struct{ *partlog.Storage }

func (p partStorage) AppendAsync(m *raftpb.Message) (AsyncWrite, error) {
	w, err := p.Append(m)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// records is a partition group's test state machine: the values of the
// record batches applied, in order, each checked to start at the offset
// after the previous one.
type records struct {
	mu     sync.Mutex
	values []string
	next   int64
	log    *seglog.Log // set: it restores snapshots (its log holds them)
}

func (r *records) Apply(ents []Entry) ([]error, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range ents {
		h, err := batch.ParseHeader(e.Data)
		if err != nil {
			return nil, fmt.Errorf("entry %d is no record batch: %w", e.Index, err)
		}
		if h.BaseOffset != r.next {
			return nil, fmt.Errorf("entry %d starts at offset %d, want %d", e.Index, h.BaseOffset, r.next)
		}
		recs, err := batch.Records(e.Data, 1<<20)
		if err != nil || len(recs) != 1 {
			return nil, fmt.Errorf("entry %d: %v", e.Index, err)
		}
		r.values = append(r.values, string(recs[0].Value))
		r.next = h.LastOffset() + 1
	}
	return nil, nil
}

func (r *records) Restore(snap *raftpb.Snapshot) error {
	if r.log == nil {
		return fmt.Errorf("no snapshots")
	}
	off, err := r.log.OffsetAfterIndex(snap.GetMetadata().GetIndex())
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values = append(r.values, "<snapshot>")
	r.next = off
	return nil
}

func (r *records) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.values)
}

// partMember is one node of a partition group on real files.
type partMember struct {
	id    uint64
	dir   string
	st    *state.Store
	log   *seglog.Log
	ps    *partlog.Storage
	sm    *records
	node  *Node
	alive bool
	snaps SnapshotSender // set: it runs with snapshots, from its snapshot
}

func (m *partMember) start(t *testing.T, nw *net, peers []raft.Peer) {
	t.Helper()
	var err error
	if m.st, err = state.Open(filepath.Join(m.dir, "state"), state.Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	opts := seglog.Options{Replicated: true, SegmentBytes: seglog.MinSegmentBytes, Logger: quiet,
		Limits: batch.Limits{MaxBatchBytes: 2 << 10, MaxDecompressedBytes: 1 << 20, MaxRecords: 1 << 10, CheckRecords: true}}
	if m.log, _, err = seglog.Open(vfs.Default, filepath.Join(m.dir, "log"), opts); err != nil {
		t.Fatal(err)
	}
	if m.ps, err = partlog.Open(m.log, m.st, 1); err != nil {
		t.Fatal(err)
	}
	m.sm = &records{}
	m.node = New(Config{ID: m.id, Sender: sender{nw, m.id}, Logger: quiet, Snapshots: m.snaps})
	// The state machine is rebuilt from the log: raft hands back every
	// committed entry from the start, or from the snapshot.
	var applied uint64
	if m.snaps != nil {
		applied, m.sm.log = m.ps.SnapshotIndex(), m.log
		if m.sm.next, err = m.log.OffsetAfterIndex(applied); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.node.AddGroupWith(1, GroupConfig{Async: partStorage{m.ps}, StateMachine: m.sm, Peers: peers, Untagged: true, Applied: applied}); err != nil {
		t.Fatal(err)
	}
	m.alive = true
}

func (m *partMember) crash() {
	m.node.Close()
	m.log.Close()
	m.st.Close()
	m.alive = false
}

// TestAsyncPartitionGroup runs a three-node partition group on partition
// logs (raft's AsyncStorageWrites, entries stored as the record batches
// themselves) through a seeded schedule of lost and reordered messages,
// partitions and crashes, with record batches proposed to whoever leads.
// Then it heals everything and checks that every node applied the same
// batches, each once, at contiguous offsets (the state machine checks the
// offsets as it applies; each log numbers the batches it stores, so the
// replicas agree because their logs do), and that no group stopped.
func TestAsyncPartitionGroup(t *testing.T) {
	rng := seeded(t)
	nw := &net{cut: map[[2]uint64]bool{}}
	peers := []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	ms := map[uint64]*partMember{}
	for id := uint64(1); id <= 3; id++ {
		ms[id] = &partMember{id: id, dir: t.TempDir()}
		ms[id].start(t, nw, peers)
	}
	defer func() {
		for _, m := range ms {
			if m.alive {
				m.crash()
			}
		}
	}()
	step := func(faults bool) {
		for id := uint64(1); id <= 3; id++ {
			if m := ms[id]; m.alive {
				if rng.IntN(3) == 0 {
					m.node.Tick()
				}
				m.node.Process()
			}
		}
		nw.mu.Lock()
		rng.Shuffle(len(nw.inflight), func(i, j int) { nw.inflight[i], nw.inflight[j] = nw.inflight[j], nw.inflight[i] })
		k := len(nw.inflight)
		if faults {
			k = rng.IntN(len(nw.inflight) + 1)
		}
		batchOf := slices.Clone(nw.inflight[:k])
		nw.inflight = slices.Delete(nw.inflight, 0, k)
		nw.mu.Unlock()
		for _, p := range batchOf {
			to := ms[p.to]
			nw.mu.Lock()
			cut := nw.cut[[2]uint64{p.from, p.to}]
			nw.mu.Unlock()
			if !to.alive || (faults && rng.IntN(20) == 0) || cut {
				continue
			}
			to.node.Receive(p.from, []peer.Envelope{p.env})
		}
		time.Sleep(200 * time.Microsecond) // the logs' group commits complete meanwhile
	}
	proposed := 0
	for round := range 1500 {
		switch r := rng.IntN(1000); {
		case r < 3:
			down := 0
			for _, m := range ms {
				if !m.alive {
					down++
				}
			}
			if m := ms[uint64(1+rng.IntN(3))]; m.alive && down == 0 {
				m.crash()
			}
		case r < 10:
			for _, m := range ms {
				if !m.alive {
					m.start(t, nw, nil)
				}
			}
		case r < 13:
			c := uint64(1 + rng.IntN(3))
			nw.mu.Lock() // answers of durable writes are sent from other goroutines
			for o := uint64(1); o <= 3; o++ {
				if o != c {
					nw.cut[[2]uint64{c, o}], nw.cut[[2]uint64{o, c}] = true, true
				}
			}
			nw.mu.Unlock()
		case r < 25:
			nw.mu.Lock()
			clear(nw.cut)
			nw.mu.Unlock()
		}
		if round < 1200 && rng.IntN(2) == 0 {
			for _, m := range ms {
				if !m.alive {
					continue
				}
				st, _ := m.node.Status(1)
				if st.RaftState != raft.StateLeader {
					continue
				}
				b := recordBatch(fmt.Sprintf("v%d", round), m.ps.NextOffset(), st.HardState.GetTerm())
				if m.node.ProposeUntagged(1, b) == nil {
					proposed++
				}
				break
			}
		}
		step(true)
	}
	nw.mu.Lock()
	clear(nw.cut)
	nw.mu.Unlock()
	for _, m := range ms {
		if !m.alive {
			m.start(t, nw, nil)
		}
	}
	var ref []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		step(false)
		ref = ms[1].sm.snapshot()
		same := true
		for id := uint64(2); id <= 3; id++ {
			same = same && slices.Equal(ms[id].sm.snapshot(), ref)
		}
		// A leader elected late commits an empty entry that changes no
		// state machine; convergence also waits for every node to apply
		// all it knows to be committed.
		lagging := ""
		for _, m := range ms {
			st, ok := m.node.Status(1)
			if !ok {
				t.Fatalf("node %d's group stopped (its state machine refused an entry, or its log failed)", m.id)
			}
			if st.Applied != st.HardState.GetCommit() && lagging == "" {
				lagging = fmt.Sprintf("node %d applied %d of %d committed entries", m.id, st.Applied, st.HardState.GetCommit())
			}
		}
		if same && len(ref) > 0 && lagging == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes did not converge: %d, %d and %d batches applied; %s", len(ref), len(ms[2].sm.snapshot()), len(ms[3].sm.snapshot()), lagging)
		}
	}
	seen := map[string]bool{}
	for _, v := range ref {
		if seen[v] {
			t.Fatalf("batch %s applied twice", v)
		}
		seen[v] = true
	}
	for _, m := range ms {
		if l := m.log.NextOffset(); l < int64(len(ref)) {
			t.Fatalf("node %d's log ends at offset %d, before the %d batches applied", m.id, l, len(ref))
		}
	}
	t.Logf("%d batches proposed, %d committed", proposed, len(ref))
}

func recordBatch(value string, offset int64, term uint64) []byte {
	b, err := batch.Encode(nil, batch.Header{BaseTimestamp: 1000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]batch.Record{{Key: []byte("k"), Value: []byte(value)}})
	if err != nil {
		panic(err)
	}
	batch.SetBaseOffset(b, offset)
	batch.SetPartitionLeaderEpoch(b, int32(term))
	return b
}

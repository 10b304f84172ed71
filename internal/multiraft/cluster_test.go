package multiraft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"

	"github.com/spoolmq/spool/internal/peer"
	"github.com/spoolmq/spool/internal/raftlog"
	"github.com/spoolmq/spool/internal/state"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// seeded returns a generator seeded from $SPOOL_SEED, or at random; the
// seed is logged so that a failure can be replayed (raft's own election
// jitter is not seeded, so a replay is close, not exact).
func seeded(t *testing.T) *rand.Rand {
	seed := rand.Uint64()
	if v := os.Getenv("SPOOL_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SPOOL_SEED: %v", err)
		}
	}
	t.Logf("seed %d (replay with SPOOL_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, 3))
}

// list is the test's state machine: the applied data, in order.
type list struct {
	mu    sync.Mutex
	items []string
	index uint64
}

func (l *list) Apply(ents []Entry) ([]error, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var outcomes []error
	for i, e := range ents {
		if e.Index <= l.index {
			return nil, fmt.Errorf("entry %d applied again (applied %d)", e.Index, l.index)
		}
		if strings.HasPrefix(string(e.Data), "refuse") {
			if outcomes == nil {
				outcomes = make([]error, len(ents))
			}
			outcomes[i] = errRefused
		}
		l.items = append(l.items, string(e.Data))
		l.index = e.Index
	}
	return outcomes, nil
}

var errRefused = errors.New("refused by the state machine")

func (l *list) Restore(snap *raftpb.Snapshot) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = nil
	if d := snap.GetData(); len(d) > 0 {
		l.items = strings.Split(string(d), ",")
	}
	l.index = snap.GetMetadata().GetIndex()
	return nil
}

func (l *list) snapshot() (uint64, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.index, []byte(strings.Join(l.items, ","))
}

// net is a simulated network: what nodes send waits here until the test
// delivers, drops or reorders it.
type net struct {
	mu       sync.Mutex
	inflight []pending
	cut      map[[2]uint64]bool // links that drop everything
}

type pending struct {
	from, to uint64
	env      peer.Envelope
}

type sender struct {
	n    *net
	from uint64
}

func (s sender) Send(to uint64, envs ...peer.Envelope) bool {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if s.n.cut[[2]uint64{s.from, to}] {
		return false
	}
	for _, e := range envs {
		s.n.inflight = append(s.n.inflight, pending{s.from, to, e})
	}
	return true
}

type member struct {
	id    uint64
	dir   string
	st    *state.Store
	log   *raftlog.Store
	sm    *list
	node  *Node
	alive bool
}

func (m *member) start(t *testing.T, nw *net, peers []raft.Peer) {
	t.Helper()
	var err error
	if m.st, err = state.Open(m.dir, state.Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	if m.log, err = raftlog.Open(m.st, 0); err != nil {
		t.Fatal(err)
	}
	m.sm = &list{}
	snap, _ := m.log.Snapshot()
	m.sm.Restore(snap)
	m.node = New(Config{ID: m.id, Sender: sender{nw, m.id}, Logger: quiet})
	if err := m.node.AddGroup(0, m.log, m.sm, m.sm.index, peers); err != nil {
		t.Fatal(err)
	}
	m.alive = true
}

func (m *member) crash() {
	m.node.Close()
	m.st.Close()
	m.alive = false
}

// TestClusterUnderFaults runs a three-node group through a seeded
// schedule of lost, reordered and delayed messages, partitions, node
// crashes and restarts (from their state stores) and compactions, with
// clients proposing throughout; then heals everything and checks that
// every node applied the same entries, and that every proposal answered
// as applied is among them exactly once.
func TestClusterUnderFaults(t *testing.T) {
	rng := seeded(t)
	nw := &net{cut: map[[2]uint64]bool{}}
	peers := []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	ms := map[uint64]*member{}
	for id := uint64(1); id <= 3; id++ {
		ms[id] = &member{id: id, dir: t.TempDir()}
		ms[id].start(t, nw, peers)
	}
	defer func() {
		for _, m := range ms {
			if m.alive {
				m.crash()
			}
		}
	}()
	var (
		wg       sync.WaitGroup
		resMu    sync.Mutex
		acked    []string
		refused  []string // applied, with the state machine's refusal as outcome
		proposed int
	)
	propose := func(m *member, v string) {
		node := m.node
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := node.Propose(ctx, 0, []byte(v))
			resMu.Lock()
			defer resMu.Unlock()
			switch {
			case err == nil:
				acked = append(acked, v)
			case errors.Is(err, errRefused):
				refused = append(refused, v)
			}
		}()
	}
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
		batch := slices.Clone(nw.inflight[:k])
		nw.inflight = slices.Delete(nw.inflight, 0, k)
		nw.mu.Unlock()
		for _, p := range batch {
			to := ms[p.to]
			if !to.alive || (faults && rng.IntN(20) == 0) || nw.cut[[2]uint64{p.from, p.to}] {
				if from := ms[p.from]; from.alive && p.env.Msg.GetType() == raftpb.MsgSnap {
					from.node.Report(0, func(rn *raft.RawNode) { rn.ReportSnapshot(p.to, raft.SnapshotFailure) })
				}
				continue
			}
			to.node.Receive(p.from, []peer.Envelope{p.env})
			if from := ms[p.from]; from.alive && p.env.Msg.GetType() == raftpb.MsgSnap {
				from.node.Report(0, func(rn *raft.RawNode) { rn.ReportSnapshot(p.to, raft.SnapshotFinish) })
			}
		}
	}
	for round := range 3000 {
		switch r := rng.IntN(1000); {
		case r < 3: // crash a node (at most one down at a time)
			down := 0
			for _, m := range ms {
				if !m.alive {
					down++
				}
			}
			if m := ms[uint64(1+rng.IntN(3))]; m.alive && down == 0 {
				m.crash()
			}
		case r < 10: // restart crashed nodes
			for _, m := range ms {
				if !m.alive {
					m.start(t, nw, nil)
				}
			}
		case r < 13: // cut one node off both ways
			c := uint64(1 + rng.IntN(3))
			for o := uint64(1); o <= 3; o++ {
				if o != c {
					nw.cut[[2]uint64{c, o}], nw.cut[[2]uint64{o, c}] = true, true
				}
			}
		case r < 25: // heal
			clear(nw.cut)
		case r < 30: // compact a node's log at what it applied
			if m := ms[uint64(1+rng.IntN(3))]; m.alive {
				if i, data := m.sm.snapshot(); i > 0 {
					if st, ok := m.node.Status(0); ok {
						m.log.Compact(i, confState(st), data)
					}
				}
			}
		}
		if round < 2500 && rng.IntN(2) == 0 {
			if m := ms[uint64(1+rng.IntN(3))]; m.alive {
				proposed++
				v := fmt.Sprintf("v%d", round)
				if round%7 == 0 {
					v = fmt.Sprintf("refuse%d", round)
				}
				propose(m, v)
			}
		}
		step(true)
	}
	clear(nw.cut)
	for _, m := range ms {
		if !m.alive {
			m.start(t, nw, nil)
		}
	}
	for range 300 {
		step(false)
	}
	wg.Wait()
	ref := ms[1].sm.items
	for id := uint64(2); id <= 3; id++ {
		if got := ms[id].sm.items; !slices.Equal(got, ref) {
			t.Fatalf("node %d applied %d entries, node 1 %d: the logs diverge", id, len(got), len(ref))
		}
	}
	seen := map[string]int{}
	for _, v := range ref {
		seen[v]++
	}
	for _, v := range append(slices.Clone(acked), refused...) {
		if seen[v] != 1 {
			t.Fatalf("proposal %s was answered as applied but is in the log %d times", v, seen[v])
		}
		if strings.HasPrefix(v, "refuse") != slices.Contains(refused, v) {
			t.Fatalf("proposal %s: the state machine's outcome did not reach its proposer", v)
		}
	}
	t.Logf("%d proposals, %d answered as applied, %d in the log", proposed, len(acked), len(ref))
	if len(acked) == 0 || len(refused) == 0 {
		t.Fatal("no proposal was applied, or none refused")
	}
}

func confState(st raft.Status) *raftpb.ConfState {
	var voters []uint64
	for id := range st.Config.Voters.IDs() {
		voters = append(voters, id)
	}
	slices.Sort(voters)
	return &raftpb.ConfState{Voters: voters}
}

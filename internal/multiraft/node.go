// Package multiraft drives the raft groups one node belongs to: it steps
// the messages the transport delivers into their groups, ticks them,
// takes proposals, and runs each group's Ready cycle — persist, send,
// apply, advance — on a bounded set of workers, each group on one worker
// at a time. It knows nothing of what the groups hold: a group is a raft
// log (Storage) and a state machine.
//
// The Ready cycle is raft's synchronous one: a Ready's entries and hard
// state are persisted before any of its messages are sent and before its
// committed entries are applied (raft may hand out committed entries that
// are not yet durable locally, and etcd lost writes by applying them in
// parallel with the save: etcd #14370). A storage error stops the group
// for good (raft's contract: the instance is inoperable); the node goes
// on with its other groups.
//
// With Config.Workers = 0 nothing runs by itself: tests call Process to
// run all pending work on their own goroutine, so that a cluster of nodes
// in one process can be stepped deterministically by a seeded scheduler.
package multiraft

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/peer"
)

// Storage is a group's raft log: raft's reads, and the writes of a Ready.
type Storage interface {
	raft.Storage
	Save(hs *raftpb.HardState, ents []*raftpb.Entry, snap *raftpb.Snapshot, sync bool) error
}

// Entry is a committed normal entry, without the driver's proposal tag.
type Entry struct {
	Index, Term uint64
	Data        []byte
}

// StateMachine applies a group's committed entries.
type StateMachine interface {
	// Apply applies committed entries, in log order. outcomes, when not
	// nil, holds one result per entry, returned to the entry's proposer
	// (an application's refusal, such as a name already taken: the same
	// on every node). err stops the group (a storage failure).
	Apply(ents []Entry) (outcomes []error, err error)
	// Restore replaces the state with a snapshot's (received from the
	// leader).
	Restore(snap *raftpb.Snapshot) error
}

// LeaderReadier is a StateMachine told when this node, leading a term, has
// applied every entry committed before it (the term's first entry, the
// leader's empty one, is applied): from then on its state is complete, and
// what it serves as leader reflects every earlier term's effects.
type LeaderReadier interface {
	LeaderReady(term uint64)
}

// Stopper is a StateMachine told when its group stops on this node after a
// storage or state-machine error (not when it is removed or the node
// closes): nothing it waits for will be applied here. Called once, on the
// group's worker.
type Stopper interface {
	Stopped(err error)
}

// Sender sends envelopes to a peer; false if they were dropped.
type Sender interface {
	Send(to uint64, envs ...peer.Envelope) bool
}

// Config configures a Node.
type Config struct {
	ID      uint64
	Sender  Sender
	Logger  *slog.Logger
	Workers int // goroutines processing groups; 0: none (tests call Process)
	// ElectionTicks and HeartbeatTicks are raft's (defaults 10 and 1).
	ElectionTicks, HeartbeatTicks int
	// MaxSizePerMsg and MaxInflightMsgs bound replication messages
	// (defaults 1 MiB and 64).
	MaxSizePerMsg   uint64
	MaxInflightMsgs int
	// QuiesceTicks: a leader whose group has had nothing to do for this
	// many ticks, with every follower caught up, quiesces it (default 3;
	// negative: never).
	QuiesceTicks int
	// Snapshots sends the snapshots of asynchronous groups (async.go);
	// nil: their MsgSnap go out as messages (and the receiver drops them).
	Snapshots SnapshotSender
	// SnapshotEntries: a synchronous group whose state machine is a
	// Snapshotter and whose storage is a Compactor snapshots its state
	// after this many entries were applied since its last snapshot, and
	// compacts its log, keeping the last SnapshotKeep entries for
	// followers slightly behind (defaults 10,000 and 2,000; negative:
	// never).
	SnapshotEntries, SnapshotKeep int
}

// Snapshotter is a StateMachine that can write its state as of the last
// entry it applied, for a snapshot (Restore reads it back).
type Snapshotter interface {
	SnapshotData() ([]byte, error)
}

// Compactor is a Storage that records a snapshot at index i (with the
// configuration and state machine data as of i) and discards its entries
// up to i-keep.
type Compactor interface {
	CompactKeep(i uint64, cs *raftpb.ConfState, data []byte, keep uint64) error
}

// ErrStopped is returned for a group that is gone or stopped by an error.
var ErrStopped = errors.New("multiraft: group stopped")

// ErrOutcomeUnknown is returned for a proposal whose group changed leader
// before it was applied here: it may still be applied, or not. Callers
// retry with requests that are idempotent.
var ErrOutcomeUnknown = errors.New("multiraft: leader changed; the proposal may or may not be applied")

// tagSize is the size of the tag the driver puts before each proposal's
// data, to find its proposer's waiter when it is applied: the proposing
// Node's random nonce (unique across nodes and restarts, with
// overwhelming probability) and a counter.
const tagSize = 16

// Node is this node's side of its raft groups.
type Node struct {
	cfg Config

	mu      sync.Mutex
	cond    *sync.Cond
	groups  map[uint64]*group
	queue   []*group // groups with pending work, each at most once
	closed  bool
	nonce   uint64
	nextTag uint64
	wg      sync.WaitGroup
	writes  sync.WaitGroup    // goroutines delivering asynchronous writes' answers
	now     uint64            // ticks since start
	heard   map[uint64]uint64 // peer → the tick it was last heard from
	snaps   SnapshotSender    // Config.Snapshots, or SetSnapshotSender's
	hb      heartbeats        // coalesced heartbeats waiting (coalesce.go)
}

type group struct {
	id       uint64
	log      raft.Storage
	storage  Storage      // a synchronous group's; nil for an asynchronous one
	async    AsyncStorage // an asynchronous group's; nil for a synchronous one
	untagged bool         // proposals are stored as given (ProposeUntagged)
	sm       StateMachine

	// Owned by the group's worker: the last index applied, and the index
	// of the last snapshot taken (or restored, or started from).
	applied, snapIndex uint64

	// Guarded by Node.mu: work waiting for the group's worker.
	inbox      []*raftpb.Message
	ticks      int
	props      []*proposal
	reports    []func(*raft.RawNode)
	queued     bool
	stopped    error
	quiesced   bool                       // not ticked until something happens
	voters     []uint64                   // the group's voters when its leader (this node) quiesced it
	writeErr   error                      // an asynchronous write failed: the group stops
	appendTail chan struct{}              // closed once the last asynchronous write's answers are delivered
	leader     uint64                     // the leader as the worker last saw it
	busy       bool                       // something other than ticks and heartbeats since the last process
	seen       atomic.Pointer[leaderTerm] // the leader and term after the last process
	view       atomic.Pointer[View]       // the configuration after the last process

	// Owned by the worker processing the group (one at a time).
	rn      *raft.RawNode
	cs      *raftpb.ConfState // the configuration as of the last applied entry
	waiting map[tag]*proposal // proposals this node made and raft accepted
	lead    uint64
	idle    int  // ticks without work, as leader
	confNew bool // the configuration may have changed since the view was made
}

type tag [tagSize]byte

type proposal struct {
	tag  tag
	data []byte
	cc   *raftpb.ConfChangeV2 // a configuration change (its context holds the tag), or nil
	raw  bool                 // untagged: done gets raft's answer to the proposal, not its outcome
	// dropped, for an asynchronous untagged proposal (no done), is called
	// if raft refuses it.
	dropped func(error)
	done    chan error // buffered: the applied result
}

// New returns a Node and starts its workers.
func New(cfg Config) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ElectionTicks <= 0 {
		cfg.ElectionTicks = 10
	}
	if cfg.HeartbeatTicks <= 0 {
		cfg.HeartbeatTicks = 1
	}
	if cfg.MaxSizePerMsg == 0 {
		cfg.MaxSizePerMsg = 1 << 20
	}
	if cfg.MaxInflightMsgs <= 0 {
		cfg.MaxInflightMsgs = 64
	}
	if cfg.QuiesceTicks == 0 {
		cfg.QuiesceTicks = 3
	}
	n := &Node{cfg: cfg, groups: map[uint64]*group{}, nonce: rand.Uint64(), heard: map[uint64]uint64{}, snaps: cfg.Snapshots}
	n.cond = sync.NewCond(&n.mu)
	for range cfg.Workers {
		n.wg.Add(1)
		go n.work()
	}
	return n
}

// AddGroup starts group id over its storage and state machine. applied is
// the last index the state machine holds (raft hands back every committed
// entry after it). A new group with peers is bootstrapped with them as
// its first configuration; without peers it waits to hear from its group.
func (n *Node) AddGroup(id uint64, st Storage, sm StateMachine, applied uint64, peers []raft.Peer) error {
	return n.addGroup(id, GroupConfig{Storage: st, StateMachine: sm, Applied: applied, Peers: peers})
}

func (n *Node) addGroup(id uint64, gc GroupConfig) error {
	var st raft.Storage = gc.Storage
	if gc.Async != nil {
		st = gc.Async
	}
	sm, applied, peers := gc.StateMachine, gc.Applied, gc.Peers
	rc := &raft.Config{
		ID: n.cfg.ID, ElectionTick: n.cfg.ElectionTicks, HeartbeatTick: n.cfg.HeartbeatTicks, Storage: st,
		Applied: applied, MaxSizePerMsg: n.cfg.MaxSizePerMsg, MaxInflightMsgs: n.cfg.MaxInflightMsgs,
		MaxCommittedSizePerReady: 64 << 20, MaxUncommittedEntriesSize: 256 << 20,
		PreVote: true, CheckQuorum: true, Logger: raftLogger{n.cfg.Logger.With("group", id)},
		AsyncStorageWrites: gc.Async != nil,
		// An untagged group's leader matches its proposals to its entries
		// by order within its term: only its own may be there.
		DisableProposalForwarding: gc.Untagged,
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return fmt.Errorf("multiraft: group %d: %w", id, err)
	}
	if last, err := st.LastIndex(); err != nil {
		return err
	} else if last == 0 && len(peers) > 0 {
		// Bootstrap writes one configuration entry per peer, in the order
		// given, at term 1: every member must write the same entries
		// (raft's log matching), so the order is the ids'.
		peers = slices.SortedFunc(slices.Values(peers), func(a, b raft.Peer) int { return cmp.Compare(a.ID, b.ID) })
		if err := rn.Bootstrap(peers); err != nil {
			return fmt.Errorf("multiraft: group %d: bootstrap: %w", id, err)
		}
	}
	_, cs, err := st.InitialState()
	if err != nil {
		return fmt.Errorf("multiraft: group %d: %w", id, err)
	}
	g := &group{id: id, log: st, storage: gc.Storage, async: gc.Async, untagged: gc.Untagged, sm: sm, rn: rn, cs: cs, waiting: map[tag]*proposal{},
		applied: applied, snapIndex: applied, confNew: true}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.groups[id]; ok {
		return fmt.Errorf("multiraft: group %d exists", id)
	}
	n.groups[id] = g
	n.enqueueLocked(g) // a bootstrapped group has a Ready
	return nil
}

// Receive steps envelopes from a peer into their groups (the transport's
// handler; an empty frame is the peer's keepalive). Messages for unknown
// groups are dropped. A group wakes from quiescence on any message but
// its leader's quiescing heartbeat (and the answers to it).
func (n *Node) Receive(from uint64, envs []peer.Envelope) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.now-n.heard[from] > uint64(n.cfg.ElectionTicks) {
		// A peer back after a silence (restarted, or reconnected) may
		// have missed the commit of groups this node leads and quiesced:
		// a learner of one would never ask (it does not campaign). Wake
		// them; their heartbeats tell it.
		for _, g := range n.groups {
			if g.quiesced && g.leader == n.cfg.ID {
				g.quiesced = false
				n.enqueueLocked(g)
			}
		}
	}
	n.heard[from] = n.now
	for _, e := range envs {
		if e.Group == CoalescedGroup {
			n.expandLocked(from, e.Msg)
			continue
		}
		g := n.groups[e.Group]
		// A message names its sender, but for a leadership transfer
		// forwarded by a follower, which names the transferee.
		sender := e.Msg.GetFrom() == from || e.Msg.GetType() == raftpb.MsgTransferLeader
		if g == nil || g.stopped != nil || e.Msg.GetTo() != n.cfg.ID || !sender {
			continue
		}
		if g.async != nil && e.Msg.GetType() == raftpb.MsgSnap {
			// An asynchronous group's snapshot comes with its data, by
			// ReceiveSnapshot; a bare one could not be installed.
			n.cfg.Logger.Warn("raft snapshot message without its data dropped", "group", g.id, "from", from)
			continue
		}
		switch {
		case isQuiesce(e.Msg):
			g.quiesced = true
		case e.Msg.GetType() == raftpb.MsgHeartbeatResp && len(e.Msg.GetContext()) > 0:
			// The follower's answer echoes the context; the leader's raft
			// would take it for a read-index confirmation it never asked
			// for (and fail on one it does not know). Spool does not use
			// read indexes.
			e.Msg.Context = nil
		case e.Msg.GetType() == raftpb.MsgHeartbeatResp || e.Msg.GetType() == raftpb.MsgHeartbeat:
		default:
			g.quiesced = false
			g.busy = true
		}
		g.inbox = append(g.inbox, e.Msg)
		n.enqueueLocked(g)
	}
}

// quiesceContext marks the heartbeat with which a leader quiesces its
// group; raft answers a heartbeat's context back and otherwise ignores
// one it did not ask for.
var quiesceContext = []byte("spool.quiesce")

func isQuiesce(m *raftpb.Message) bool {
	return m.GetType() == raftpb.MsgHeartbeat && string(m.GetContext()) == string(quiesceContext)
}

// Tick advances the logical clock of every group that is not quiesced by
// one tick. A quiesced group whose leader has not been heard from (not
// even its keepalive) for an election timeout wakes up, so that it elects
// another; so does a quiesced group this node leads when it has not heard
// from a quorum of its voters for an election timeout, so that its leader
// steps down (check-quorum) rather than go on saying it leads.
func (n *Node) Tick() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.now++
	for _, g := range n.groups {
		if g.stopped != nil {
			continue
		}
		if g.quiesced && g.leader != n.cfg.ID && !n.heardLocked(g.leader) {
			g.quiesced = false
		}
		if g.quiesced && g.leader == n.cfg.ID {
			heard := 0
			for _, v := range g.voters {
				if v == n.cfg.ID || n.heardLocked(v) {
					heard++
				}
			}
			if heard <= len(g.voters)/2 {
				g.quiesced = false
			}
		}
		if !g.quiesced {
			g.ticks++
			n.enqueueLocked(g)
		}
	}
}

// heardLocked reports whether node id was heard from within an election
// timeout.
func (n *Node) heardLocked(id uint64) bool {
	return n.now-n.heard[id] <= uint64(n.cfg.ElectionTicks)
}

// Propose proposes data to group id and waits until it is applied on
// this node (nil, or the state machine's outcome), raft drops it (raft.ErrProposalDropped: not the
// leader, a transfer in progress, too much uncommitted), the group stops,
// or ctx ends (its outcome is then unknown: it may still be applied).
func (n *Node) Propose(ctx context.Context, id uint64, data []byte) error {
	return n.propose(ctx, id, data, nil)
}

// ProposeConfChange proposes a change of group id's configuration (one at
// a time: raft refuses another while one is pending) and waits as Propose
// does, until this node applied it.
func (n *Node) ProposeConfChange(ctx context.Context, id uint64, cc *raftpb.ConfChangeV2) error {
	return n.propose(ctx, id, nil, cc)
}

func (n *Node) propose(ctx context.Context, id uint64, data []byte, cc *raftpb.ConfChangeV2) error {
	n.mu.Lock()
	g := n.groups[id]
	if g == nil || g.stopped != nil || n.closed {
		n.mu.Unlock()
		return ErrStopped
	}
	n.nextTag++
	p := &proposal{done: make(chan error, 1)}
	binary.BigEndian.PutUint64(p.tag[:], n.nonce)
	binary.BigEndian.PutUint64(p.tag[8:], n.nextTag)
	if cc != nil {
		p.cc = proto.Clone(cc).(*raftpb.ConfChangeV2)
		p.cc.Context = p.tag[:]
	} else {
		p.data = append(append(make([]byte, 0, tagSize+len(data)), p.tag[:]...), data...)
	}
	g.props = append(g.props, p)
	g.quiesced, g.busy = false, true
	n.enqueueLocked(g)
	n.mu.Unlock()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Report runs f on the group's raft node on its worker (snapshot and
// unreachable reports, leadership transfers, campaigns).
func (n *Node) Report(id uint64, f func(*raft.RawNode)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if g := n.groups[id]; g != nil && g.stopped == nil {
		g.reports = append(g.reports, f)
		g.quiesced, g.busy = false, true
		n.enqueueLocked(g)
	}
}

type leaderTerm struct{ lead, term uint64 }

// Leader returns group id's leader (0: none known) and term as of its
// last processing, without waiting for its worker.
func (n *Node) Leader(id uint64) (lead, term uint64) {
	n.mu.Lock()
	g := n.groups[id]
	n.mu.Unlock()
	if g == nil {
		return 0, 0
	}
	if lt := g.seen.Load(); lt != nil {
		return lt.lead, lt.term
	}
	return 0, 0
}

// Err returns why group id stopped on this node (a storage or
// state-machine error), or nil: running, removed, or unknown.
func (n *Node) Err(id uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if g := n.groups[id]; g != nil && g.stopped != ErrStopped {
		return g.stopped
	}
	return nil
}

// RemoveGroup stops group id on this node and forgets it (its storage is
// the caller's to close). Its waiting proposals fail with ErrStopped.
func (n *Node) RemoveGroup(id uint64) {
	n.mu.Lock()
	g := n.groups[id]
	if g == nil {
		n.mu.Unlock()
		return
	}
	delete(n.groups, id)
	if g.stopped == nil {
		g.stopped = ErrStopped
	}
	props := g.props
	g.props = nil
	n.mu.Unlock()
	for _, p := range props {
		p.fail(ErrStopped)
	}
	// Wait until no worker has it (queued covers both waiting in the
	// queue and being processed): then nothing touches its storage.
	for {
		n.mu.Lock()
		busy := g.queued && !n.closed
		n.mu.Unlock()
		if !busy {
			return
		}
		if n.cfg.Workers == 0 {
			n.Process()
		}
		time.Sleep(time.Millisecond)
	}
}

// TransferLeadership asks group id's leader (this node) to hand its
// leadership to node to; it does nothing on a follower. Watch Status for
// the outcome.
func (n *Node) TransferLeadership(id, to uint64) {
	n.Report(id, func(rn *raft.RawNode) { rn.TransferLeader(to) })
}

// Status returns a group's raft status; false for a group that is
// unknown or stopped.
func (n *Node) Status(id uint64) (raft.Status, bool) {
	var st raft.Status
	done := make(chan struct{})
	n.mu.Lock()
	g := n.groups[id]
	if g == nil || g.stopped != nil || n.closed {
		n.mu.Unlock()
		return st, false
	}
	g.reports = append(g.reports, func(rn *raft.RawNode) { st = rn.Status(); close(done) })
	n.enqueueLocked(g)
	n.mu.Unlock()
	if n.cfg.Workers == 0 {
		n.Process()
	}
	<-done
	return st, true
}

// Close stops the workers and fails waiting proposals.
func (n *Node) Close() {
	n.mu.Lock()
	n.closed = true
	for _, g := range n.groups {
		for _, p := range g.props {
			p.fail(ErrStopped)
		}
		g.props = nil
	}
	n.cond.Broadcast()
	n.mu.Unlock()
	n.wg.Wait()
	n.writes.Wait()
	for _, g := range n.groups {
		for t, p := range g.waiting {
			p.fail(ErrStopped)
			delete(g.waiting, t)
		}
	}
}

func (n *Node) enqueueLocked(g *group) {
	if !g.queued {
		g.queued = true
		n.queue = append(n.queue, g)
		n.cond.Signal()
	}
}

func (n *Node) work() {
	defer n.wg.Done()
	for {
		n.mu.Lock()
		if len(n.queue) == 0 && !n.closed {
			// Out of work: the heartbeats of what was done go out now.
			n.mu.Unlock()
			n.flushHeartbeats()
			n.mu.Lock()
		}
		for len(n.queue) == 0 && !n.closed {
			n.cond.Wait()
		}
		if n.closed {
			n.mu.Unlock()
			return
		}
		g := n.queue[0]
		n.queue = n.queue[1:]
		n.mu.Unlock()
		n.process(g)
	}
}

// Process runs every pending piece of work on the caller's goroutine
// until none is left (Config.Workers = 0).
func (n *Node) Process() {
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.mu.Unlock()
			n.flushHeartbeats()
			return
		}
		g := n.queue[0]
		n.queue = n.queue[1:]
		n.mu.Unlock()
		n.process(g)
	}
}

// process takes the group's pending work and runs its Ready cycles. The
// group stays marked queued while it runs, so that work arriving meanwhile
// does not hand it to a second worker; it is queued again at the end if
// such work arrived.
func (n *Node) process(g *group) {
	n.mu.Lock()
	inbox, ticks, props, reports, busy := g.inbox, g.ticks, g.props, g.reports, g.busy
	g.inbox, g.ticks, g.props, g.reports, g.busy = nil, 0, nil, nil, false
	stopped, writeErr := g.stopped, g.writeErr
	n.mu.Unlock()
	if stopped == nil && writeErr != nil {
		n.stop(g, fmt.Errorf("persist: %w", writeErr))
		stopped = writeErr
	}
	defer func() {
		n.mu.Lock()
		g.queued = false
		if len(g.inbox) > 0 || g.ticks > 0 || len(g.props) > 0 || len(g.reports) > 0 {
			n.enqueueLocked(g)
		}
		n.mu.Unlock()
	}()
	for _, f := range reports {
		f(g.rn)
	}
	if stopped != nil {
		for _, p := range props {
			p.fail(ErrStopped)
		}
		for _, m := range inbox {
			if m.GetType() == raftpb.MsgSnap && g.async != nil {
				n.releaseSnapshots(g, []*raftpb.Snapshot{m.GetSnapshot()})
			}
		}
		return
	}
	var snaps []*raftpb.Snapshot // received snapshots stepped into raft
	for _, m := range inbox {
		if m.GetType() == raftpb.MsgSnap && g.async != nil {
			snaps = append(snaps, m.GetSnapshot())
		}
		if err := g.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
			n.cfg.Logger.Debug("raft message refused", "group", g.id, "type", m.GetType().String(), "from", m.GetFrom(), "err", err)
		}
	}
	if len(snaps) > 0 {
		// After the Ready cycles below, a snapshot raft took is installed;
		// the others' data is of no use.
		defer n.releaseSnapshots(g, snaps)
	}
	for range ticks {
		g.rn.Tick()
	}
	for _, p := range props {
		propose := func() error { return g.rn.Propose(p.data) }
		if p.cc != nil {
			propose = func() error { return g.rn.ProposeConfChange(p.cc) }
		}
		if p.raw {
			err := propose()
			switch {
			case p.done != nil:
				p.done <- err
			case err != nil && p.dropped != nil:
				p.dropped(err)
			}
			continue
		}
		if err := propose(); err != nil {
			p.done <- err
			continue
		}
		g.waiting[p.tag] = p
	}
	for g.rn.HasReady() {
		ready := n.ready
		if g.async != nil {
			ready = n.readyAsync
		}
		if err := ready(g); err != nil {
			n.stop(g, err)
			return
		}
	}
	n.mu.Lock()
	g.leader = g.lead
	n.mu.Unlock()
	bs := g.rn.BasicStatus()
	g.seen.Store(&leaderTerm{lead: bs.Lead, term: bs.HardState.GetTerm()})
	n.updateView(g, bs.Lead == n.cfg.ID)
	if g.lead != n.cfg.ID || n.cfg.QuiesceTicks < 0 {
		g.idle = 0
		return
	}
	if busy {
		g.idle = 0
	}
	g.idle += ticks
	if g.idle >= n.cfg.QuiesceTicks {
		n.maybeQuiesce(g)
	}
}

// ready runs one Ready cycle.
func (n *Node) ready(g *group) error {
	rd := g.rn.Ready()
	if err := g.storage.Save(rd.HardState, rd.Entries, rd.Snapshot, rd.MustSync); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := g.sm.Restore(rd.Snapshot); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		g.applied = rd.Snapshot.GetMetadata().GetIndex()
		g.snapIndex = g.applied
	}
	n.send(g, rd.Messages)
	if err := n.apply(g, rd.CommittedEntries); err != nil {
		return err
	}
	if k := len(rd.CommittedEntries); k > 0 {
		g.applied = rd.CommittedEntries[k-1].GetIndex()
	}
	n.noteLeader(g, rd.SoftState)
	n.maybeSnapshot(g)
	g.rn.Advance(rd)
	return nil
}

// noteLeader follows the group's leader. Proposals this node made as
// leader may still commit under the next leader, or be overwritten: their
// outcome is unknown, and callers retry with idempotent requests.
func (n *Node) noteLeader(g *group, ss *raft.SoftState) {
	if ss == nil || ss.Lead == g.lead {
		return
	}
	g.lead = ss.Lead
	if g.lead != n.cfg.ID {
		for t, p := range g.waiting {
			p.done <- ErrOutcomeUnknown
			delete(g.waiting, t)
		}
	}
}

// send hands a Ready's messages to the transport, one call per peer.
func (n *Node) send(g *group, msgs []*raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	byPeer := map[uint64][]peer.Envelope{}
	snaps := n.snapshotSender()
	for _, m := range msgs {
		if coalescible(m) {
			n.hb.queue(g.id, m)
			continue
		}
		if m.GetType() == raftpb.MsgSnap {
			if g.async != nil && snaps != nil {
				snaps.SendSnapshot(g.id, m)
				continue
			}
			n.freshenSnapshot(g, m)
		}
		byPeer[m.GetTo()] = append(byPeer[m.GetTo()], peer.Envelope{Group: g.id, Msg: m})
	}
	for to, envs := range byPeer {
		if n.cfg.Sender.Send(to, envs...) {
			continue
		}
		g.rn.ReportUnreachable(to)
		for _, e := range envs {
			if e.Msg.GetType() == raftpb.MsgSnap {
				g.rn.ReportSnapshot(to, raft.SnapshotFailure)
			}
		}
	}
}

// apply applies committed entries: configuration changes to raft, normal
// entries (their tags stripped) to the state machine, then answers this
// node's proposals among them.
func (n *Node) apply(g *group, ents []*raftpb.Entry) error {
	var batch []Entry
	var tags []tag
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		outcomes, err := g.sm.Apply(batch)
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		for i, t := range tags {
			if p := g.waiting[t]; p != nil {
				var outcome error
				if i < len(outcomes) {
					outcome = outcomes[i]
				}
				p.done <- outcome
				delete(g.waiting, t)
			}
		}
		batch, tags = batch[:0], tags[:0]
		return nil
	}
	for _, e := range ents {
		switch e.GetType() {
		case raftpb.EntryNormal:
			d := e.GetData()
			if len(d) == 0 {
				// A new leader's empty entry: if it is this node's, of
				// the current term, everything before is applied.
				if lr, ok := g.sm.(LeaderReadier); ok && g.lead == n.cfg.ID && e.GetTerm() == g.rn.BasicStatus().HardState.GetTerm() {
					if err := flush(); err != nil {
						return err
					}
					lr.LeaderReady(e.GetTerm())
				}
				continue
			}
			if g.untagged {
				// No tag: the state machine tells its proposers itself.
				batch = append(batch, Entry{Index: e.GetIndex(), Term: e.GetTerm(), Data: d})
				continue
			}
			if len(d) < tagSize {
				return fmt.Errorf("apply: entry %d of %d bytes has no proposal tag", e.GetIndex(), len(d))
			}
			batch = append(batch, Entry{Index: e.GetIndex(), Term: e.GetTerm(), Data: d[tagSize:]})
			tags = append(tags, tag(d[:tagSize]))
		case raftpb.EntryConfChange:
			if err := flush(); err != nil {
				return err
			}
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return fmt.Errorf("apply: configuration change %d: %w", e.GetIndex(), err)
			}
			g.cs = g.rn.ApplyConfChange(&cc)
			g.confNew = true
		case raftpb.EntryConfChangeV2:
			if err := flush(); err != nil {
				return err
			}
			var cc raftpb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return fmt.Errorf("apply: configuration change %d: %w", e.GetIndex(), err)
			}
			g.cs = g.rn.ApplyConfChange(&cc)
			g.confNew = true
			if len(cc.GetContext()) == tagSize {
				if p := g.waiting[tag(cc.GetContext())]; p != nil {
					p.done <- nil
					delete(g.waiting, p.tag)
				}
			}
		}
	}
	return flush()
}

// stop stops a group for good after a storage or state-machine error: it
// takes no part in the group any more (sends nothing, answers nothing,
// votes no more) and names no leader.
func (n *Node) stop(g *group, err error) {
	n.cfg.Logger.Error("raft group stopped", "group", g.id, "err", err)
	n.mu.Lock()
	g.stopped = err
	props := g.props
	g.props = nil
	n.mu.Unlock()
	g.seen.Store(nil)
	if s, ok := g.sm.(Stopper); ok {
		defer s.Stopped(err)
	}
	for _, p := range props {
		p.fail(ErrStopped)
	}
	for t, p := range g.waiting {
		p.fail(ErrStopped)
		delete(g.waiting, t)
	}
}

// fail answers a proposal that will not be proposed or whose group
// stopped.
func (p *proposal) fail(err error) {
	switch {
	case p.done != nil:
		p.done <- err
	case p.dropped != nil:
		p.dropped(err)
	}
}

package multiraft

import (
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/spoolmq/spool/internal/peer"
)

// Groups whose logs are partition logs run with raft's AsyncStorageWrites:
// a Ready's entries go to the log's group commit and the worker moves on;
// the answers raft attached to them (the append's acknowledgement to this
// node, and what peers may only hear once the entries are durable, such as
// append and vote responses) are delivered when the write is durable, in
// the order of the writes. Committed entries come in raft's apply message
// and are applied on the worker. So a worker never waits for an fsync, the
// entries of many proposals share one, and only durable entries are ever
// applied (raft hands out an entry for applying only once this node has
// acknowledged it durable, or a quorum has: the brief's §0.2–0.3).

// AsyncStorage is an asynchronous group's log.
type AsyncStorage interface {
	raft.Storage
	// AppendAsync starts persisting a MsgStorageAppend (entries,
	// overwriting a conflicting suffix, and the hard state) and returns at
	// once. Writes complete in the order they were started.
	AppendAsync(m *raftpb.Message) (AsyncWrite, error)
}

// AsyncWrite is one MsgStorageAppend being persisted.
type AsyncWrite interface {
	// Done is closed when Wait would not block.
	Done() <-chan struct{}
	// Wait returns once the write is durable, or failed (the group stops).
	Wait() error
	// Responses are delivered once the write is durable.
	Responses() []*raftpb.Message
}

// GroupConfig configures a group: exactly one of Storage (a synchronous
// group) and Async.
type GroupConfig struct {
	Storage      Storage
	Async        AsyncStorage
	StateMachine StateMachine
	// Applied is the last index the state machine holds; raft hands back
	// every committed entry after it.
	Applied uint64
	// Peers bootstrap a new group (an empty log); none: it waits to hear
	// from its group.
	Peers []raft.Peer
	// Untagged: proposals are stored exactly as given (ProposeUntagged),
	// with no tag to find their proposer; the state machine tells its
	// waiters itself (a partition's records carry their own offsets).
	Untagged bool
}

// AddGroupWith starts group id as gc says.
func (n *Node) AddGroupWith(id uint64, gc GroupConfig) error {
	if (gc.Storage == nil) == (gc.Async == nil) {
		return fmt.Errorf("multiraft: group %d: give exactly one of a synchronous and an asynchronous storage", id)
	}
	return n.addGroup(id, gc)
}

// ProposeUntagged proposes data, stored as given, to an untagged group
// and returns raft's answer: nil once the leader (this node) appended it
// to its log, raft.ErrProposalDropped otherwise (not the leader, a
// transfer in progress, too much uncommitted). Whether it commits is for
// the state machine to see.
func (n *Node) ProposeUntagged(id uint64, data []byte) error {
	n.mu.Lock()
	g := n.groups[id]
	if g == nil || g.stopped != nil || n.closed {
		n.mu.Unlock()
		return ErrStopped
	}
	if !g.untagged {
		n.mu.Unlock()
		return fmt.Errorf("multiraft: group %d takes tagged proposals", id)
	}
	p := &proposal{data: data, raw: true, done: make(chan error, 1)}
	g.props = append(g.props, p)
	g.quiesced, g.busy = false, true
	n.enqueueLocked(g)
	n.mu.Unlock()
	if n.cfg.Workers == 0 {
		n.Process()
	}
	return <-p.done
}

// ProposeUntaggedAsync is ProposeUntagged without the wait: the proposal
// is queued for the group's worker, which proposes queued proposals in
// the order they were queued, many in one Ready; dropped is called (on
// the worker) if raft refuses it.
func (n *Node) ProposeUntaggedAsync(id uint64, data []byte, dropped func(error)) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	g := n.groups[id]
	if g == nil || g.stopped != nil || n.closed {
		return ErrStopped
	}
	if !g.untagged {
		return fmt.Errorf("multiraft: group %d takes tagged proposals", id)
	}
	g.props = append(g.props, &proposal{data: data, raw: true, dropped: dropped})
	g.quiesced, g.busy = false, true
	n.enqueueLocked(g)
	return nil
}

// readyAsync runs one Ready of an asynchronous group.
func (n *Node) readyAsync(g *group) error {
	rd := g.rn.Ready()
	var out []*raftpb.Message
	for _, m := range rd.Messages {
		switch m.GetTo() {
		case raft.LocalAppendThread:
			w, err := g.async.AppendAsync(m)
			if err != nil {
				return fmt.Errorf("persist: %w", err)
			}
			if snap := m.GetSnapshot(); snap != nil && !raft.IsEmptySnap(snap) {
				// The storage installed it with the append: the state
				// machine holds what it holds.
				g.cs = snap.GetMetadata().GetConfState()
				g.confNew = true
				if err := g.sm.Restore(snap); err != nil {
					return fmt.Errorf("restore snapshot: %w", err)
				}
			}
			n.deliverWhenDurable(g, w)
		case raft.LocalApplyThread:
			if err := n.apply(g, m.GetEntries()); err != nil {
				return err
			}
			if at, ok := g.async.(AppliedTracker); ok && len(m.GetEntries()) > 0 {
				if err := at.SetApplied(m.GetEntries()[len(m.GetEntries())-1].GetIndex(), g.cs); err != nil {
					return fmt.Errorf("record the applied index: %w", err)
				}
			}
			for _, r := range m.GetResponses() {
				if err := g.rn.Step(r); err != nil {
					return fmt.Errorf("step the apply's answer: %w", err)
				}
			}
		default:
			out = append(out, m)
		}
	}
	n.send(g, out)
	n.noteLeader(g, rd.SoftState)
	return nil
}

// deliverWhenDurable hands w's responses to the group (those for this
// node) and the transport (those for peers) once w is durable and every
// earlier write of the group has been delivered; after a failed write,
// none of a later one's.
func (n *Node) deliverWhenDurable(g *group, w AsyncWrite) {
	prev := g.appendTail
	done := make(chan struct{})
	g.appendTail = done
	n.writes.Add(1)
	go func() {
		defer n.writes.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		<-w.Done()
		err := w.Wait()
		byPeer := map[uint64][]peer.Envelope{}
		n.mu.Lock()
		switch {
		case err != nil:
			if g.writeErr == nil {
				g.writeErr = err
			}
		case g.writeErr != nil:
			// An earlier write failed: this one's answers may vouch for
			// its entries (raft acknowledges entries it already holds,
			// durable or not, with the next append, which may carry none
			// of its own and complete at once). None goes out: a peer
			// told of entries this node never made durable would count
			// them, and after a restart this log would lack what it
			// acknowledged.
		default:
			for _, r := range w.Responses() {
				if r.GetTo() == n.cfg.ID {
					g.inbox = append(g.inbox, r)
				} else {
					byPeer[r.GetTo()] = append(byPeer[r.GetTo()], peer.Envelope{Group: g.id, Msg: r})
				}
			}
		}
		n.enqueueLocked(g)
		n.mu.Unlock()
		for to, envs := range byPeer {
			n.cfg.Sender.Send(to, envs...)
		}
	}()
}

// Snapshots of asynchronous groups. A partition group's snapshot is its
// log's segments, far too large for a raft message: when raft sends one,
// the driver hands the MsgSnap (metadata only) to the SnapshotSender,
// which moves the data by other means and reports the outcome with
// ReportSnapshot. The receiving node stages the data and only then hands
// the MsgSnap, naming the staged data, to ReceiveSnapshot: raft either
// takes it — the next MsgStorageAppend carries it and the storage
// installs it, then the state machine's Restore runs — or ignores it (it
// is stale, or the log already holds its last entry), and the storage's
// ReleaseSnapshot drops the staged data. A MsgSnap arriving as a plain
// message for such a group is dropped.

// SnapshotSender sends an asynchronous group's snapshot to m.To. It is
// called on the group's worker and must not block; the outcome must be
// reported with ReportSnapshot, or raft waits for that follower forever.
type SnapshotSender interface {
	SendSnapshot(group uint64, m *raftpb.Message)
}

// AppliedTracker is an AsyncStorage told, after each apply, the last
// index applied and the configuration then (not to be modified): what it
// may describe as its snapshot. An error stops the group.
type AppliedTracker interface {
	SetApplied(index uint64, cs *raftpb.ConfState) error
}

// SnapshotReleaser is an AsyncStorage that drops the data staged for a
// received snapshot once raft has had it (installed, or not taken).
type SnapshotReleaser interface {
	ReleaseSnapshot(snap *raftpb.Snapshot)
}

// SetSnapshotSender sets the sender of asynchronous groups' snapshots
// (Config.Snapshots) once the node runs.
func (n *Node) SetSnapshotSender(s SnapshotSender) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.snaps = s
}

// SnapshotSender returns the sender of asynchronous groups' snapshots (nil:
// none).
func (n *Node) SnapshotSender() SnapshotSender { return n.snapshotSender() }

func (n *Node) snapshotSender() SnapshotSender {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.snaps
}

// ReportSnapshot tells group id's raft how sending a snapshot to node to
// ended: a failure makes it probe that follower again (and send another
// snapshot if it still needs one) after a heartbeat.
func (n *Node) ReportSnapshot(id, to uint64, status raft.SnapshotStatus) {
	n.Report(id, func(rn *raft.RawNode) { rn.ReportSnapshot(to, status) })
}

// ReceiveSnapshot steps a MsgSnap from peer from, whose data the storage
// has staged, into group id; false if the group is not running here (the
// caller drops the data).
func (n *Node) ReceiveSnapshot(from, id uint64, m *raftpb.Message) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	g := n.groups[id]
	if g == nil || g.stopped != nil || n.closed || g.async == nil || m.GetType() != raftpb.MsgSnap ||
		m.GetTo() != n.cfg.ID || m.GetFrom() != from {
		return false
	}
	n.heard[from] = n.now
	g.inbox = append(g.inbox, m)
	g.quiesced, g.busy = false, true
	n.enqueueLocked(g)
	return true
}

// releaseSnapshots drops the data of received snapshots after raft has had
// them (on the group's worker, after its Ready cycles).
func (n *Node) releaseSnapshots(g *group, snaps []*raftpb.Snapshot) {
	if r, ok := g.async.(SnapshotReleaser); ok {
		for _, s := range snaps {
			r.ReleaseSnapshot(s)
		}
	}
}

package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/partlog"
	"github.com/spoolmq/spool/internal/peer"
	"github.com/spoolmq/spool/internal/seglog"
)

// Snapshot transfers of partition groups. When a partition's leader must
// send a follower entries retention deleted, its raft emits a MsgSnap
// (index, term, configuration: partlog's Snapshot); the raft driver hands
// it here instead of to the transport. A sender goroutine streams the
// leader's segments up to that index to the follower over the peer
// connection, in checksummed frames of snapChunk bytes, each written
// before the next is read (peer.SnapshotStream): a begin frame with the
// manifest, data frames, and an end frame carrying the MsgSnap, whose data
// now names the transfer. It reports SnapshotFinish once the follower
// acknowledged the transfer (it checked the snapshot and handed it to its
// raft: reporting earlier would have the leader probe a follower still
// behind, and send it another), or SnapshotFailure on any error or after
// snapIdle without an answer (raft probes the follower again after a
// heartbeat, and asks for another snapshot if it still needs one).
//
// The follower checks every frame on the connection's reader — the group
// must run here, the frames must follow in order on one connection — and
// passes the bytes to a goroutine per transfer, which writes them into a
// staging directory of the partition log (seglog's StageSnapshot), and at
// the end syncs and checks them as recovery checks a log, and only then
// steps the MsgSnap into the group, and acknowledges it. A transfer it
// cannot take is answered with an abort frame, which stops the sender at
// once. A transfer cut
// (connection closed, leader stopped, no frame for snapIdle) leaves its
// staging directory, removed at once or at the next start.
//
// Bounds: one transfer per group at a time in each direction, snapOutPerPeer
// leaving for and snapInPerPeer arriving from each peer; a transfer holds
// one chunk on the sender and at most snapQueue chunks on the receiver; a
// follower whose transfer failed gets no other for snapRetry.
const (
	snapOutPerPeer = 2
	snapInPerPeer  = 2
	snapQueue      = 4
	snapIdle       = 30 * time.Second
	snapRetry      = time.Second
)

// snapChunk is the bytes of segments per data frame (a variable for
// tests, which send small snapshots in many frames).
var snapChunk = 256 << 10

// testHookSnapChunk, if set, runs after each data frame a sender wrote.
var testHookSnapChunk atomic.Pointer[func(n *Node, group, to, seq uint64)]

// snapshots runs a node's transfers: the raft driver's SnapshotSender and
// the transport's SnapshotHandler.
type snapshots struct {
	n      *Node
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	out    map[uint64]*outbound    // by group
	retry  map[[2]uint64]time.Time // (group, follower) → no transfer before
	in     map[uint64]*inbound     // by group
}

type outbound struct {
	to, id uint64
	cancel context.CancelCauseFunc
	acked  chan struct{} // closed by the follower's ack
}

type inbound struct {
	from, conn, group, id uint64
	next                  uint64 // the sequence number of the next frame
	ch                    chan inFrame
	ctx                   context.Context
	cancel                context.CancelCauseFunc
}

type inFrame struct {
	data []byte
	msg  *raftpb.Message // the end frame's
}

// startSnapshots makes this node send and receive partition snapshots (once).
func (n *Node) startSnapshots() {
	if n.rafts.SnapshotSender() != nil {
		return
	}
	s := &snapshots{n: n, out: map[uint64]*outbound{}, retry: map[[2]uint64]time.Time{}, in: map[uint64]*inbound{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	n.rafts.SetSnapshotSender(s)
	n.transport.SetSnapshotHandler(s)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		<-n.stop
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
	}()
}

// storageOf returns the raft storage of a partition group running here.
func (n *Node) storageOf(group uint64) *partlog.Storage {
	n.mu.Lock()
	defer n.mu.Unlock()
	if pi, ok := n.partitions[group]; ok {
		return pi.storage
	}
	return nil
}

// SendSnapshot starts sending a snapshot (multiraft.SnapshotSender; on the
// group's worker, so it does not wait).
func (s *snapshots) SendSnapshot(group uint64, m *raftpb.Message) {
	to := m.GetTo()
	ps := s.n.storageOf(group)
	key, now := [2]uint64{group, to}, time.Now()
	s.mu.Lock()
	if t, ok := s.retry[key]; ok && !now.Before(t) {
		delete(s.retry, key)
	}
	toPeer := 0
	for _, o := range s.out {
		if o.to == to {
			toPeer++
		}
	}
	busy := s.closed || ps == nil || s.out[group] != nil || toPeer >= snapOutPerPeer || now.Before(s.retry[key])
	if busy {
		s.mu.Unlock()
		s.n.rafts.ReportSnapshot(group, to, raft.SnapshotFailure)
		return
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	o := &outbound{to: to, id: rand.Uint64(), cancel: cancel, acked: make(chan struct{})}
	s.out[group] = o
	s.wg.Add(1)
	s.mu.Unlock()
	go s.send(ctx, group, ps, o, m)
}

// send streams a snapshot and reports how it ended.
func (s *snapshots) send(ctx context.Context, group uint64, ps *partlog.Storage, o *outbound, m *raftpb.Message) {
	defer s.wg.Done()
	t0 := time.Now()
	meta := m.GetSnapshot().GetMetadata()
	log := s.n.cfg.Logger.With("group", group, "to", o.to, "transfer", fmt.Sprintf("%016x", o.id), "index", meta.GetIndex())
	sent, err := s.stream(ctx, group, ps, o, m)
	s.mu.Lock()
	if s.out[group] == o {
		delete(s.out, group)
	}
	if err != nil {
		s.retry[[2]uint64{group, o.to}] = time.Now().Add(snapRetry)
	}
	closed := s.closed
	s.mu.Unlock()
	o.cancel(nil)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		if !closed {
			log.Warn("partition snapshot not sent", "bytes", sent, "err", err)
		}
		s.n.rafts.ReportSnapshot(group, o.to, raft.SnapshotFailure)
		return
	}
	log.Info("partition snapshot sent", "bytes", sent, "took", time.Since(t0).Round(time.Millisecond))
	s.n.rafts.ReportSnapshot(group, o.to, raft.SnapshotFinish)
}

// stream writes the begin frame, the segments' bytes and the end frame;
// it returns the bytes of segments sent.
func (s *snapshots) stream(ctx context.Context, group uint64, ps *partlog.Storage, o *outbound, m *raftpb.Message) (int64, error) {
	src, err := ps.OpenSnapshot(m.GetSnapshot().GetMetadata())
	if err != nil {
		return 0, err
	}
	defer src.Close()
	st, err := s.n.transport.SnapshotStream(o.to)
	if err != nil {
		return 0, err
	}
	mf := src.Manifest
	begin := &peer.SnapChunk{Kind: peer.SnapBegin, Group: group, Transfer: o.id,
		Manifest: peer.SnapManifest{Index: mf.Index, Term: mf.Term, Start: mf.Start}}
	for _, seg := range mf.Segments {
		begin.Manifest.Segments = append(begin.Manifest.Segments, peer.SnapSegment{Base: seg.Base, Size: seg.Size})
	}
	if err := st.Send(ctx, begin); err != nil {
		return 0, err
	}
	buf := make([]byte, snapChunk)
	seq, sent := uint64(1), int64(0)
	for {
		k, err := io.ReadFull(src, buf)
		if k > 0 {
			if err := st.Send(ctx, &peer.SnapChunk{Kind: peer.SnapData, Group: group, Transfer: o.id, Seq: seq, Data: buf[:k]}); err != nil {
				return sent, err
			}
			if h := testHookSnapChunk.Load(); h != nil {
				(*h)(s.n, group, o.to, seq)
			}
			seq++
			sent += int64(k)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return sent, err
		}
	}
	if sent != mf.Bytes() {
		return sent, fmt.Errorf("read %d bytes of a snapshot of %d", sent, mf.Bytes())
	}
	msg := proto.Clone(m).(*raftpb.Message)
	msg.Snapshot.Data = partlog.SnapshotData(o.id)
	if err := st.Send(ctx, &peer.SnapChunk{Kind: peer.SnapEnd, Group: group, Transfer: o.id, Seq: seq, Msg: msg}); err != nil {
		return sent, err
	}
	s.mu.Lock()
	acked := o.acked
	s.mu.Unlock()
	if acked == nil {
		return sent, nil
	}
	idle := time.NewTimer(snapIdle)
	defer idle.Stop()
	select {
	case <-acked:
		return sent, nil
	case <-ctx.Done():
		return sent, ctx.Err()
	case <-idle.C:
		return sent, fmt.Errorf("no answer from node %d for %v", o.to, snapIdle)
	}
}

// HandleSnapshot takes a snapshot frame (peer.SnapshotHandler; on the
// connection's reader).
func (s *snapshots) HandleSnapshot(from, conn uint64, c *peer.SnapChunk) {
	switch c.Kind {
	case peer.SnapAbort, peer.SnapAck:
		s.mu.Lock()
		defer s.mu.Unlock()
		o := s.out[c.Group]
		switch {
		case o == nil || o.id != c.Transfer || o.to != from:
		case c.Kind == peer.SnapAbort:
			o.cancel(fmt.Errorf("node %d refused it: %s", from, c.Reason))
		case o.acked != nil:
			close(o.acked)
			o.acked = nil
		}
	case peer.SnapBegin:
		s.begin(from, conn, c)
	default:
		s.frame(from, conn, c)
	}
}

// refuse answers a transfer that cannot be taken with an abort frame.
func (s *snapshots) refuse(from, conn uint64, c *peer.SnapChunk, reason string) {
	s.n.cfg.Logger.Warn("partition snapshot refused", "group", c.Group, "from", from, "transfer", fmt.Sprintf("%016x", c.Transfer), "reason", reason)
	s.n.transport.SendSnapshotNotice(from, conn, &peer.SnapChunk{Kind: peer.SnapAbort, Group: c.Group, Transfer: c.Transfer, Reason: reason})
}

// begin starts receiving a transfer.
func (s *snapshots) begin(from, conn uint64, c *peer.SnapChunk) {
	ps := s.n.storageOf(c.Group)
	if ps == nil {
		s.refuse(from, conn, c, "no such partition group on this node")
		return
	}
	mf := seglog.SnapshotManifest{Index: c.Manifest.Index, Term: c.Manifest.Term, Start: c.Manifest.Start}
	for _, seg := range c.Manifest.Segments {
		mf.Segments = append(mf.Segments, seglog.SnapshotSegment{Base: seg.Base, Size: seg.Size})
	}
	if err := mf.Check(); err != nil {
		s.refuse(from, conn, c, err.Error())
		return
	}
	if c.Seq != 0 {
		s.refuse(from, conn, c, fmt.Sprintf("begin frame numbered %d", c.Seq))
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if old := s.in[c.Group]; old != nil {
		// A newer transfer replaces it (a new leader, or a retry).
		old.cancel(fmt.Errorf("transfer %016x replaced it", c.Transfer))
		delete(s.in, c.Group)
	}
	fromPeer := 0
	for _, in := range s.in {
		if in.from == from {
			fromPeer++
		}
	}
	if fromPeer >= snapInPerPeer {
		s.mu.Unlock()
		s.refuse(from, conn, c, fmt.Sprintf("%d snapshots from this node are being received already", snapInPerPeer))
		return
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	in := &inbound{from: from, conn: conn, group: c.Group, id: c.Transfer, next: 1, ch: make(chan inFrame, snapQueue), ctx: ctx, cancel: cancel}
	s.in[c.Group] = in
	s.wg.Add(1)
	s.mu.Unlock()
	go s.receive(in, ps, mf)
}

// frame passes a data or end frame to its transfer's goroutine.
func (s *snapshots) frame(from, conn uint64, c *peer.SnapChunk) {
	s.mu.Lock()
	in := s.in[c.Group]
	if in == nil || in.id != c.Transfer || in.from != from || in.conn != conn {
		s.mu.Unlock()
		// Cut or refused already (and logged then): tell the sender again.
		s.n.transport.SendSnapshotNotice(from, conn, &peer.SnapChunk{Kind: peer.SnapAbort, Group: c.Group, Transfer: c.Transfer,
			Reason: "no such transfer in progress"})
		return
	}
	if c.Seq != in.next {
		delete(s.in, c.Group)
		s.mu.Unlock()
		in.cancel(fmt.Errorf("%v frame numbered %d, expected %d", c.Kind, c.Seq, in.next))
		return
	}
	in.next++
	s.mu.Unlock()
	f := inFrame{msg: c.Msg}
	if c.Kind == peer.SnapData {
		f.data = bytes.Clone(c.Data) // it aliases the connection's buffer
	}
	select {
	case in.ch <- f:
	case <-in.ctx.Done():
	}
}

// ConnClosed cuts the transfers that arrived on a connection that ended
// (peer.SnapshotHandler).
func (s *snapshots) ConnClosed(from, conn uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for g, in := range s.in {
		if in.from == from && in.conn == conn {
			in.cancel(errors.New("the connection closed"))
			delete(s.in, g)
		}
	}
}

// receive stages a transfer's bytes and hands its MsgSnap to the group.
func (s *snapshots) receive(in *inbound, ps *partlog.Storage, mf seglog.SnapshotManifest) {
	defer s.wg.Done()
	t0 := time.Now()
	log := s.n.cfg.Logger.With("group", in.group, "from", in.from, "transfer", fmt.Sprintf("%016x", in.id), "index", mf.Index)
	st, err := ps.StageSnapshot(in.id, mf)
	if err == nil {
		err = s.fill(in, st, mf)
	}
	s.mu.Lock()
	if s.in[in.group] == in {
		delete(s.in, in.group)
	}
	closed := s.closed
	s.mu.Unlock()
	in.cancel(nil)
	if err == nil {
		log.Info("partition snapshot received", "bytes", mf.Bytes(), "took", time.Since(t0).Round(time.Millisecond))
		s.n.transport.SendSnapshotNotice(in.from, in.conn, &peer.SnapChunk{Kind: peer.SnapAck, Group: in.group, Transfer: in.id})
		return
	}
	if st != nil {
		st.Abort()
	}
	if closed {
		return
	}
	log.Warn("partition snapshot not received", "err", err)
	s.n.transport.SendSnapshotNotice(in.from, in.conn, &peer.SnapChunk{Kind: peer.SnapAbort, Group: in.group, Transfer: in.id,
		Reason: err.Error()})
}

// fill writes the frames into the stage until the end frame, checks the
// snapshot and steps its MsgSnap into the group.
func (s *snapshots) fill(in *inbound, st *seglog.SnapshotStage, mf seglog.SnapshotManifest) error {
	idle := time.NewTimer(snapIdle)
	defer idle.Stop()
	for {
		select {
		case <-in.ctx.Done():
			return context.Cause(in.ctx)
		case <-idle.C:
			return fmt.Errorf("no frame for %v", snapIdle)
		case f := <-in.ch:
			if f.msg == nil {
				if _, err := st.Write(f.data); err != nil {
					return err
				}
				idle.Reset(snapIdle)
				continue
			}
			if err := st.Finish(); err != nil {
				return err
			}
			m := f.msg
			snap := m.GetSnapshot()
			if id, _ := partlog.SnapshotTransfer(snap); m.GetType() != raftpb.MsgSnap || m.GetFrom() != in.from || m.GetTo() != s.n.cfg.Node ||
				id != in.id || snap.GetMetadata().GetIndex() != mf.Index || snap.GetMetadata().GetTerm() != mf.Term {
				return fmt.Errorf("the end frame's %v from %d to %d (snapshot %d of term %d) does not match the transfer",
					m.GetType(), m.GetFrom(), m.GetTo(), snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm())
			}
			if !s.n.rafts.ReceiveSnapshot(in.from, in.group, m) {
				return errors.New("the partition group is not running on this node")
			}
			return nil
		}
	}
}

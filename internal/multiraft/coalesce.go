package multiraft

import (
	"encoding/binary"
	"sync"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/spoolmq/spool/internal/peer"
)

// Coalesced heartbeats. Every group a node leads heartbeats each of its
// followers every tick, and every follower answers: with thousands of
// active groups, thousands of messages per tick per node pair. Instead,
// heartbeats and their answers (those without a context: raft's
// read-index confirmations and the quiescing heartbeat keep theirs and go
// alone) are queued per peer and sent when this node's workers run out of
// work — after the ticks' Readys, so at most one short delay — as one
// message per peer listing (group, kind, term, commit). The receiver
// steps each into its group as the heartbeat it stands for. This is what
// CockroachDB does; raft needs nothing of it (a heartbeat's fields are its
// sender, receiver, term and commit).
//
// The coalesced message is an envelope of group CoalescedGroup (no real
// group has that id: the metadata group is 0 and partition groups have
// the top bit set), a MsgHeartbeat whose context packs the entries: per
// entry group (uint64), kind (1 byte: 0 heartbeat, 1 answer), term
// (uint64), commit (uint64), big-endian (docs/format/peer.md).

// CoalescedGroup is the envelope group of coalesced heartbeats.
const CoalescedGroup = 1<<63 - 1

const hbEntrySize = 8 + 1 + 8 + 8

type heartbeats struct {
	mu  sync.Mutex
	out map[uint64][]byte // peer → packed entries waiting
}

// coalescible reports whether m travels in a coalesced heartbeat.
func coalescible(m *raftpb.Message) bool {
	t := m.GetType()
	return (t == raftpb.MsgHeartbeat || t == raftpb.MsgHeartbeatResp) && len(m.GetContext()) == 0
}

// queue adds m (coalescible) of group id for its peer.
func (h *heartbeats) queue(id uint64, m *raftpb.Message) {
	kind := byte(0)
	if m.GetType() == raftpb.MsgHeartbeatResp {
		kind = 1
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.out == nil {
		h.out = map[uint64][]byte{}
	}
	b := binary.BigEndian.AppendUint64(h.out[m.GetTo()], id)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, m.GetTerm())
	h.out[m.GetTo()] = binary.BigEndian.AppendUint64(b, m.GetCommit())
}

// flushHeartbeats sends what is queued, one message per peer (at most
// maxCoalesced entries each, so a message stays far below the transport's
// frame limit).
func (n *Node) flushHeartbeats() {
	n.hb.mu.Lock()
	out := n.hb.out
	n.hb.out = nil
	n.hb.mu.Unlock()
	for to, packed := range out {
		var envs []peer.Envelope
		for len(packed) > 0 {
			k := min(len(packed), maxCoalesced*hbEntrySize)
			m := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(n.cfg.ID), To: new(to), Context: packed[:k]}
			envs = append(envs, peer.Envelope{Group: CoalescedGroup, Msg: m})
			packed = packed[k:]
		}
		n.cfg.Sender.Send(to, envs...) // a lost heartbeat is one raft tolerates
	}
}

// maxCoalesced bounds the entries of one coalesced message (25 bytes
// each: 10,000 make 250 KB).
const maxCoalesced = 10_000

// expandLocked turns a coalesced message from peer into the heartbeats it
// stands for, stepping each into its group. A malformed one is dropped
// whole. Called with n.mu held.
func (n *Node) expandLocked(from uint64, m *raftpb.Message) {
	ctx := m.GetContext()
	if m.GetType() != raftpb.MsgHeartbeat || m.GetFrom() != from || m.GetTo() != n.cfg.ID || len(ctx)%hbEntrySize != 0 {
		return
	}
	for ; len(ctx) > 0; ctx = ctx[hbEntrySize:] {
		id := binary.BigEndian.Uint64(ctx)
		kind := ctx[8]
		term := binary.BigEndian.Uint64(ctx[9:])
		commit := binary.BigEndian.Uint64(ctx[17:])
		g := n.groups[id]
		if g == nil || g.stopped != nil || kind > 1 {
			continue
		}
		hm := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(from), To: new(n.cfg.ID), Term: new(term)}
		if kind == 1 {
			hm.Type = raftpb.MsgHeartbeatResp.Enum()
		} else {
			hm.Commit = new(commit)
		}
		g.inbox = append(g.inbox, hm)
		n.enqueueLocked(g)
	}
}

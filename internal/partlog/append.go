package partlog

import (
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/seglog"
)

// Write is one MsgStorageAppend being persisted.
type Write struct {
	p     *seglog.Pending // nil if the message carried no entries
	resps []*raftpb.Message
}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Done returns a channel closed when Wait would not block.
func (w *Write) Done() <-chan struct{} {
	if w.p == nil {
		return closedCh
	}
	return w.p.Done()
}

// Wait blocks until everything the message carried is durable and returns
// the error if the log failed (then the node must stop: raft's storage is
// gone, and the log refuses writes until reopened).
func (w *Write) Wait() error {
	if w.p == nil {
		return nil
	}
	_, err := w.p.Wait()
	return err
}

// Responses returns the messages raft asked to deliver once the append is
// durable (MsgStorageAppendResp to the node itself, and what goes to peers,
// such as vote and append answers). Deliver them only after Wait returned
// nil, and in the order the appends were made.
func (w *Write) Responses() []*raftpb.Message { return w.resps }

// Append persists a MsgStorageAppend from raft's Ready (AsyncStorageWrites):
// it installs the snapshot it carries (snapshot.go), truncates the log
// where the entries conflict with it, submits them to the log's group
// commit and saves the hard state, then returns at once.
// Calls must follow the order of the messages; the writes complete in that
// order. NextOffset then counts the submitted entries.
func (s *Storage) Append(m *raftpb.Message) (*Write, error) {
	if m.GetType() != raftpb.MsgStorageAppend {
		return nil, fmt.Errorf("partlog: group %d: %v is not a storage append", s.group, m.GetType())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if snap := m.GetSnapshot(); snap != nil && !raft.IsEmptySnap(snap) {
		if err := s.installSnapshot(snap); err != nil {
			return nil, err
		}
	}
	w := &Write{resps: m.GetResponses()}
	if ents := m.GetEntries(); len(ents) > 0 {
		p, err := s.appendEntries(ents)
		if err != nil {
			return nil, err
		}
		w.p = p
	}
	if m.Term != nil { // the message carries a hard state (raft sets all three or none)
		if err := s.saveHardState(&raftpb.HardState{Term: new(m.GetTerm()), Vote: new(m.GetVote()), Commit: new(m.GetCommit())}); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// appendEntries truncates what conflicts with ents and submits them.
func (s *Storage) appendEntries(ents []*raftpb.Entry) (*seglog.Pending, error) {
	first := ents[0].GetIndex()
	for k, e := range ents {
		if e.GetIndex() != first+uint64(k) {
			return nil, fmt.Errorf("partlog: group %d: entries not contiguous at %d", s.group, e.GetIndex())
		}
	}
	next := s.log.NextIndex()
	if first > next {
		return nil, fmt.Errorf("partlog: group %d: entries from %d leave a gap after %d", s.group, first, next-1)
	}
	if first < next {
		// Raft replaces a suffix: the log waits for writes in flight,
		// then cuts after the entry before the first new one.
		if err := s.log.TruncateAfterIndex(first - 1); err != nil {
			return nil, fmt.Errorf("partlog: group %d: truncate after %d: %w", s.group, first-1, err)
		}
	}
	le := make([]seglog.Entry, len(ents))
	for k, e := range ents {
		le[k] = toLog(e)
	}
	p, err := s.log.SubmitEntries(first, le)
	if err != nil {
		return nil, fmt.Errorf("partlog: group %d: %w", s.group, err)
	}
	return p, nil
}

// saveHardState writes hs if it changed: synced when its term or vote
// changed (a commit index alone may be lost and learnt again).
func (s *Storage) saveHardState(hs *raftpb.HardState) error {
	if proto.Equal(hs, s.hs) {
		return nil
	}
	sync := hs.GetTerm() != s.hs.GetTerm() || hs.GetVote() != s.hs.GetVote()
	v, err := proto.Marshal(hs)
	if err != nil {
		return err
	}
	b := s.st.NewBatch()
	b.Set(s.hardKey(), v)
	if err := b.Commit(sync); err != nil {
		return fmt.Errorf("partlog: group %d: hard state: %w", s.group, err)
	}
	s.hs = hs
	return nil
}

// NextOffset returns the offset the next data record appended after every
// submitted entry gets: a leader gives a proposal the offsets from here
// plus the records it proposed since its last Append, and a deposed
// leader's uncommitted tail, once truncated, no longer counts.
func (s *Storage) NextOffset() int64 { return s.log.NextOffset() }

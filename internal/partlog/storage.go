// Package partlog makes a partition's replicated seglog.Log its raft
// group's log: raft's Storage reads entries straight from the partition's
// segments, and the write side persists what raft's AsyncStorageWrites
// hands the local append thread (MsgStorageAppend). No message is stored
// twice: a normal entry whose data is a record batch is that batch in the
// log, with the entry's term as its partition leader epoch; every other
// entry (raft's empty entries, configuration changes) is an internal batch
// whose payload is the entry type (one byte) followed by the data.
//
// The hard state and the latest snapshot's metadata are kept in the state
// store under the group's keys (state.RaftKey: g/ ‖ group ‖ "h" and "s",
// the same records internal/raftlog keeps for the metadata group; partition
// groups have no "e" keys, their entries are in the partition log).
//
// Durability and ordering. Append truncates a conflicting suffix (the
// log's TruncateAfterIndex waits for writes in flight, so a deposed
// entry's write completes before it is cut), submits the entries to the
// log's group commit and writes the hard state to the state store (synced
// when its term or vote changed) while the log's fsync runs; the returned
// Write completes when the entries are durable. A crash between the two
// writes can leave a hard state whose commit index is past the last
// durable entry, or whose term is below the last entry's: InitialState
// repairs both (commit capped at the last index; term raised to the last
// entry's, with no vote — no vote in that term was ever sent, since votes
// are answered only after their hard state is durable).
package partlog

import (
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
)

// Storage is one partition group's raft storage.
type Storage struct {
	log   *seglog.Log
	st    *state.Store
	group uint64

	mu   sync.Mutex        // serialises Append and SaveSnapshotMeta
	hs   *raftpb.HardState // as last written
	meta *raftpb.SnapshotMetadata
	// applied is what the state machine has applied (SetApplied): the
	// snapshot a leader sends, at least as new as meta.
	applied *raftpb.SnapshotMetadata
}

var _ raft.Storage = (*Storage)(nil)

func (s *Storage) hardKey() []byte { return state.RaftKey(s.group, 'h') }
func (s *Storage) snapKey() []byte { return state.RaftKey(s.group, 's') }

// Open returns the storage of group over log, which must be replicated
// (seglog.Options.Replicated) and stays the caller's to close.
func Open(log *seglog.Log, st *state.Store, group uint64) (*Storage, error) {
	if !log.Replicated() {
		return nil, seglog.ErrNotReplicated
	}
	s := &Storage{log: log, st: st, group: group, hs: &raftpb.HardState{}}
	if v, err := st.Get(s.hardKey()); err == nil {
		if err := proto.Unmarshal(v, s.hs); err != nil {
			return nil, fmt.Errorf("partlog: group %d: hard state: %w", group, err)
		}
	} else if !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	snap := &raftpb.Snapshot{}
	if v, err := st.Get(s.snapKey()); err == nil {
		if err := proto.Unmarshal(v, snap); err != nil {
			return nil, fmt.Errorf("partlog: group %d: snapshot: %w", group, err)
		}
	} else if !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	s.meta = raftpb.EnsureSnapshot(snap).GetMetadata()
	if rec := log.InstalledSnapshot(); rec != nil {
		// The log's own record of the snapshot it was last replaced by:
		// newer than the state store's if the node stopped between the
		// install and saving it there.
		inst := &raftpb.Snapshot{}
		if err := proto.Unmarshal(rec, inst); err != nil {
			return nil, fmt.Errorf("partlog: group %d: the log's snapshot record: %w", group, err)
		}
		if m := inst.GetMetadata(); m.GetIndex() > s.meta.GetIndex() {
			if err := s.saveMeta(m); err != nil {
				return nil, err
			}
		}
	}
	log.SetRetentionFloor(s.meta.GetIndex())
	return s, nil
}

// Log returns the partition log.
func (s *Storage) Log() *seglog.Log { return s.log }

// InitialState implements raft.Storage: the hard state as written,
// repaired as the package documentation says, and the configuration of
// the latest snapshot metadata.
func (s *Storage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	s.mu.Lock()
	hs := proto.Clone(s.hs).(*raftpb.HardState)
	cs := proto.Clone(raftpb.EnsureConfState(s.meta.GetConfState())).(*raftpb.ConfState)
	s.mu.Unlock()
	last := s.log.LastIndex()
	lastTerm, err := s.log.Term(last)
	if err != nil {
		return nil, nil, err
	}
	if hs.GetCommit() > last {
		hs.Commit = new(last)
	}
	// Entries up to the snapshot, and any before the first one kept, are
	// committed (retention deletes only what was applied); the commit
	// index, written unsynced, may say less.
	if c := max(min(s.SnapshotIndex(), last), s.log.FirstIndex()-1); hs.GetCommit() < c {
		hs.Commit = new(c)
	}
	if hs.GetTerm() < lastTerm {
		hs.Term, hs.Vote = new(lastTerm), new(uint64(0))
	}
	return hs, cs, nil
}

// Entries implements raft.Storage.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	if lo >= hi {
		return nil, nil
	}
	var out []*raftpb.Entry
	var size uint64
	var bad error
	err := s.log.ScanEntries(lo, hi, func(e seglog.Entry) bool {
		re, err := toRaft(e)
		if err != nil {
			bad = err
			return false
		}
		size += uint64(proto.Size(re))
		if len(out) > 0 && size > maxSize {
			return false
		}
		out = append(out, re)
		return true
	})
	if err == nil {
		err = bad
	}
	return out, mapErr(err)
}

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	t, err := s.log.Term(i)
	return t, mapErr(err)
}

// LastIndex implements raft.Storage: the last entry written.
func (s *Storage) LastIndex() (uint64, error) { return s.log.LastIndex(), nil }

// FirstIndex implements raft.Storage. It moves when retention deletes
// whole segments of the partition log.
func (s *Storage) FirstIndex() (uint64, error) { return s.log.FirstIndex(), nil }

// Snapshot implements raft.Storage: the metadata (index, term,
// configuration) of what the state machine last applied (SetApplied), or
// of the snapshot last saved, without data — a leader sends a far-behind
// follower the partition's segments up to that index (OpenSnapshot), as a
// transfer of its own. When the log no longer holds the entry after that
// index (retention passed it) a follower could not continue from it, so
// the answer is then ErrSnapshotTemporarilyUnavailable.
func (s *Storage) Snapshot() (*raftpb.Snapshot, error) {
	s.mu.Lock()
	meta := s.meta
	if s.applied.GetIndex() > meta.GetIndex() {
		meta = s.applied
	}
	meta = proto.Clone(meta).(*raftpb.SnapshotMetadata)
	s.mu.Unlock()
	if i := meta.GetIndex(); i > 0 && (i+1 < s.log.FirstIndex() || i > s.log.LastIndex()) {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return &raftpb.Snapshot{Metadata: meta}, nil
}

// SnapshotIndex returns the index of the snapshot last saved: the state
// machine holds every entry up to it (raft's Config.Applied at a start).
func (s *Storage) SnapshotIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meta.GetIndex()
}

// SetApplied tells the storage that the state machine has applied every
// entry up to index, with configuration cs (not modified afterwards): the
// snapshot a leader sends from now on. When that lets retention delete a
// sealed segment the floor does not cover yet, it is saved as the
// snapshot (synced), and retention may delete up to it.
func (s *Storage) SetApplied(index uint64, cs *raftpb.ConfState) error {
	t, err := s.Term(index)
	if err != nil {
		return fmt.Errorf("partlog: group %d: applied entry %d: %w", s.group, index, err)
	}
	meta := &raftpb.SnapshotMetadata{Index: new(index), Term: new(t), ConfState: raftpb.EnsureConfState(cs)}
	s.mu.Lock()
	if index <= s.applied.GetIndex() {
		s.mu.Unlock()
		return nil
	}
	s.applied = meta
	saved := s.meta.GetIndex()
	s.mu.Unlock()
	if min(index, s.log.LastSealedIndex()) > saved {
		return s.SaveSnapshotMeta(index, cs)
	}
	return nil
}

// SaveSnapshotMeta records, synced, that the state machine has applied
// every entry up to index with configuration cs: what InitialState returns
// as the configuration at the next start, and the retention floor.
func (s *Storage) SaveSnapshotMeta(index uint64, cs *raftpb.ConfState) error {
	t, err := s.Term(index)
	if err != nil {
		return err
	}
	meta := &raftpb.SnapshotMetadata{Index: new(index), Term: new(t), ConfState: proto.Clone(raftpb.EnsureConfState(cs)).(*raftpb.ConfState)}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveMeta(meta)
}

// saveMeta saves meta as the snapshot and moves the retention floor to it
// (mu held, or not shared yet).
func (s *Storage) saveMeta(meta *raftpb.SnapshotMetadata) error {
	v, err := proto.Marshal(&raftpb.Snapshot{Metadata: meta})
	if err != nil {
		return err
	}
	b := s.st.NewBatch()
	b.Set(s.snapKey(), v)
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("partlog: group %d: %w", s.group, err)
	}
	s.meta = meta
	s.log.SetRetentionFloor(meta.GetIndex())
	return nil
}

// mapErr turns the log's index errors into raft's.
func mapErr(err error) error {
	switch {
	case errors.Is(err, seglog.ErrIndexCompacted):
		return raft.ErrCompacted
	case errors.Is(err, seglog.ErrIndexUnavailable):
		return raft.ErrUnavailable
	}
	return err
}

// toLog maps a raft entry to the log's form.
func toLog(e *raftpb.Entry) seglog.Entry {
	if e.GetType() == raftpb.EntryNormal && isDataBatch(e.GetData()) {
		return seglog.Entry{Term: e.GetTerm(), Data: e.GetData()}
	}
	payload := make([]byte, 1+len(e.GetData()))
	payload[0] = byte(e.GetType())
	copy(payload[1:], e.GetData())
	return seglog.Entry{Term: e.GetTerm(), Internal: true, Data: payload}
}

// isDataBatch reports whether data is exactly one record batch (by its
// header and CRC) that the log stores as such. The log checks it in full;
// a leader validates a batch before proposing it, as a single node does
// before appending, so a batch that fails there is a bug, not an input.
func isDataBatch(data []byte) bool {
	if len(data) < batch.HeaderSize {
		return false
	}
	h, err := batch.ParseHeader(data)
	return err == nil && h.Attributes&seglog.AttrInternal == 0 && h.Magic == batch.MagicV2 &&
		h.Size() == len(data) && batch.CRC(data) == h.CRC
}

// toRaft maps a stored entry back. Fields are set as raft sets them on the
// entries it makes (no type for a normal entry, no data for an empty one),
// so that sizes and comparisons agree.
func toRaft(e seglog.Entry) (*raftpb.Entry, error) {
	re := &raftpb.Entry{Term: new(e.Term), Index: new(e.Index)}
	data := e.Data
	if e.Internal {
		if len(data) == 0 || data[0] > byte(raftpb.EntryConfChangeV2) {
			return nil, fmt.Errorf("partlog: entry %d: bad internal payload", e.Index)
		}
		if t := raftpb.EntryType(data[0]); t != raftpb.EntryNormal {
			re.Type = t.Enum()
		}
		data = data[1:]
	}
	if len(data) > 0 {
		re.Data = data
	}
	return re, nil
}

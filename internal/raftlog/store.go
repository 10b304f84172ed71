// Package raftlog keeps a raft group's log, hard state and latest snapshot
// in the state store, for groups whose log is small: the metadata group
// (the catalog's changes) in a cluster. Partition groups keep their
// entries in their partition logs instead (DESIGN.md, Replication).
//
// The store is raft's Storage: it serves reads from a copy in memory of
// everything since the latest snapshot (a MemoryStorage), and every change
// is written to the state store first — in one batch, synced when raft
// says so — and applied to the copy only once written. Opening the store
// rebuilds the copy from the state store.
//
// Keys (docs/format/state.md): g/ ‖ group (uint64) ‖ suffix, where the
// suffix is "h" (the hard state), "s" (the latest snapshot, with its
// data) or "e" ‖ index (uint64) (an entry). Values are the protobuf
// encodings of go.etcd.io/raft/v3's raftpb messages.
package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/state"
)

// Store is one group's raft storage.
type Store struct {
	st    *state.Store
	group uint64
	mu    sync.Mutex // serialises writers; MemoryStorage locks its own reads
	mem   *raft.MemoryStorage
}

var _ raft.Storage = (*Store)(nil)

func (s *Store) hardKey() []byte          { return state.RaftKey(s.group, 'h') }
func (s *Store) snapKey() []byte          { return state.RaftKey(s.group, 's') }
func (s *Store) entryPrefix() []byte      { return state.RaftKey(s.group, 'e') }
func (s *Store) entryKey(i uint64) []byte { return binary.BigEndian.AppendUint64(s.entryPrefix(), i) }

// Open loads group's log from the state store (empty if it has none).
func Open(st *state.Store, group uint64) (*Store, error) {
	s := &Store{st: st, group: group, mem: raft.NewMemoryStorage()}
	if v, err := st.Get(s.snapKey()); err == nil {
		snap := new(raftpb.Snapshot)
		if err := proto.Unmarshal(v, snap); err != nil {
			return nil, fmt.Errorf("raftlog: group %d: snapshot: %w", group, err)
		}
		if err := s.mem.ApplySnapshot(snap); err != nil {
			return nil, fmt.Errorf("raftlog: group %d: snapshot: %w", group, err)
		}
	} else if !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	if v, err := st.Get(s.hardKey()); err == nil {
		hs := new(raftpb.HardState)
		if err := proto.Unmarshal(v, hs); err != nil {
			return nil, fmt.Errorf("raftlog: group %d: hard state: %w", group, err)
		}
		s.mem.SetHardState(hs)
	} else if !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	first, _ := s.mem.FirstIndex()
	var ents []*raftpb.Entry
	err := st.Scan(s.entryPrefix(), func(k, v []byte) error {
		i := binary.BigEndian.Uint64(k[len(k)-8:])
		if i < first {
			return nil // compacted; deleted by the next snapshot's batch
		}
		e := new(raftpb.Entry)
		if err := proto.Unmarshal(v, e); err != nil {
			return fmt.Errorf("raftlog: group %d: entry %d: %w", group, i, err)
		}
		if e.GetIndex() != i || (len(ents) > 0 && i != ents[len(ents)-1].GetIndex()+1) || (len(ents) == 0 && i != first) {
			return fmt.Errorf("raftlog: group %d: entry %d out of sequence (log starts at %d)", group, i, first)
		}
		ents = append(ents, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.mem.Append(ents); err != nil {
		return nil, err
	}
	return s, nil
}

// Save writes what a raft Ready asks to persist — a snapshot, entries
// (replacing any at or after the first one's index) and the hard state,
// each optional — in one batch, synced if sync, and then makes it visible
// to raft's reads.
func (s *Store) Save(hs *raftpb.HardState, ents []*raftpb.Entry, snap *raftpb.Snapshot, sync bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.st.NewBatch()
	if snap != nil && !raft.IsEmptySnap(snap) {
		v, err := proto.Marshal(snap)
		if err != nil {
			return err
		}
		b.Set(s.snapKey(), v)
		b.DeletePrefix(s.entryPrefix()) // a snapshot received replaces the whole log
	}
	if len(ents) > 0 {
		last, _ := s.mem.LastIndex()
		for i := ents[0].GetIndex(); i <= last; i++ {
			b.Delete(s.entryKey(i))
		}
		for _, e := range ents {
			v, err := proto.Marshal(e)
			if err != nil {
				return err
			}
			b.Set(s.entryKey(e.GetIndex()), v)
		}
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		v, err := proto.Marshal(hs)
		if err != nil {
			return err
		}
		b.Set(s.hardKey(), v)
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(sync); err != nil {
		return fmt.Errorf("raftlog: group %d: %w", s.group, err)
	}
	if snap != nil && !raft.IsEmptySnap(snap) {
		if err := s.mem.ApplySnapshot(snap); err != nil {
			return err
		}
	}
	if len(ents) > 0 {
		if err := s.mem.Append(ents); err != nil {
			return err
		}
	}
	if hs != nil && !raft.IsEmptyHardState(hs) {
		s.mem.SetHardState(hs)
	}
	return nil
}

// Compact makes a snapshot at applied index i (with the state machine's
// data and configuration) and discards the entries up to it, so the log
// stays small; raft sends the snapshot to followers that need what was
// discarded.
func (s *Store) Compact(i uint64, cs *raftpb.ConfState, data []byte) error {
	return s.CompactKeep(i, cs, data, 0)
}

// CompactKeep is Compact keeping the keep entries up to i (for followers
// slightly behind; multiraft.Compactor). After a restart the log starts
// after i: the snapshot is what is loaded first.
func (s *Store) CompactKeep(i uint64, cs *raftpb.ConfState, data []byte, keep uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	first, _ := s.mem.FirstIndex()
	if i < first {
		return raft.ErrCompacted
	}
	t, err := s.mem.Term(i)
	if err != nil {
		return err
	}
	to := first - 1 // entries up to to are discarded
	if i > keep {
		to = max(to, i-keep)
	}
	snap := &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: new(i), Term: new(t), ConfState: cs}}
	v, err := proto.Marshal(snap)
	if err != nil {
		return err
	}
	b := s.st.NewBatch()
	b.Set(s.snapKey(), v)
	// Every stored entry up to to, including any a restart left below the
	// first index in memory (the log there starts after the snapshot).
	err = s.st.ScanRange(s.entryKey(0), s.entryKey(to+1), func(k, _ []byte) error {
		b.Delete(bytes.Clone(k))
		return nil
	})
	if err != nil {
		return fmt.Errorf("raftlog: group %d: %w", s.group, err)
	}
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("raftlog: group %d: %w", s.group, err)
	}
	if _, err := s.mem.CreateSnapshot(i, cs, data); err != nil {
		return err
	}
	if to < first {
		return nil
	}
	return s.mem.Compact(to)
}

// InitialState implements raft.Storage.
func (s *Store) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	return s.mem.InitialState()
}

// Entries implements raft.Storage.
func (s *Store) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	return s.mem.Entries(lo, hi, maxSize)
}

// Term implements raft.Storage.
func (s *Store) Term(i uint64) (uint64, error) { return s.mem.Term(i) }

// LastIndex implements raft.Storage.
func (s *Store) LastIndex() (uint64, error) { return s.mem.LastIndex() }

// FirstIndex implements raft.Storage.
func (s *Store) FirstIndex() (uint64, error) { return s.mem.FirstIndex() }

// Snapshot implements raft.Storage.
func (s *Store) Snapshot() (*raftpb.Snapshot, error) { return s.mem.Snapshot() }

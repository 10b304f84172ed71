package partlog

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/seglog"
)

// Snapshots. A partition's state is its log, so a snapshot at index i is
// the log's segments up to entry i (seglog's OpenSnapshot), with raft's
// metadata (i, its term, the configuration then). Raft asks for one when a
// follower needs entries retention deleted: the leader's Snapshot answers
// with metadata only, and the transport sends the segments as a transfer
// of their own, named by an id that the MsgSnap carries as its data
// (SnapshotData). The follower stages the transfer in its log
// (StageSnapshot), checks it, and only then steps the MsgSnap into raft;
// if raft takes it, the MsgStorageAppend that follows carries the
// snapshot and Append installs the staged files in place of the log; if
// not, ReleaseSnapshot removes them.

// SnapshotData is the data of a MsgSnap whose segments travel as transfer
// id.
func SnapshotData(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// SnapshotTransfer returns the transfer id a snapshot's data names.
func SnapshotTransfer(snap *raftpb.Snapshot) (uint64, bool) {
	d := snap.GetData()
	if len(d) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(d), true
}

// OpenSnapshot opens the log's segments up to the snapshot described by
// meta for sending; the log must hold that entry with that term.
func (s *Storage) OpenSnapshot(meta *raftpb.SnapshotMetadata) (*seglog.SnapshotSource, error) {
	src, err := s.log.OpenSnapshot(meta.GetIndex())
	if err != nil {
		return nil, fmt.Errorf("partlog: group %d: snapshot at %d: %w", s.group, meta.GetIndex(), mapErr(err))
	}
	if src.Manifest.Term != meta.GetTerm() {
		src.Close()
		return nil, fmt.Errorf("partlog: group %d: entry %d has term %d, not the snapshot's %d", s.group, meta.GetIndex(), src.Manifest.Term, meta.GetTerm())
	}
	return src, nil
}

// StageSnapshot starts receiving transfer id, described by m, into the
// log's staging area.
func (s *Storage) StageSnapshot(id uint64, m seglog.SnapshotManifest) (*seglog.SnapshotStage, error) {
	st, err := s.log.StageSnapshot(id, m)
	if err != nil {
		return nil, fmt.Errorf("partlog: group %d: %w", s.group, err)
	}
	return st, nil
}

// ReleaseSnapshot removes the staged files of a snapshot raft was given,
// if they were not installed (raft did not take it: it was stale, or the
// follower already held its last entry).
func (s *Storage) ReleaseSnapshot(snap *raftpb.Snapshot) {
	if id, ok := SnapshotTransfer(snap); ok {
		s.log.DiscardSnapshot(id)
	}
}

// installSnapshot replaces the log with the staged transfer snap names and
// saves its metadata, synced: entries up to its index are now the
// leader's, and the state machine holds them (mu held).
func (s *Storage) installSnapshot(snap *raftpb.Snapshot) error {
	id, ok := SnapshotTransfer(snap)
	if !ok {
		return fmt.Errorf("partlog: group %d: a snapshot without its transfer id", s.group)
	}
	meta := proto.Clone(snap.GetMetadata()).(*raftpb.SnapshotMetadata)
	meta.ConfState = raftpb.EnsureConfState(meta.GetConfState())
	rec, err := proto.Marshal(&raftpb.Snapshot{Metadata: meta})
	if err != nil {
		return err
	}
	if err := s.log.InstallSnapshot(id, meta.GetIndex(), meta.GetTerm(), rec); err != nil {
		return fmt.Errorf("partlog: group %d: %w", s.group, err)
	}
	if err := s.saveMeta(meta); err != nil {
		return err
	}
	s.applied = meta
	return nil
}

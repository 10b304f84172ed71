package broker

import (
	"errors"
	iofs "io/fs"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/vfs"
)

// BackupStats describes a backup Backup wrote.
type BackupStats struct {
	Topics      int           // topics copied
	Partitions  int           // partition logs copied
	Segments    int           // segment files in the copy
	Linked      int           // of them, hard links to sealed segments
	CopiedBytes int64         // segment bytes copied (the rest are links)
	Took        time.Duration // how long it took
}

// Backup writes a consistent copy of the data directory into dir while the
// broker serves: a data directory that a server opens as it opens its own
// after a crash. dir must be absent or empty; its parent is created if
// needed. A cluster node's data cannot be copied this way (unsupported).
//
// The order makes the copy consistent: first, with topic creation,
// deletion and partition addition held back (topicAdminMu, then the topic
// map's lock, shared), a checkpoint of the state store and the list of
// partition logs it describes; then each log, copied to at least where
// it ended at the checkpoint (seglog.Log.Backup). Every offset the state
// store's records name (committed offsets, queue progress, producer
// snapshots) was readable when it was written, so it is inside the copied
// log, or below its start if retention removed it since, as it can on a
// live server. Records after the checkpoint's are in the logs and not in
// the state: at start they are as messages published just before a crash
// (delivered again to queue subscriptions, not yet committed by stream
// ones). Publishing, consuming and committing go on throughout; a topic
// deleted while its logs are being copied fails the backup (run it again).
func (b *Broker) Backup(dir string) (BackupStats, error) {
	t0 := time.Now()
	if b.cfg.Replicator != nil || b.cfg.Meta != nil {
		return BackupStats{}, errs.New(errs.UnsupportedFeature,
			"backup: a cluster node's data directory cannot be backed up online (its partitions are raft logs); see docs/operations.md, \"Backup and restore\"")
	}
	if !b.backupMu.TryLock() {
		return BackupStats{}, errs.New(errs.FailedPrecondition, "backup: another backup is running")
	}
	defer b.backupMu.Unlock()
	dir = filepath.Clean(dir)
	if names, err := b.fs.List(dir); err == nil && len(names) > 0 {
		return BackupStats{}, errs.New(errs.FailedPrecondition, "backup: %s is not empty", dir)
	} else if err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return BackupStats{}, errs.Wrap(errs.InvalidArgument, err, "backup: %s", dir)
	}
	if err := vfs.MkdirAllSync(b.fs, filepath.Join(dir, "topics"), 0o755); err != nil {
		return BackupStats{}, errs.Wrap(errs.StorageFailed, err, "backup: create %s", dir)
	}

	type copyJob struct {
		t    *topic
		dir  string
		logs []*seglog.Log
	}
	var jobs []copyJob
	err := func() error {
		// No topic created or deleted (the topic map's lock) nor given
		// partitions (topicAdminMu; on a single node AddPartitions applies
		// under it) between the checkpoint and the list of logs.
		topicAdminMu.Lock()
		defer topicAdminMu.Unlock()
		b.mu.RLock()
		defer b.mu.RUnlock()
		if b.closed {
			return errs.New(errs.Unavailable, "broker is shutting down")
		}
		if err := b.cfg.State.Checkpoint(filepath.Join(dir, "state")); err != nil {
			return errs.Wrap(errs.StorageFailed, err, "backup: state store")
		}
		for _, t := range b.topics {
			jobs = append(jobs, copyJob{t: t, dir: filepath.Join(dir, "topics", filepath.Base(t.dir)), logs: t.logs()})
		}
		return nil
	}()
	if err != nil {
		return BackupStats{}, err
	}

	var st BackupStats
	for _, j := range jobs {
		if err := b.backupTopic(j.t, j.dir, j.logs, &st); err != nil {
			return BackupStats{}, err
		}
	}
	if err := vfs.SyncDir(b.fs, filepath.Join(dir, "topics")); err != nil {
		return BackupStats{}, errs.Wrap(errs.StorageFailed, err, "backup: sync %s", dir)
	}
	if err := vfs.SyncDir(b.fs, dir); err != nil {
		return BackupStats{}, errs.Wrap(errs.StorageFailed, err, "backup: sync %s", dir)
	}
	st.Took = time.Since(t0)
	b.logger.Info("backup written", "dir", dir, "topics", st.Topics, "partitions", st.Partitions,
		"segments", st.Segments, "linked", st.Linked, "copied_bytes", st.CopiedBytes, "took", st.Took.Round(time.Millisecond))
	return st, nil
}

// backupTopic copies a topic's partition logs, holding its life lock shared
// so that it is not deleted (nor closed) meanwhile.
func (b *Broker) backupTopic(t *topic, dir string, logs []*seglog.Log, st *BackupStats) error {
	t.life.RLock()
	defer t.life.RUnlock()
	if t.deleted {
		return errs.New(errs.FailedPrecondition, "backup: topic %q was deleted (or the server is stopping) while the backup ran; run it again", t.meta.Name)
	}
	if err := vfs.MkdirAllSync(b.fs, dir, 0o755); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "backup: create %s", dir)
	}
	for p, l := range logs {
		ls, err := l.Backup(filepath.Join(dir, strconv.Itoa(p)))
		if err != nil {
			return errs.Wrap(errs.StorageFailed, err, "backup: partition %d of topic %q", p, t.meta.Name)
		}
		st.Partitions++
		st.Segments += ls.Segments
		st.Linked += ls.Linked
		st.CopiedBytes += ls.CopiedBytes
	}
	if err := vfs.SyncDir(b.fs, dir); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "backup: sync %s", dir)
	}
	st.Topics++
	return nil
}

// Package state is Spool's state store: one embedded Pebble database per
// node (<data>/state) holding the catalog (topics, subscriptions), committed
// offsets and, later, queue state. Writes go through batches; a synced
// commit is durable when it returns, and concurrent synced commits share one
// WAL fsync (Pebble's commit pipeline does group commit).
//
// Key space (every key starts with a kind, then a '/'; every key
// and value is described in docs/format/state.md, and each record family is
// encoded by the package that writes it):
//
//	t/<topic>                        topic record (catalog)
//	s/<topic>\x00<subscription>      subscription record (catalog)
//	o/<topic>\x00<subscription>\x00<partition:4 bytes BE>  committed offset (catalog)
//	q/<topic>\x00<subscription>\x00<partition:4>            queue partition snapshot (broker)
//	w/<topic>\x00<subscription>\x00<due ms:8><partition:4><offset:8>  parked message (broker)
//	x/<topic>\x00<subscription>\x00<partition:4><offset:8>  due time of a parked message (broker)
//	r/<dead-letter topic>\x00<offset:8>                      redriven mark (broker)
//	h/<topic>\x00<subscription>\x00<partition:4>            stream partition halt (broker)
//	k/<topic>\x00<subscription>\x00<key>    the Kafka front end's records of a subscription (Space)
//	kafka-<key>                              the Kafka front end's own records (Space)
//
// Names cannot contain \x00, so the separators are unambiguous. Records
// start with a version byte (record.go) or have a fixed layout.
package state

import (
	"errors"
	"fmt"
	"github.com/spoolmq/spool/internal/crashpoint"
	"log/slog"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrNotFound is returned by Get for a missing key.
var ErrNotFound = errors.New("state: not found")

// Store is the state store.
type Store struct {
	db *pebble.DB
	// failed is the error of the first commit that failed: sticky (see
	// Batch.Commit).
	failed atomic.Pointer[error]
}

// Err returns the error of the commit that failed, nil while every commit
// succeeded.
func (s *Store) Err() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Options configure Open.
type Options struct {
	// FS is Pebble's file system; nil means the OS. Tests use
	// vfs.NewStrictMem to simulate crashes.
	FS vfs.FS
	// Logger receives Pebble's log lines at debug level (errors at error).
	Logger *slog.Logger
	// CacheBytes is the block cache size; default 32 MiB.
	CacheBytes int64
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 32 << 20
	}
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		FS:           o.FS,
		Cache:        cache,
		Logger:       pebbleLogger{o.Logger},
		MemTableSize: 16 << 20,
	}
	// Bloom filters in every level: a point lookup of a key that is not
	// there (the processed-key ledger's usual case) reads no data block.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Get returns a copy of the value of key, or ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("state: get: %w", err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

// Batch collects writes applied atomically by Commit.
type Batch struct {
	b *pebble.Batch
	s *Store
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return &Batch{b: s.db.NewBatch(), s: s} }

// Set sets key to value.
func (b *Batch) Set(key, value []byte) { b.b.Set(key, value, nil) }

// Delete deletes key.
func (b *Batch) Delete(key []byte) { b.b.Delete(key, nil) }

// DeletePrefix deletes every key starting with prefix.
func (b *Batch) DeletePrefix(prefix []byte) {
	b.b.DeleteRange(prefix, prefixEnd(prefix), nil)
}

// Empty reports whether the batch holds no writes.
func (b *Batch) Empty() bool { return b.b.Empty() }

// Commit applies the batch atomically. With sync it returns only after the
// batch is durable. The batch cannot be reused.
//
// A failed commit is sticky, as a partition log's failed write is: the
// store refuses every later commit with the same error until it is opened
// again (Err reports it; /readyz fails). Pebble treats a failed WAL write
// or sync as fatal and panics; the panic is turned into that error here,
// because after it Pebble's WAL can no longer be trusted to persist what
// it acknowledges.
func (b *Batch) Commit(sync bool) (err error) {
	if p := b.s.failed.Load(); p != nil {
		b.b.Close()
		return *p
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("state: commit failed; the store refuses writes until it is reopened: %v", r)
		}
		if err != nil {
			b.s.failed.CompareAndSwap(nil, &err)
			err = *b.s.failed.Load()
		}
	}()
	crashpoint.Hit(crashpoint.StateWrite)
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	err = b.b.Commit(opt)
	b.b.Close()
	if err != nil {
		return fmt.Errorf("state: commit failed; the store refuses writes until it is reopened: %w", err)
	}
	return nil
}

// Scan calls fn for every key with the given prefix, in key order. The key
// and value are only valid during the call.
func (s *Store) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return s.ScanRange(prefix, prefixEnd(prefix), fn)
}

// prefixEnd returns the smallest key greater than every key with prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // prefix is all 0xff: no upper bound
}

// pebbleLogger routes Pebble's logs to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("state store: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("state store: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error("state store fatal: " + fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}

// ScanRange calls fn for every key in [from, to), in key order (a nil to
// means no upper bound). The key and value are only valid during the call.
func (s *Store) ScanRange(from, to []byte, fn func(key, value []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: to})
	if err != nil {
		return fmt.Errorf("state: scan: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("state: scan: %w", err)
		}
		if err := fn(it.Key(), v); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("state: scan: %w", err)
	}
	return nil
}

// Checkpoint writes a consistent copy of the store into dir, which must not
// exist (its parent must): every commit that returned before the call, and
// possibly later ones. Tables are hard-linked when the file system allows;
// the write-ahead log is flushed and copied. The copy is a store Open opens
// like any other. Commits go on meanwhile.
func (s *Store) Checkpoint(dir string) error {
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("state: checkpoint into %s: %w", dir, err)
	}
	return nil
}

package saga

import (
	"context"
	"sync"
)

// Ledger records what happened to a saga's steps, so that duplicate
// deliveries of a saga's messages are no-ops: which way a step ended
// (first one wins: completed, failed or timed out) and which
// compensations were applied. Keep it where the service keeps its own
// state, so it survives the service's crashes. Keys are at most a few
// hundred bytes; values are short words or the saga's data.
type Ledger interface {
	// Claim stores value under key unless key holds a value already, and
	// returns the value key holds afterwards: value itself if this call
	// stored it, or the first claimant's. It must be atomic: of
	// concurrent claims of one key (from any process sharing the ledger),
	// exactly one stores its value.
	Claim(ctx context.Context, key, value string) (string, error)
	// Get returns the value of key, if any.
	Get(ctx context.Context, key string) (string, bool, error)
}

// MemoryLedger is a Ledger in memory: for tests, and for services whose
// steps may be repeated after a restart. Its entries are never removed.
type MemoryLedger struct {
	mu sync.Mutex
	m  map[string]string
}

// NewMemoryLedger returns an empty ledger.
func NewMemoryLedger() *MemoryLedger { return &MemoryLedger{m: map[string]string{}} }

// Claim implements Ledger.
func (l *MemoryLedger) Claim(_ context.Context, key, value string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.m[key]; ok {
		return v, nil
	}
	l.m[key] = value
	return value, nil
}

// Get implements Ledger.
func (l *MemoryLedger) Get(_ context.Context, key string) (string, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.m[key]
	return v, ok, nil
}

// Len returns the number of entries.
func (l *MemoryLedger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// keyLocks serializes work on one key within a process.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// Package kfetch holds the Kafka front end's incremental fetch sessions
// (KIP-227): which partitions a consumer fetches, at which offsets, and
// what the last response told it. It reads no logs and starts no
// goroutines; the Fetch handler (internal/kafka/01_fetch.go) does the
// reading.
package kfetch

// Incremental fetch sessions (KIP-227). A consumer's full fetch with
// SessionEpoch 0 creates a session holding its partitions and fetch
// offsets; the response carries the session id. Later fetches name the
// session and the next epoch and carry only what changed: partitions added
// or moved (Topics) and removed (ForgottenTopics); the response carries
// only partitions with news — records, an error, or a high watermark, last
// stable offset or log start offset different from what the session last
// told the client. The epoch counts requests (1, 2, … wrapping to 1 after
// MaxInt32) so a lost or replayed request is noticed.
//
//   - SessionID 0, epoch −1: a sessionless full fetch (also v4–v6);
//   - SessionID 0 or N, epoch 0: close session N if any, create a new one;
//   - SessionID N, epoch −1: close session N, sessionless full fetch;
//   - SessionID N, epoch E > 0: incremental fetch; an unknown N is
//     FETCH_SESSION_ID_NOT_FOUND, a wrong E INVALID_FETCH_SESSION_EPOCH
//     (top-level errors; the client then starts a new session).
//
// The cache is bounded: at most maxFetchSessions sessions and
// maxFetchSessionParts partitions over all of them (each partition about
// 200 bytes), at most maxPartsPerSession in one. When a new session does
// not fit, the least recently used sessions are evicted (their next fetch
// gets FETCH_SESSION_ID_NOT_FOUND and starts over); a session that alone
// exceeds the per-session bound is not kept, and the client fetches
// without a session (response SessionID 0). Sessions are not tied to a
// connection, as in Kafka.

import (
	"container/list"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	maxFetchSessions     = 1000
	maxFetchSessionParts = 200_000
	maxPartsPerSession   = 20_000
)

// Key names a partition as the request does: by topic name up to
// v12, by topic id from v13.
type Key struct {
	Topic     string
	ID        [16]byte
	Partition int32
}

// Part is a partition to fetch: from the request, or from a session.
type Part struct {
	Key         Key
	Name        string // the topic's name; "" if its id is unknown
	Offset      int64
	MaxBytes    int32
	LeaderEpoch int32
	// What the last response told the client (sessions only; the handler
	// sets them while it holds the session).
	Sent           bool
	HW, LSO, Start int64
}

// Session is one incremental fetch session.
type Session struct {
	id int32
	mu sync.Mutex // held by the fetch using the session

	// Guarded by mu.
	parts map[Key]*Part
	order []*Part // the order responses list partitions in

	// Guarded by the cache's mu.
	epoch int32 // the epoch the next request must carry
	size  int   // partitions, as last accounted
	elem  *list.Element
	gone  bool // evicted or closed
}

// Cache holds incremental fetch sessions (KIP-227).
type Cache struct {
	mu       sync.Mutex
	sessions map[int32]*Session
	lru      *list.List // of *Session, most recently used first
	total    int        // partitions over all sessions
}

func NewCache() *Cache {
	return &Cache{sessions: map[int32]*Session{}, lru: list.New()}
}

func nextSessionEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// removeLocked drops a session from the cache.
func (fc *Cache) removeLocked(fs *Session) {
	if fs.gone {
		return
	}
	fs.gone = true
	delete(fc.sessions, fs.id)
	fc.lru.Remove(fs.elem)
	fc.total -= fs.size
}

// Begin resolves a request's session. It returns the session, locked (the
// caller unlocks it once the response is built), and whether the request
// is incremental; or no session (a sessionless fetch); or a top-level
// error code. resolve names the topic of a key ("" if unknown).
func (fc *Cache) Begin(req *kmsg.FetchRequest, resolve func(Key) string) (*Session, bool, int16) {
	if req.Version < 7 {
		return nil, false, 0
	}
	fc.mu.Lock()
	var fs *Session
	if req.SessionID != 0 {
		fs = fc.sessions[req.SessionID]
	}
	switch {
	case req.SessionEpoch == -1 || req.SessionEpoch == 0:
		if fs != nil {
			fc.removeLocked(fs)
		}
		fc.mu.Unlock()
		if req.SessionEpoch == -1 {
			return nil, false, 0
		}
		return fc.create(req, resolve), false, 0
	case req.SessionEpoch < -1:
		fc.mu.Unlock()
		return nil, false, kerr.InvalidFetchSessionEpoch.Code
	case fs == nil:
		fc.mu.Unlock()
		return nil, false, kerr.FetchSessionIDNotFound.Code
	case fs.epoch != req.SessionEpoch:
		fc.mu.Unlock()
		return nil, false, kerr.InvalidFetchSessionEpoch.Code
	}
	fs.epoch = nextSessionEpoch(fs.epoch)
	fc.lru.MoveToFront(fs.elem)
	fc.mu.Unlock()

	fs.mu.Lock()
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			k := requestKey(req.Version, rt.Topic, rt.TopicID, rp.Partition)
			fp := fs.parts[k]
			if fp == nil {
				fp = &Part{Key: k, Name: resolve(k)}
				fs.parts[k] = fp
				fs.order = append(fs.order, fp)
			}
			fp.Offset, fp.MaxBytes, fp.LeaderEpoch = rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch
		}
	}
	forgot := false
	for _, ft := range req.ForgottenTopics {
		for _, p := range ft.Partitions {
			k := requestKey(req.Version, ft.Topic, ft.TopicID, p)
			if _, ok := fs.parts[k]; ok {
				delete(fs.parts, k)
				forgot = true
			}
		}
	}
	if forgot {
		kept := fs.order[:0]
		for _, fp := range fs.order {
			if fs.parts[fp.Key] == fp {
				kept = append(kept, fp)
			}
		}
		clear(fs.order[len(kept):])
		fs.order = kept
	}
	n := len(fs.parts)
	fc.mu.Lock()
	if !fs.gone {
		fc.total += n - fs.size
		fs.size = n
		if n > maxPartsPerSession {
			fc.removeLocked(fs) // serves this request, then is gone
		} else {
			fc.evictLocked(fs)
		}
	}
	fc.mu.Unlock()
	return fs, true, 0
}

// create makes a session of a full request's partitions, locked; nil if
// it is too large to keep.
func (fc *Cache) create(req *kmsg.FetchRequest, resolve func(Key) string) *Session {
	fs := &Session{parts: map[Key]*Part{}}
	for _, fp := range RequestParts(req, resolve) {
		if _, dup := fs.parts[fp.Key]; !dup {
			fs.parts[fp.Key] = fp
			fs.order = append(fs.order, fp)
		}
	}
	if len(fs.parts) > maxPartsPerSession {
		return nil
	}
	fs.mu.Lock()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for {
		fs.id = rand.Int32N(math.MaxInt32) + 1
		if fc.sessions[fs.id] == nil {
			break
		}
	}
	fs.epoch = 1
	fs.size = len(fs.parts)
	fs.elem = fc.lru.PushFront(fs)
	fc.sessions[fs.id] = fs
	fc.total += fs.size
	fc.evictLocked(fs)
	return fs
}

// evictLocked evicts the least recently used sessions other than keep
// while the cache is over its bounds.
func (fc *Cache) evictLocked(keep *Session) {
	for len(fc.sessions) > maxFetchSessions || fc.total > maxFetchSessionParts {
		e := fc.lru.Back()
		if e == nil {
			return
		}
		victim := e.Value.(*Session)
		if victim == keep {
			if e = e.Prev(); e == nil {
				return
			}
			victim = e.Value.(*Session)
		}
		fc.removeLocked(victim)
	}
}

// requestKey is the key of a partition named in a request.
func requestKey(version int16, topic string, id [16]byte, p int32) Key {
	if version >= 13 {
		return Key{ID: id, Partition: p}
	}
	return Key{Topic: topic, Partition: p}
}

// RequestParts lists a full request's partitions (a sessionless fetch).
func RequestParts(req *kmsg.FetchRequest, resolve func(Key) string) []*Part {
	var out []*Part
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			k := requestKey(req.Version, rt.Topic, rt.TopicID, rp.Partition)
			out = append(out, &Part{Key: k, Name: resolve(k), Offset: rp.FetchOffset,
				MaxBytes: rp.PartitionMaxBytes, LeaderEpoch: rp.CurrentLeaderEpoch})
		}
	}
	return out
}

// ID returns the session's id.
func (fs *Session) ID() int32 { return fs.id }

// Parts returns the session's partitions in the order responses list them.
// Valid while the session is locked (Begin).
func (fs *Session) Parts() []*Part { return fs.order }

// Unlock releases the session Begin returned.
func (fs *Session) Unlock() { fs.mu.Unlock() }

// Len returns the number of sessions.
func (fc *Cache) Len() int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return len(fc.sessions)
}

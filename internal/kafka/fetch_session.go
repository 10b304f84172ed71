package kafka

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

// fetchKey names a partition as the request does: by topic name up to
// v12, by topic id from v13.
type fetchKey struct {
	topic     string
	id        [16]byte
	partition int32
}

// fetchPart is a partition to fetch: from the request, or from a session.
type fetchPart struct {
	key         fetchKey
	name        string // the topic's name; "" if its id is unknown
	offset      int64
	maxBytes    int32
	leaderEpoch int32
	// What the last response told the client (sessions only).
	sent           bool
	hw, lso, start int64
}

// fetchSession is one incremental fetch session.
type fetchSession struct {
	id int32
	mu sync.Mutex // held by the fetch using the session

	// Guarded by mu.
	parts map[fetchKey]*fetchPart
	order []*fetchPart // the order responses list partitions in

	// Guarded by the cache's mu.
	epoch int32 // the epoch the next request must carry
	size  int   // partitions, as last accounted
	elem  *list.Element
	gone  bool // evicted or closed
}

// fetchSessionCache holds incremental fetch sessions (KIP-227).
type fetchSessionCache struct {
	mu       sync.Mutex
	sessions map[int32]*fetchSession
	lru      *list.List // of *fetchSession, most recently used first
	total    int        // partitions over all sessions
}

func newFetchSessionCache() *fetchSessionCache {
	return &fetchSessionCache{sessions: map[int32]*fetchSession{}, lru: list.New()}
}

func nextSessionEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// removeLocked drops a session from the cache.
func (fc *fetchSessionCache) removeLocked(fs *fetchSession) {
	if fs.gone {
		return
	}
	fs.gone = true
	delete(fc.sessions, fs.id)
	fc.lru.Remove(fs.elem)
	fc.total -= fs.size
}

// begin resolves a request's session. It returns the session, locked, and
// whether the request is incremental; or no session (a sessionless fetch);
// or a top-level error code.
func (fc *fetchSessionCache) begin(req *kmsg.FetchRequest, resolve func(fetchKey) string) (*fetchSession, bool, int16) {
	if req.Version < 7 {
		return nil, false, 0
	}
	fc.mu.Lock()
	var fs *fetchSession
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
				fp = &fetchPart{key: k, name: resolve(k)}
				fs.parts[k] = fp
				fs.order = append(fs.order, fp)
			}
			fp.offset, fp.maxBytes, fp.leaderEpoch = rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch
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
			if fs.parts[fp.key] == fp {
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
func (fc *fetchSessionCache) create(req *kmsg.FetchRequest, resolve func(fetchKey) string) *fetchSession {
	fs := &fetchSession{parts: map[fetchKey]*fetchPart{}}
	for _, fp := range requestParts(req, resolve) {
		if _, dup := fs.parts[fp.key]; !dup {
			fs.parts[fp.key] = fp
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
func (fc *fetchSessionCache) evictLocked(keep *fetchSession) {
	for len(fc.sessions) > maxFetchSessions || fc.total > maxFetchSessionParts {
		e := fc.lru.Back()
		if e == nil {
			return
		}
		victim := e.Value.(*fetchSession)
		if victim == keep {
			if e = e.Prev(); e == nil {
				return
			}
			victim = e.Value.(*fetchSession)
		}
		fc.removeLocked(victim)
	}
}

// requestKey is the key of a partition named in a request.
func requestKey(version int16, topic string, id [16]byte, p int32) fetchKey {
	if version >= 13 {
		return fetchKey{id: id, partition: p}
	}
	return fetchKey{topic: topic, partition: p}
}

// requestParts lists a full request's partitions.
func requestParts(req *kmsg.FetchRequest, resolve func(fetchKey) string) []*fetchPart {
	var out []*fetchPart
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			k := requestKey(req.Version, rt.Topic, rt.TopicID, rp.Partition)
			out = append(out, &fetchPart{key: k, name: resolve(k), offset: rp.FetchOffset,
				maxBytes: rp.PartitionMaxBytes, leaderEpoch: rp.CurrentLeaderEpoch})
		}
	}
	return out
}

// Len returns the number of sessions (tests).
func (fc *fetchSessionCache) Len() int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return len(fc.sessions)
}

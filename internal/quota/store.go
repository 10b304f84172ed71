// Package quota is Spool's client quotas: per principal, a producer byte
// rate, a consumer byte rate and a request rate, set for a user or as the
// default of every user (Kafka's <default> user entity), kept in the
// broker's replicated "quota" space (so a cluster's metadata group orders
// and replicates them with the catalog), and enforced on each node by a
// Limiter of token buckets.
//
// Kafka's request quota is a percentage of broker thread time
// (request_percentage), which means nothing to a server without Kafka's
// thread pools; Spool limits requests per second instead (request_rate),
// which clients can reason about. Quotas apply per node, as Kafka's do
// per broker.
package quota

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/jsonhttp"
)

// Bounds.
const (
	MaxNameBytes = 256
	// MaxRate bounds a quota's value (bytes or requests per second).
	MaxRate = 1e15
)

// Entity is whom a quota is set for: a user, or the default of every user.
type Entity struct {
	User    string `json:"user,omitempty"`
	Default bool   `json:"default,omitempty"`
}

// String names the entity as Kafka's tools do: user=alice, user=<default>.
func (e Entity) String() string {
	if e.Default {
		return "user=<default>"
	}
	return "user=" + e.User
}

// key is the entity's record key in the space.
func (e Entity) key() string {
	if e.Default {
		return defaultKey
	}
	return userPrefix + e.User
}

// Check checks the entity: the default, or a user name of 1 to 256 bytes
// of printable UTF-8 (a principal may be a certificate's subject, which
// users' names need not be).
func (e Entity) Check() error {
	if e.Default {
		if e.User != "" {
			return errs.New(errs.InvalidArgument, "a quota is for a user or the default, not both")
		}
		return nil
	}
	if e.User == "" || len(e.User) > MaxNameBytes || !utf8.ValidString(e.User) {
		return errs.New(errs.InvalidArgument, "a quota's user has 1 to %d bytes of UTF-8", MaxNameBytes)
	}
	for _, c := range e.User {
		if !unicode.IsPrint(c) {
			return errs.New(errs.InvalidArgument, "user %q: a quota's user has printable characters only", e.User)
		}
	}
	return nil
}

// Quota is an entity's quotas: the keys it sets (0: unset, the default's
// applies).
type Quota struct {
	Entity
	ProducerByteRate float64 `json:"producer_byte_rate,omitempty"`
	ConsumerByteRate float64 `json:"consumer_byte_rate,omitempty"`
	RequestRate      float64 `json:"request_rate,omitempty"`
}

func (q *Quota) rates() rates { return rates{q.ProducerByteRate, q.ConsumerByteRate, q.RequestRate} }

func (q *Quota) setRates(r rates) {
	q.ProducerByteRate, q.ConsumerByteRate, q.RequestRate = r[Produce], r[Fetch], r[Request]
}

// Values returns the keys the quota sets and their values, in key order.
func (q Quota) Values() map[string]float64 {
	out := map[string]float64{}
	for _, k := range Kinds() {
		if v := q.rates()[k]; v > 0 {
			out[k.Key()] = v
		}
	}
	return out
}

// Record keys in the "quota" space (docs/format/state.md).
const (
	userPrefix = "u/" // u/<name>: a user's quotas
	defaultKey = "d"  // the default's
)

// Causes of refused changes (errors.Is).
var ErrNotFound = jsonhttp.ErrNotFound

// Config configures a Store.
type Config struct {
	// Space is the broker's "quota" space.
	Space *broker.Space
	// Clock is the limiter's; nil: the wall clock.
	Clock clock.Clock
}

// Store is the quotas of one node and their limiter.
type Store struct {
	sp  *broker.Space
	lim *Limiter

	mu     sync.RWMutex
	quotas map[string]Quota // by record key; guarded by mu, changed only by ApplySpace's done
}

// New loads the quotas from their space, makes the store the space's
// applier, and puts them in force.
func New(cfg Config) (*Store, error) {
	s := &Store{sp: cfg.Space, lim: NewLimiter(cfg.Clock)}
	if err := s.reload(); err != nil {
		return nil, err
	}
	s.sp.SetApplier(s)
	return s, nil
}

// Limiter returns the store's limiter: the quotas in force.
func (s *Store) Limiter() *Limiter { return s.lim }

func (s *Store) reload() error {
	qs := map[string]Quota{}
	err := s.sp.Scan(nil, func(k, v []byte) error {
		var q Quota
		if err := json.Unmarshal(v, &q); err != nil {
			return fmt.Errorf("quota record %q: %w", k, err)
		}
		qs[string(k)] = q
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.quotas = qs
	s.publish()
	s.mu.Unlock()
	return nil
}

// publish puts s.quotas in force; s.mu is held.
func (s *Store) publish() {
	t := &table{users: map[string]rates{}}
	for _, q := range s.quotas {
		if q.Default {
			t.def = q.rates()
		} else {
			t.users[q.User] = q.rates()
		}
	}
	s.lim.set(t)
}

// SpaceRestored implements broker.SpaceApplier.
func (s *Store) SpaceRestored() error { return s.reload() }

// List returns every entity's quotas: the default first, then users by
// name.
func (s *Store) List() []Quota {
	s.mu.RLock()
	out := make([]Quota, 0, len(s.quotas))
	for _, q := range s.quotas {
		out = append(out, q)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Quota) int {
		if a.Default != b.Default {
			if a.Default {
				return -1
			}
			return 1
		}
		return strings.Compare(a.User, b.User)
	})
	return out
}

// Get returns an entity's quotas.
func (s *Store) Get(e Entity) (Quota, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	q, ok := s.quotas[e.key()]
	return q, ok
}

// CheckValue checks a quota key and its value (for set).
func CheckValue(key string, v float64) error {
	if _, ok := KindOfKey(key); !ok {
		return unknownKey(key)
	}
	if math.IsNaN(v) || v <= 0 || v > MaxRate {
		return errs.New(errs.InvalidArgument, "quota %s: %v is not a rate in (0, %g] per second", key, v, float64(MaxRate))
	}
	return nil
}

func unknownKey(key string) error {
	if key == "request_percentage" {
		return errs.New(errs.InvalidArgument, "quota key request_percentage is not supported: Spool limits requests per second (request_rate)")
	}
	return errs.New(errs.InvalidArgument, "unknown quota key %q (producer_byte_rate, consumer_byte_rate, request_rate)", key)
}

// CheckAlter checks an alteration without making it (Kafka's
// validate_only).
func CheckAlter(e Entity, set map[string]float64, remove []string) error {
	if err := e.Check(); err != nil {
		return err
	}
	for k, v := range set {
		if err := CheckValue(k, v); err != nil {
			return err
		}
	}
	for _, k := range remove {
		if _, ok := KindOfKey(k); !ok {
			return unknownKey(k)
		}
		if _, ok := set[k]; ok {
			return errs.New(errs.InvalidArgument, "quota %s is both set and removed", k)
		}
	}
	return nil
}

// Alter sets and removes an entity's quota keys in one change; an entity
// left without a key has no quota record.
func (s *Store) Alter(e Entity, set map[string]float64, remove []string) error {
	if err := CheckAlter(e, set, remove); err != nil {
		return err
	}
	return s.decide(change{Op: opAlter, Entity: e, Set: set, Remove: remove})
}

// Delete removes every quota of an entity.
func (s *Store) Delete(e Entity) error {
	if err := e.Check(); err != nil {
		return err
	}
	return s.decide(change{Op: opDelete, Entity: e})
}

package acl

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
)

// Record keys in the "acl" space (docs/format/state.md): r/<id>, a rule,
// its id the first 16 bytes of the SHA-256 of its JSON, in hex — the same
// rule added twice is one record.
const rulePrefix = "r/"

// Config configures a Store.
type Config struct {
	// Space is the broker's "acl" space.
	Space *broker.Space
	// Enabled turns authorization on (auth.authorization): Authorizer
	// returns nil otherwise.
	Enabled bool
	// SuperUsers are principals allowed everything (auth.super-users).
	SuperUsers []string
}

// snapshot is the rules at one moment; a change replaces it whole.
type snapshot struct {
	rules []Rule
	ids   []string // ids[i] is rules[i]'s record id
	gen   uint64
}

// Store keeps the rules of one node.
type Store struct {
	sp   *broker.Space
	cfg  Config
	snap atomic.Pointer[snapshot]
	mu   sync.Mutex // orders replacements of snap (ApplySpace's done, reload)
	az   *Authorizer
}

// New loads the rules from their space and makes the store the space's
// applier.
func New(cfg Config) (*Store, error) {
	s := &Store{sp: cfg.Space, cfg: cfg}
	s.snap.Store(&snapshot{})
	if err := s.reload(); err != nil {
		return nil, err
	}
	if cfg.Enabled {
		s.az = &Authorizer{store: s, superUsers: map[string]bool{}}
		for _, u := range cfg.SuperUsers {
			s.az.superUsers[strings.TrimPrefix(u, "User:")] = true
		}
	}
	s.sp.SetApplier(s)
	return s, nil
}

// Authorizer returns the store's authorizer: nil (everything allowed)
// unless authorization is enabled.
func (s *Store) Authorizer() *Authorizer {
	if s == nil {
		return nil
	}
	return s.az
}

func ruleID(r *Rule) string {
	data, _ := json.Marshal(r)
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:16])
}

func (s *Store) reload() error {
	var rules []Rule
	var ids []string
	err := s.sp.Scan([]byte(rulePrefix), func(k, v []byte) error {
		var r Rule
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("acl record %q: %w", k, err)
		}
		rules = append(rules, r)
		ids = append(ids, string(k[len(rulePrefix):]))
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap.Store(&snapshot{rules: rules, ids: ids, gen: s.snap.Load().gen + 1})
	return nil
}

// SpaceRestored implements broker.SpaceApplier.
func (s *Store) SpaceRestored() error { return s.reload() }

// Rules lists the rules the filter selects, sorted.
func (s *Store) Rules(f Filter) []Rule {
	sn := s.snap.Load()
	var out []Rule
	for i := range sn.rules {
		if f.Matches(&sn.rules[i]) {
			out = append(out, sn.rules[i])
		}
	}
	sortRules(out)
	return out
}

// change is a change of the rules, as Space.Decide orders it.
type change struct {
	Op    string   `json:"op"`
	Rules []Rule   `json:"rules,omitempty"` // add
	IDs   []string `json:"ids,omitempty"`   // delete
}

func (s *Store) decide(c change) error {
	data, err := json.Marshal(&c)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "encode acl change")
	}
	return s.sp.Decide(data)
}

// Add adds rules (normalized; an existing rule is kept once).
func (s *Store) Add(rules []Rule) ([]Rule, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	out := make([]Rule, len(rules))
	for i, r := range rules {
		n, err := r.Normalize()
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, s.decide(change{Op: "add", Rules: out})
}

// Delete deletes the rules any of the filters selects and returns, per
// filter, the rules it selected.
func (s *Store) Delete(filters []Filter) ([][]Rule, error) {
	sn := s.snap.Load()
	per := make([][]Rule, len(filters))
	var ids []string
	seen := map[string]bool{}
	for fi := range filters {
		for i := range sn.rules {
			if filters[fi].Matches(&sn.rules[i]) {
				per[fi] = append(per[fi], sn.rules[i])
				if !seen[sn.ids[i]] {
					seen[sn.ids[i]] = true
					ids = append(ids, sn.ids[i])
				}
			}
		}
		sortRules(per[fi])
	}
	if len(ids) == 0 {
		return per, nil
	}
	return per, s.decide(change{Op: "delete", IDs: ids})
}

// ApplySpace implements broker.SpaceApplier: the same on every node, from
// the change and the records alone.
func (s *Store) ApplySpace(data []byte) ([]broker.Record, func(), error) {
	var c change
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, nil, errs.New(errs.InvalidArgument, "acl change: %v", err)
	}
	sn := s.snap.Load()
	have := make(map[string]int, len(sn.ids))
	for i, id := range sn.ids {
		have[id] = i
	}
	switch c.Op {
	case "add":
		var recs []broker.Record
		var add []Rule
		var addIDs []string
		for _, r := range c.Rules {
			n, err := r.Normalize()
			if err != nil || n != r {
				return nil, nil, errs.New(errs.InvalidArgument, "acl change: a rule that is not normalized")
			}
			id := ruleID(&r)
			if _, ok := have[id]; ok || slices.Contains(addIDs, id) {
				continue
			}
			v, _ := json.Marshal(&r)
			recs = append(recs, broker.Record{Key: []byte(rulePrefix + id), Value: v})
			add, addIDs = append(add, r), append(addIDs, id)
		}
		if len(sn.rules)+len(add) > MaxRules {
			return nil, nil, errs.New(errs.ResourceExhausted, "%d rules exist; at most %d are allowed", len(sn.rules), MaxRules)
		}
		return recs, func() { s.replace(add, addIDs, nil) }, nil
	case "delete":
		var recs []broker.Record
		gone := map[string]bool{}
		for _, id := range c.IDs {
			if _, ok := have[id]; ok && !gone[id] {
				gone[id] = true
				recs = append(recs, broker.Record{Key: []byte(rulePrefix + id)})
			}
		}
		return recs, func() { s.replace(nil, nil, gone) }, nil
	}
	return nil, nil, errs.New(errs.InvalidArgument, "unknown acl change %q", c.Op)
}

// replace makes a new snapshot: the old one's rules but those gone, then
// add.
func (s *Store) replace(add []Rule, addIDs []string, gone map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	nsn := &snapshot{gen: old.gen + 1}
	for i, id := range old.ids {
		if !gone[id] {
			nsn.rules, nsn.ids = append(nsn.rules, old.rules[i]), append(nsn.ids, id)
		}
	}
	nsn.rules, nsn.ids = append(nsn.rules, add...), append(nsn.ids, addIDs...)
	s.snap.Store(nsn)
}

package users

import (
	"encoding/json"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/jsonhttp"
)

// Record keys in the "auth" space (docs/format/state.md).
const (
	userPrefix = "u/" // u/<name>: a user
	keyPrefix  = "k/" // k/<id>: an API key
)

// Causes of refused changes (errors.Is).
var (
	ErrNotFound = jsonhttp.ErrNotFound
	ErrExists   = jsonhttp.ErrExists
)

// A change of the store, as Space.Decide orders it. Everything random
// (salts, key ids and secrets) and every time is chosen by the proposer
// and carried in the change, so applying is a function of the change and
// the records alone, the same on every node.
type change struct {
	Op           string    `json:"op"`
	Name         string    `json:"name,omitempty"` // delete-user: the user; revoke-key: the key's id
	User         *user     `json:"user,omitempty"` // add-user
	Key          *key      `json:"key,omitempty"`  // add-key
	RevokeOthers bool      `json:"revoke_others,omitempty"`
	Time         time.Time `json:"time,omitzero"` // add-key, revoke-key: when
}

const (
	opAddUser    = "add-user"
	opDeleteUser = "delete-user"
	opAddKey     = "add-key"
	opRevokeKey  = "revoke-key"
)

func (s *Store) decide(c change) error {
	data, err := json.Marshal(&c)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "encode auth change")
	}
	return s.sp.Decide(data)
}

func record(prefix, name string, v any) broker.Record {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs
	}
	return broker.Record{Key: []byte(prefix + name), Value: data}
}

// ApplySpace implements broker.SpaceApplier.
func (s *Store) ApplySpace(data []byte) ([]broker.Record, func(), error) {
	var c change
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, nil, errs.New(errs.InvalidArgument, "auth change: %v", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch c.Op {
	case opAddUser:
		u := c.User
		if u == nil || CheckName(u.Name) != nil {
			return nil, nil, errs.New(errs.InvalidArgument, "auth change: add-user without a valid user")
		}
		if err := checkCredentials(u); err != nil {
			return nil, nil, errs.New(errs.InvalidArgument, "auth change: add-user %q: %v", u.Name, err)
		}
		if s.users[u.Name] != nil {
			return nil, nil, errs.Wrap(errs.FailedPrecondition, ErrExists, "user %q", u.Name)
		}
		return []broker.Record{record(userPrefix, u.Name, u)}, func() {
			s.mu.Lock()
			s.users[u.Name] = u
			s.mu.Unlock()
		}, nil
	case opDeleteUser:
		if s.users[c.Name] == nil {
			return nil, nil, errs.Wrap(errs.FailedPrecondition, ErrNotFound, "user %q", c.Name)
		}
		recs := []broker.Record{{Key: []byte(userPrefix + c.Name)}}
		var ids []string
		for id, k := range s.keys {
			if k.User == c.Name {
				ids = append(ids, id)
				recs = append(recs, broker.Record{Key: []byte(keyPrefix + id)})
			}
		}
		return recs, func() {
			s.mu.Lock()
			delete(s.users, c.Name)
			for _, id := range ids {
				delete(s.keys, id)
			}
			s.mu.Unlock()
		}, nil
	case opAddKey:
		k := c.Key
		if k == nil || len(k.ID) != 2*idBytes || len(k.Hash) != 32 {
			return nil, nil, errs.New(errs.InvalidArgument, "auth change: add-key without a valid key")
		}
		if s.users[k.User] == nil {
			return nil, nil, errs.Wrap(errs.FailedPrecondition, ErrNotFound, "user %q", k.User)
		}
		if s.keys[k.ID] != nil {
			return nil, nil, errs.Wrap(errs.FailedPrecondition, ErrExists, "API key %s", k.ID)
		}
		recs := []broker.Record{record(keyPrefix, k.ID, k)}
		var revoked []*key
		n := 0
		for _, o := range s.keys {
			if o.User != k.User {
				continue
			}
			n++
			if c.RevokeOthers && o.Revoked.IsZero() {
				r := *o
				r.Revoked = c.Time
				revoked = append(revoked, &r)
				recs = append(recs, record(keyPrefix, r.ID, &r))
			}
		}
		if n >= MaxKeysPerUser && !c.RevokeOthers {
			return nil, nil, errs.New(errs.ResourceExhausted, "user %q has %d API keys, the most allowed: revoke or rotate", k.User, n)
		}
		return recs, func() {
			s.mu.Lock()
			s.keys[k.ID] = k
			for _, r := range revoked {
				s.keys[r.ID] = r
			}
			s.mu.Unlock()
		}, nil
	case opRevokeKey:
		o := s.keys[c.Name]
		if o == nil {
			return nil, nil, errs.Wrap(errs.FailedPrecondition, ErrNotFound, "API key %q", c.Name)
		}
		if !o.Revoked.IsZero() {
			return nil, nil, nil
		}
		r := *o
		r.Revoked = c.Time
		return []broker.Record{record(keyPrefix, r.ID, &r)}, func() {
			s.mu.Lock()
			s.keys[r.ID] = &r
			s.mu.Unlock()
		}, nil
	}
	return nil, nil, errs.New(errs.InvalidArgument, "unknown auth change %q", c.Op)
}

package quota

import (
	"encoding/json"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
)

// A change of the quotas, as Space.Decide orders it: applying it is a
// function of the change and the records alone, the same on every node.
type change struct {
	Op     string `json:"op"`
	Entity Entity `json:"entity"`
	// alter: the keys set and removed.
	Set    map[string]float64 `json:"set,omitempty"`
	Remove []string           `json:"remove,omitempty"`
}

const (
	opAlter  = "alter"
	opDelete = "delete"
)

func (s *Store) decide(c change) error {
	data, err := json.Marshal(&c)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "encode quota change")
	}
	return s.sp.Decide(data)
}

// ApplySpace implements broker.SpaceApplier.
func (s *Store) ApplySpace(data []byte) ([]broker.Record, func(), error) {
	var c change
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, nil, errs.New(errs.InvalidArgument, "quota change: %v", err)
	}
	key := c.Entity.key()
	s.mu.RLock()
	old, had := s.quotas[key]
	s.mu.RUnlock()
	var q Quota
	switch c.Op {
	case opAlter:
		if err := CheckAlter(c.Entity, c.Set, c.Remove); err != nil {
			return nil, nil, err
		}
		r := old.rates()
		for k, v := range c.Set {
			kind, _ := KindOfKey(k)
			r[kind] = v
		}
		for _, k := range c.Remove {
			kind, _ := KindOfKey(k)
			r[kind] = 0
		}
		q = Quota{Entity: c.Entity}
		q.setRates(r)
	case opDelete:
		if err := c.Entity.Check(); err != nil {
			return nil, nil, err
		}
		if !had {
			return nil, nil, errs.Wrap(errs.FailedPrecondition, ErrNotFound, "no quota for %s", c.Entity)
		}
	default:
		return nil, nil, errs.New(errs.InvalidArgument, "unknown quota change %q", c.Op)
	}
	if q.rates() == (rates{}) {
		if !had {
			return nil, nil, nil
		}
		return []broker.Record{{Key: []byte(key)}}, func() {
			s.mu.Lock()
			delete(s.quotas, key)
			s.publish()
			s.mu.Unlock()
		}, nil
	}
	v, err := json.Marshal(&q)
	if err != nil {
		return nil, nil, errs.Wrap(errs.Internal, err, "encode quota")
	}
	return []broker.Record{{Key: []byte(key), Value: v}}, func() {
		s.mu.Lock()
		s.quotas[key] = q
		s.publish()
		s.mu.Unlock()
	}, nil
}

package sreg

import (
	"encoding/json"
	"slices"

	"github.com/spoolmq/spool/internal/broker"
)

// A change of the registry, as Space.Decide orders it. Applying decides
// its outcome from the model alone, so every node reaches the same one;
// the checks that need parsing (compatibility) are made before
// proposing, against the model as of Seq, and a registration proposed
// after another change was applied is refused with errConflict and
// checked again.
type change struct {
	Op        string      `json:"op"`
	Seq       uint64      `json:"seq,omitempty"`
	Subject   string      `json:"subject,omitempty"`
	Schema    *stored     `json:"schema,omitempty"`
	ID        int         `json:"id,omitempty"`      // register: the id asked for (IMPORT mode)
	Version   int         `json:"version,omitempty"` // register (IMPORT mode), delete-version
	Permanent bool        `json:"permanent,omitempty"`
	Level     Level       `json:"compat,omitempty"`
	Mode      Mode        `json:"mode,omitempty"`
	Readers   ReaderCheck `json:"readers,omitempty"` // reader-check
	Topic     string      `json:"topic,omitempty"`   // reader
	Sub       string      `json:"sub,omitempty"`     // reader
}

const (
	opRegister      = "register"
	opDeleteSubject = "delete-subject"
	opDeleteVersion = "delete-version"
	opConfig        = "config"
	opMode          = "mode"
	opReaderCheck   = "reader-check"
	opReader        = "reader" // declare (with a subject) or remove a reader
)

// ApplySpace implements broker.SpaceApplier.
func (r *Registry) ApplySpace(data []byte) ([]broker.Record, func(), error) {
	var c change
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, nil, errorf(CodeInvalidRequest, "registry change: %v", err)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.m
	var (
		recs   []broker.Record
		mutate func()
		err    error
	)
	switch c.Op {
	case opRegister:
		recs, mutate, err = applyRegister(m, c)
	case opDeleteSubject:
		recs, mutate, err = r.applyDeleteSubject(m, c)
	case opDeleteVersion:
		recs, mutate, err = r.applyDeleteVersion(m, c)
	case opReader:
		recs, mutate, err = applyReader(m, c)
	case opConfig, opMode, opReaderCheck:
		recs, mutate = applySetting(m, c)
	default:
		err = errorf(CodeInvalidRequest, "unknown registry change %q", c.Op)
	}
	if err != nil || mutate == nil {
		return nil, nil, err
	}
	next := m.meta
	next.Seq++
	if c.Op == opRegister && c.Schema != nil && m.byIdent[c.Schema.identity()] == 0 {
		next.NextID = max(next.NextID, newID(m, c)+1)
	}
	switch {
	case c.Op == opConfig && c.Subject == "":
		next.Level = c.Level
		if next.Level == "" {
			next.Level = Backward
		}
	case c.Op == opMode && c.Subject == "":
		next.Mode = c.Mode
		if next.Mode == "" {
			next.Mode = ReadWrite
		}
	}
	recs = append(recs, broker.Record{Key: keyMeta, Value: mustJSON(next)})
	return recs, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		mutate()
		r.m.meta = next
		r.rebuildIndex(r.m)
	}, nil
}

// newID is the id a registration of a schema not yet stored gets.
func newID(m *model, c change) int {
	if c.ID > 0 {
		return c.ID
	}
	return m.meta.NextID
}

func applyRegister(m *model, c change) ([]broker.Record, func(), error) {
	if c.Schema == nil || c.Subject == "" {
		return nil, nil, errorf(CodeInvalidRequest, "registration without a subject or schema")
	}
	mode := m.mode(c.Subject)
	switch {
	case mode == ReadOnly:
		return nil, nil, errorf(CodeOperationNotPermitted, "Subject %s is in read-only mode", c.Subject)
	case mode != Import && (c.ID != 0 || c.Version != 0):
		return nil, nil, errorf(CodeOperationNotPermitted, "Registering a schema with a given id or version needs IMPORT mode")
	case mode != Import && c.Seq != m.meta.Seq:
		return nil, nil, errConflict
	}
	for _, ref := range c.Schema.Refs {
		if s := m.subjects[ref.Subject]; s == nil || s.find(ref.Version) == nil {
			return nil, nil, errorf(CodeInvalidSchema, "Invalid schema: reference %q to subject '%s' version %d does not exist", ref.Name, ref.Subject, ref.Version)
		}
	}
	ident := c.Schema.identity()
	s := m.subjects[c.Subject]
	if s != nil {
		for _, v := range s.live() {
			if m.schemas[v.ID].identity() == ident {
				return nil, nil, nil // already registered: nothing to do
			}
		}
	}
	id, known := m.byIdent[ident]
	switch {
	case known && c.ID != 0 && c.ID != id:
		return nil, nil, errorf(CodeInvalidSchema, "Invalid schema: it is registered with id %d, not %d", id, c.ID)
	case !known && c.ID != 0 && m.schemas[c.ID] != nil:
		return nil, nil, errorf(CodeInvalidSchema, "Invalid schema: id %d is another schema's", c.ID)
	case !known:
		id = newID(m, c)
	}
	next := 1
	if s != nil && len(s.versions) > 0 {
		next = s.versions[len(s.versions)-1].Version + 1
	}
	if c.Version != 0 {
		if c.Version < next {
			return nil, nil, errorf(CodeInvalidVersion, "The specified version '%d' is not valid: the subject has version %d", c.Version, next-1)
		}
		next = c.Version
	}
	v := &version{Version: next, ID: id}
	var recs []broker.Record
	sc := *c.Schema
	sc.ID = id
	if !known {
		recs = append(recs, broker.Record{Key: keyID(id), Value: mustJSON(&sc)})
	}
	recs = append(recs, broker.Record{Key: keySV(c.Subject, v.Version), Value: mustJSON(v)})
	return recs, func() {
		if !known {
			m.schemas[id] = &sc
			m.byIdent[ident] = id
		}
		sub := m.subject(c.Subject, true)
		sub.versions = append(sub.versions, v)
	}, nil
}

func (r *Registry) applyDeleteSubject(m *model, c change) ([]broker.Record, func(), error) {
	s := m.subjects[c.Subject]
	if s == nil || len(s.versions) == 0 {
		return nil, nil, subjectNotFound(c.Subject)
	}
	live := s.live()
	if !c.Permanent {
		if len(live) == 0 {
			return nil, nil, errorf(CodeSubjectSoftDeleted, "Subject '%s' was soft deleted. Set permanent=true to delete permanently", c.Subject)
		}
		for _, v := range live {
			if refs := m.referrers(c.Subject, v.Version, false); len(refs) > 0 {
				return nil, nil, errorf(CodeReferenceExists, "One or more references exist to the schema {subject=%s,version=%d}: ids %v", c.Subject, v.Version, refs)
			}
			if by := r.readBy(m, c.Subject, v.Version); by != "" {
				return nil, nil, errorf(CodeReferenceExists, "Subscription %s reads the schema {subject=%s,version=%d}: it declares it as its reader schema", by, c.Subject, v.Version)
			}
		}
		var recs []broker.Record
		for _, v := range live {
			recs = append(recs, broker.Record{Key: keySV(c.Subject, v.Version), Value: mustJSON(&version{ID: v.ID, Deleted: true})})
		}
		return recs, func() {
			for _, v := range live {
				v.Deleted = true
			}
		}, nil
	}
	if len(live) > 0 {
		return nil, nil, errorf(CodeSubjectNotSoftDeleted, "Subject '%s' was not deleted first before being permanently deleted", c.Subject)
	}
	for _, v := range s.versions {
		if refs := m.referrers(c.Subject, v.Version, true); len(refs) > 0 {
			return nil, nil, errorf(CodeReferenceExists, "One or more references exist to the schema {subject=%s,version=%d}: ids %v", c.Subject, v.Version, refs)
		}
	}
	return removeVersions(m, s, slices.Clone(s.versions))
}

func (r *Registry) applyDeleteVersion(m *model, c change) ([]broker.Record, func(), error) {
	s := m.subjects[c.Subject]
	if s == nil || len(s.versions) == 0 {
		return nil, nil, subjectNotFound(c.Subject)
	}
	v := s.find(c.Version)
	if v == nil {
		return nil, nil, versionNotFound(c.Subject, c.Version)
	}
	if !c.Permanent {
		if v.Deleted {
			return nil, nil, errorf(CodeVersionSoftDeleted, "Subject '%s' Version %d was soft deleted. Set permanent=true to delete permanently", c.Subject, c.Version)
		}
		if refs := m.referrers(c.Subject, v.Version, false); len(refs) > 0 {
			return nil, nil, errorf(CodeReferenceExists, "One or more references exist to the schema {subject=%s,version=%d}: ids %v", c.Subject, v.Version, refs)
		}
		if by := r.readBy(m, c.Subject, v.Version); by != "" {
			return nil, nil, errorf(CodeReferenceExists, "Subscription %s reads the schema {subject=%s,version=%d}: it declares it as its reader schema", by, c.Subject, v.Version)
		}
		rec := broker.Record{Key: keySV(c.Subject, v.Version), Value: mustJSON(&version{ID: v.ID, Deleted: true})}
		return []broker.Record{rec}, func() { v.Deleted = true }, nil
	}
	if !v.Deleted {
		return nil, nil, errorf(CodeVersionNotSoftDeleted, "Subject '%s' Version %d was not deleted first before being permanently deleted", c.Subject, c.Version)
	}
	if refs := m.referrers(c.Subject, v.Version, true); len(refs) > 0 {
		return nil, nil, errorf(CodeReferenceExists, "One or more references exist to the schema {subject=%s,version=%d}: ids %v", c.Subject, v.Version, refs)
	}
	return removeVersions(m, s, []*version{v})
}

// removeVersions deletes versions of s for good, and the schemas no
// other version holds.
func removeVersions(m *model, s *subject, gone []*version) ([]broker.Record, func(), error) {
	var recs []broker.Record
	holders := map[int]int{} // id → versions holding it, everywhere
	for _, sub := range m.subjects {
		for _, v := range sub.versions {
			holders[v.ID]++
		}
	}
	var dropped []int
	for _, v := range gone {
		recs = append(recs, broker.Record{Key: keySV(s.name, v.Version)})
		if holders[v.ID]--; holders[v.ID] == 0 {
			dropped = append(dropped, v.ID)
			recs = append(recs, broker.Record{Key: keyID(v.ID)})
		}
	}
	return recs, func() {
		s.versions = slices.DeleteFunc(s.versions, func(v *version) bool { return slices.Contains(gone, v) })
		for _, id := range dropped {
			delete(m.byIdent, m.schemas[id].identity())
			delete(m.schemas, id)
		}
		m.dropIfEmpty(s)
	}, nil
}

func applySetting(m *model, c change) ([]broker.Record, func()) {
	if c.Subject == "" {
		return nil, func() {} // the meta record carries it
	}
	cur := m.subjects[c.Subject]
	cfg := subjectConfig{}
	if cur != nil {
		cfg = subjectConfig{Level: cur.level, Mode: cur.mode, Readers: cur.readers}
	}
	switch c.Op {
	case opConfig:
		cfg.Level = c.Level
	case opMode:
		cfg.Mode = c.Mode
	default:
		cfg.Readers = c.Readers
	}
	rec := broker.Record{Key: keyCfg(c.Subject)}
	if cfg != (subjectConfig{}) {
		rec.Value = mustJSON(&cfg)
	}
	return []broker.Record{rec}, func() {
		s := m.subject(c.Subject, true)
		s.level, s.mode, s.readers = cfg.Level, cfg.Mode, cfg.Readers
		m.dropIfEmpty(s)
	}
}

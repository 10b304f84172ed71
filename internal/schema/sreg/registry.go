// Package sreg is Spool's schema registry: subjects' versions of
// schemas with global ids, compatibility levels and modes, kept in the
// broker's replicated "schema" space (so a cluster's metadata group
// orders and replicates them like the catalog), served over the
// Confluent Schema Registry REST API (http.go), and used to validate
// payloads on publish (validate.go).
package sreg

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/schema"
)

// Bounds on what the registry accepts.
const (
	MaxSchemaBytes  = 1 << 20 // a schema's text
	MaxSubjectBytes = 255     // a subject's name
	MaxRefs         = 64      // a schema's direct references
)

// Config configures a Registry.
type Config struct {
	// Space is the broker's "schema" space.
	Space *broker.Space
	// Formats parse each schema type.
	Formats map[schema.Type]schema.Format
	Logger  *slog.Logger
	// Subscriptions reports whether a subscription exists (for declared
	// readers); nil: every one does.
	Subscriptions func(topic, sub string) bool
}

// Registry is the schema registry of one node.
type Registry struct {
	sp      *broker.Space
	formats map[schema.Type]schema.Format
	logger  *slog.Logger
	subs    func(topic, sub string) bool
	allowed allowedHook

	mu sync.RWMutex
	m  *model // guarded by mu; changed only by ApplySpace's done

	parsedMu sync.Mutex
	parsed   map[int]schema.Schema // id → parsed schema; ids never change meaning

	byIDCache sync.Map // id → the encoded answer of GET /schemas/ids/{id} (http.go)

	index  atomic.Pointer[valIndex] // for validation on publish (validate.go)
	lazyMu sync.Mutex
	lazies map[int]*lazySchema // guarded by lazyMu

	rates rateSampler // producing rates, for the catalog (catalog.go)
}

// New loads the registry from its space and makes it the space's applier.
func New(cfg Config) (*Registry, error) {
	r := &Registry{sp: cfg.Space, formats: cfg.Formats, logger: cfg.Logger, subs: cfg.Subscriptions, parsed: map[int]schema.Schema{},
		lazies: map[int]*lazySchema{}}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	if err := r.reload(); err != nil {
		return nil, err
	}
	r.sp.SetApplier(r)
	return r, nil
}

func (r *Registry) reload() error {
	m := newModel()
	err := r.sp.Scan(nil, func(k, v []byte) error {
		if err := m.load(k, v); err != nil {
			return fmt.Errorf("schema registry record %q: %w", k, err)
		}
		return nil
	})
	if err == nil {
		err = m.check()
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.m = m
	r.rebuildIndex(m)
	r.mu.Unlock()
	return nil
}

// SpaceRestored implements broker.SpaceApplier.
func (r *Registry) SpaceRestored() error { return r.reload() }

// decide proposes a change and waits for its outcome here.
func (r *Registry) decide(c change) error {
	return r.sp.Decide(mustJSON(&c))
}

// SchemaInput is a schema as a client gives it.
type SchemaInput struct {
	Type schema.Type
	Text string
	Refs []Ref
}

// prepare checks and parses an input schema, resolving its references
// against m; it returns the schema to store and the parsed schema.
func (r *Registry) prepare(m *model, in SchemaInput) (*stored, schema.Schema, error) {
	if len(in.Text) == 0 {
		return nil, nil, errorf(CodeInvalidSchema, "Invalid schema: empty schema")
	}
	if len(in.Text) > MaxSchemaBytes {
		return nil, nil, errorf(CodeInvalidSchema, "Invalid schema: %d bytes, more than the %d allowed", len(in.Text), MaxSchemaBytes)
	}
	if len(in.Refs) > MaxRefs {
		return nil, nil, errorf(CodeInvalidSchema, "Invalid schema: %d references, more than the %d allowed", len(in.Refs), MaxRefs)
	}
	f := r.formats[in.Type]
	if f == nil {
		return nil, nil, errorf(CodeInvalidSchema, "Invalid schema: unsupported schema type %q", in.Type)
	}
	deps, err := r.deps(m, in.Refs)
	if err != nil {
		return nil, nil, err
	}
	p, err := f.Parse(in.Text, deps)
	if err != nil {
		return nil, nil, errorf(CodeInvalidSchema, "Invalid schema: %v", err)
	}
	return &stored{Type: in.Type, Text: in.Text, Refs: slices.Clone(in.Refs), Canonical: p.Canonical()}, p, nil
}

// deps resolves references, transitively, dependencies first.
func (r *Registry) deps(m *model, refs []Ref) ([]schema.Dep, error) {
	var out []schema.Dep
	seen := map[string]bool{} // subject\0version done
	var walk func(refs []Ref, depth int) error
	walk = func(refs []Ref, depth int) error {
		if depth > schema.MaxDepth {
			return errorf(CodeInvalidSchema, "Invalid schema: references nest deeper than %d", schema.MaxDepth)
		}
		for _, ref := range refs {
			if ref.Name == "" || ref.Subject == "" {
				return errorf(CodeInvalidSchema, "Invalid schema: a reference needs a name, a subject and a version")
			}
			v, err := m.resolve(ref.Subject, ref.Version, true)
			if err != nil {
				return errorf(CodeInvalidSchema, "Invalid schema: reference %q: %s", ref.Name, err.(*Error).Message)
			}
			key := fmt.Sprintf("%s\x00%d", ref.Subject, v.Version)
			if seen[key] {
				continue
			}
			seen[key] = true
			s := m.schemas[v.ID]
			if err := walk(s.Refs, depth+1); err != nil {
				return err
			}
			if len(out) >= schema.MaxDeps {
				return errorf(CodeInvalidSchema, "Invalid schema: more than %d referenced schemas", schema.MaxDeps)
			}
			out = append(out, schema.Dep{Name: ref.Name, Text: s.Text})
		}
		return nil
	}
	return out, walk(refs, 0)
}

// resolve finds a subject's version (-1: the latest live one); a soft-
// deleted version only with deleted.
func (m *model) resolve(subj string, v int, deleted bool) (*version, error) {
	s := m.subjects[subj]
	if s == nil || len(s.versions) == 0 {
		return nil, subjectNotFound(subj)
	}
	if v == -1 {
		if l := s.latestLive(); l != nil {
			return l, nil
		}
		if deleted {
			return s.versions[len(s.versions)-1], nil
		}
		return nil, subjectNotFound(subj)
	}
	ver := s.find(v)
	if ver == nil || (ver.Deleted && !deleted) {
		return nil, versionNotFound(subj, v)
	}
	return ver, nil
}

// parsedByID returns the parsed schema of a stored id.
func (r *Registry) parsedByID(m *model, id int) (schema.Schema, error) {
	r.parsedMu.Lock()
	p := r.parsed[id]
	r.parsedMu.Unlock()
	if p != nil {
		return p, nil
	}
	s := m.schemas[id]
	if s == nil {
		return nil, schemaNotFound()
	}
	f := r.formats[s.Type]
	if f == nil {
		return nil, errorf(CodeInvalidSchema, "schema %d has unsupported type %s", id, s.Type)
	}
	deps, err := r.deps(m, s.Refs)
	if err != nil {
		return nil, err
	}
	p, err = f.Parse(s.Text, deps)
	if err != nil {
		return nil, errorf(CodeStoreError, "stored schema %d no longer parses: %v", id, err)
	}
	r.parsedMu.Lock()
	r.parsed[id] = p
	r.parsedMu.Unlock()
	return p, nil
}

// Registered is a subject's version of a schema.
type Registered struct {
	Subject string
	Version int
	ID      int
	Type    schema.Type
	Text    string
	Refs    []Ref
}

func registered(m *model, subj string, v *version) Registered {
	s := m.schemas[v.ID]
	return Registered{Subject: subj, Version: v.Version, ID: v.ID, Type: s.Type, Text: s.Text, Refs: s.Refs}
}

// Register registers a schema under a subject and returns its id. A
// schema the subject already has (the same canonical form and
// references) keeps its id and version. id and version, when not 0, ask
// for them (IMPORT mode).
func (r *Registry) Register(subj string, in SchemaInput, id, ver int) (int, error) {
	got, _, err := r.register(subj, in, id, ver)
	return got, err
}

// register is Register, also returning the warnings of a registration
// that declared readers cannot read in a subject whose reader check is
// WARN.
func (r *Registry) register(subj string, in SchemaInput, id, ver int) (int, []string, error) {
	if err := checkSubject(subj); err != nil {
		return 0, nil, err
	}
	for range 16 {
		r.mu.RLock()
		m := r.m
		st, p, err := r.prepare(m, in)
		if err != nil {
			r.mu.RUnlock()
			return 0, nil, err
		}
		if got, ok := m.lookup(subj, st.identity(), false); ok {
			r.mu.RUnlock()
			return got.ID, nil, nil
		}
		seq := m.meta.Seq
		var issues, readerIssues []string
		if m.mode(subj) != Import {
			issues, err = r.checkLevel(m, subj, p, st.Type, m.level(subj), -1)
			if err == nil {
				readerIssues, err = r.checkReaders(m, subj, p, st.Type)
			}
		}
		warnOnly := m.subjects[subj] != nil && m.subjects[subj].readers == ReaderWarn
		r.mu.RUnlock()
		if err != nil {
			return 0, nil, err
		}
		var warnings []string
		if warnOnly {
			warnings, readerIssues = readerIssues, nil
		}
		if all := append(issues, readerIssues...); len(all) > 0 {
			return 0, nil, errorf(CodeIncompatible, "Schema being registered is incompatible with an earlier schema for subject \"%s\", details: [%s]", subj, strings.Join(all, "; "))
		}
		err = r.decide(change{Op: opRegister, Seq: seq, Subject: subj, Schema: st, ID: id, Version: ver})
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return 0, nil, asError(err)
		}
		r.mu.RLock()
		got, ok := r.m.lookup(subj, st.identity(), false)
		r.mu.RUnlock()
		if !ok {
			continue // deleted again meanwhile
		}
		for _, w := range warnings {
			r.logger.Warn("schema registered that a declared reader cannot read", "subject", subj, "version", got.Version, "issue", w)
		}
		return got.ID, warnings, nil
	}
	return 0, nil, errorf(CodeOperationTimeout, "Register operation timed out: the registry kept changing")
}

// lookup finds the latest version of subj holding the schema of identity
// ident.
func (m *model) lookup(subj, ident string, deleted bool) (Registered, bool) {
	s := m.subjects[subj]
	if s == nil {
		return Registered{}, false
	}
	for i := len(s.versions) - 1; i >= 0; i-- {
		v := s.versions[i]
		if (!v.Deleted || deleted) && m.schemas[v.ID].identity() == ident {
			return registered(m, subj, v), true
		}
	}
	return Registered{}, false
}

// Lookup finds the version of subj that holds a schema.
func (r *Registry) Lookup(subj string, in SchemaInput, deleted bool) (Registered, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.m
	if s := m.subjects[subj]; s == nil || len(s.versions) == 0 {
		return Registered{}, subjectNotFound(subj)
	}
	st, _, err := r.prepare(m, in)
	if err != nil {
		return Registered{}, err
	}
	got, ok := m.lookup(subj, st.identity(), deleted)
	if !ok {
		return Registered{}, schemaNotFound()
	}
	return got, nil
}

func checkSubject(s string) error {
	switch {
	case s == "":
		return errorf(CodeInvalidRequest, "Invalid subject: empty")
	case len(s) > MaxSubjectBytes:
		return errorf(CodeInvalidRequest, "Invalid subject: longer than %d bytes", MaxSubjectBytes)
	case strings.ContainsRune(s, 0):
		return errorf(CodeInvalidRequest, "Invalid subject: contains a NUL character")
	}
	return nil
}

// ByID returns a schema by id; with subject, only if that subject holds
// it.
func (r *Registry) ByID(id int, subj string) (Registered, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.m
	s := m.schemas[id]
	if s == nil {
		return Registered{}, errorf(CodeSchemaNotFound, "Schema %d not found", id)
	}
	if subj != "" && !slices.ContainsFunc(m.versionsOf(id), func(sv SubjectVersion) bool { return sv.Subject == subj }) {
		return Registered{}, errorf(CodeSchemaNotFound, "Schema %d not found in subject '%s'", id, subj)
	}
	return Registered{ID: id, Type: s.Type, Text: s.Text, Refs: s.Refs}, nil
}

// hasID reports whether schema id exists.
func (r *Registry) hasID(id int) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m.schemas[id] != nil
}

// SubjectVersion names a subject's version.
type SubjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

func (m *model) versionsOf(id int) []SubjectVersion {
	var out []SubjectVersion
	for _, s := range m.subjects {
		for _, v := range s.versions {
			if v.ID == id {
				out = append(out, SubjectVersion{s.name, v.Version})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Subject != out[j].Subject {
			return out[i].Subject < out[j].Subject
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// VersionsOfID lists the subject versions that hold schema id (soft-
// deleted ones too with deleted).
func (r *Registry) VersionsOfID(id int, deleted bool) ([]SubjectVersion, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.m
	if m.schemas[id] == nil {
		return nil, errorf(CodeSchemaNotFound, "Schema %d not found", id)
	}
	out := []SubjectVersion{}
	for _, sv := range m.versionsOf(id) {
		if v := m.subjects[sv.Subject].find(sv.Version); !v.Deleted || deleted {
			out = append(out, sv)
		}
	}
	return out, nil
}

// Subjects lists the subjects with a live version (or any, with
// deleted) whose names start with prefix.
func (r *Registry) Subjects(prefix string, deleted bool) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []string{}
	for name, s := range r.m.subjects {
		if !strings.HasPrefix(name, prefix) || len(s.versions) == 0 {
			continue
		}
		if deleted || len(s.live()) > 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Versions lists a subject's versions.
func (r *Registry) Versions(subj string, deleted bool) ([]int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.m.subjects[subj]
	out := []int{}
	if s != nil {
		for _, v := range s.versions {
			if !v.Deleted || deleted {
				out = append(out, v.Version)
			}
		}
	}
	if len(out) == 0 {
		return nil, subjectNotFound(subj)
	}
	return out, nil
}

// Version returns a subject's version (-1: the latest).
func (r *Registry) Version(subj string, v int, deleted bool) (Registered, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ver, err := r.m.resolve(subj, v, deleted)
	if err != nil {
		return Registered{}, err
	}
	return registered(r.m, subj, ver), nil
}

// ReferencedBy lists the ids of the schemas that reference a subject's
// version.
func (r *Registry) ReferencedBy(subj string, v int) ([]int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ver, err := r.m.resolve(subj, v, true)
	if err != nil {
		return nil, err
	}
	ids := r.m.referrers(subj, ver.Version, false)
	if ids == nil {
		ids = []int{}
	}
	return ids, nil
}

// DeleteSubject deletes a subject's versions (soft, or permanently once
// soft-deleted) and returns them.
func (r *Registry) DeleteSubject(subj string, permanent bool) ([]int, error) {
	r.mu.RLock()
	var vs []int
	if s := r.m.subjects[subj]; s != nil {
		for _, v := range s.versions {
			if v.Deleted == permanent {
				vs = append(vs, v.Version)
			}
		}
	}
	r.mu.RUnlock()
	if err := r.decide(change{Op: opDeleteSubject, Subject: subj, Permanent: permanent}); err != nil {
		return nil, asError(err)
	}
	return vs, nil
}

// DeleteVersion deletes a subject's version (-1: the latest), soft or
// permanently, and returns its number.
func (r *Registry) DeleteVersion(subj string, v int, permanent bool) (int, error) {
	r.mu.RLock()
	// latest is the latest live version for a soft delete; a version
	// named by number is found even when soft-deleted, for the apply's
	// verdict.
	ver, err := r.m.resolve(subj, v, v != -1 || permanent)
	r.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	if err := r.decide(change{Op: opDeleteVersion, Subject: subj, Version: ver.Version, Permanent: permanent}); err != nil {
		return 0, asError(err)
	}
	return ver.Version, nil
}

// Level returns a subject's compatibility level ("" subject: the global
// one); ok is false when the subject has no level of its own.
func (r *Registry) Level(subj string) (l Level, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if subj == "" {
		return r.m.meta.Level, true
	}
	if s := r.m.subjects[subj]; s != nil && s.level != "" {
		return s.level, true
	}
	return r.m.meta.Level, false
}

// SetLevel sets (or, with "", removes) a compatibility level.
func (r *Registry) SetLevel(subj string, l Level) error {
	if subj != "" {
		if err := checkSubject(subj); err != nil {
			return err
		}
	}
	return asErrorOrNil(r.decide(change{Op: opConfig, Subject: subj, Level: l}))
}

// Mode returns a subject's mode ("" subject: the global one); ok is false
// when the subject has no mode of its own.
func (r *Registry) Mode(subj string) (mode Mode, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if subj == "" {
		return r.m.meta.Mode, true
	}
	if s := r.m.subjects[subj]; s != nil && s.mode != "" {
		return s.mode, true
	}
	return r.m.meta.Mode, false
}

// SetMode sets (or, with "", removes) a mode.
func (r *Registry) SetMode(subj string, mode Mode) error {
	if subj != "" {
		if err := checkSubject(subj); err != nil {
			return err
		}
	}
	return asErrorOrNil(r.decide(change{Op: opMode, Subject: subj, Mode: mode}))
}

func asErrorOrNil(err error) error {
	if err == nil {
		return nil
	}
	return asError(err)
}

// All lists every live subject version (the latest only, with
// latestOnly), for GET /schemas.
func (r *Registry) All(prefix string, deleted, latestOnly bool) []Registered {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []Registered{}
	names := make([]string, 0, len(r.m.subjects))
	for n := range r.m.subjects {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		s := r.m.subjects[n]
		var vs []*version
		for _, v := range s.versions {
			if !v.Deleted || deleted {
				vs = append(vs, v)
			}
		}
		if latestOnly && len(vs) > 0 {
			vs = vs[len(vs)-1:]
		}
		for _, v := range vs {
			out = append(out, registered(r.m, n, v))
		}
	}
	return out
}

var _ broker.SpaceApplier = (*Registry)(nil)
var _ = json.Marshal

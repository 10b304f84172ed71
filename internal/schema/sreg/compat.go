package sreg

import (
	"fmt"

	"github.com/spoolmq/spool/internal/schema"
)

// directions says which checks a level makes and against which versions.
func directions(l Level) (backward, forward, transitive bool) {
	switch l {
	case Backward:
		return true, false, false
	case BackwardTransitive:
		return true, false, true
	case Forward:
		return false, true, false
	case ForwardTransitive:
		return false, true, true
	case Full:
		return true, true, false
	case FullTransitive:
		return true, true, true
	}
	return false, false, false
}

// checkLevel checks a new schema against a subject's live versions as
// level says (only version only, when it is not -1) and returns what
// breaks, each issue prefixed with the version it concerns.
func (r *Registry) checkLevel(m *model, subj string, p schema.Schema, t schema.Type, level Level, only int) ([]string, error) {
	backward, forward, transitive := directions(level)
	if !backward && !forward {
		return nil, nil
	}
	s := m.subjects[subj]
	if s == nil {
		return nil, nil
	}
	against := s.live()
	switch {
	case only != -1:
		v := s.find(only)
		if v == nil || v.Deleted {
			return nil, versionNotFound(subj, only)
		}
		against = []*version{v}
	case !transitive && len(against) > 0:
		against = against[len(against)-1:]
	}
	var out []string
	for i := len(against) - 1; i >= 0; i-- {
		v := against[i]
		old := m.schemas[v.ID]
		if old.Type != t {
			out = append(out, fmt.Sprintf("version %d: SCHEMA_TYPE_CHANGED: the subject's version is %s, the new schema %s", v.Version, old.Type, t))
			continue
		}
		op, err := r.parsedByID(m, v.ID)
		if err != nil {
			return nil, err
		}
		if backward {
			for _, is := range p.Check(op) {
				out = append(out, fmt.Sprintf("version %d (new schema reading its data): %s", v.Version, is))
			}
		}
		if forward {
			for _, is := range op.Check(p) {
				out = append(out, fmt.Sprintf("version %d (reading the new schema's data): %s", v.Version, is))
			}
		}
	}
	return out, nil
}

// Compatible checks a schema against a subject's version (-1: the
// latest), or, with all, against every version the subject's level
// names. It returns the issues; none means compatible.
func (r *Registry) Compatible(subj string, v int, all bool, in SchemaInput) ([]string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.m
	_, p, err := r.prepare(m, in)
	if err != nil {
		return nil, err
	}
	if all {
		issues, err := r.checkLevel(m, subj, p, in.Type, m.level(subj), -1)
		if err != nil {
			return nil, err
		}
		readers, err := r.checkReaders(m, subj, p, in.Type)
		return append(issues, readers...), err
	}
	ver, err := m.resolve(subj, v, false)
	if err != nil {
		return nil, err
	}
	return r.checkLevel(m, subj, p, in.Type, m.level(subj), ver.Version)
}

package sreg

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spoolmq/spool/internal/schema"
)

// Level is a compatibility level.
type Level string

// The compatibility levels.
const (
	None               Level = "NONE"
	Backward           Level = "BACKWARD"
	BackwardTransitive Level = "BACKWARD_TRANSITIVE"
	Forward            Level = "FORWARD"
	ForwardTransitive  Level = "FORWARD_TRANSITIVE"
	Full               Level = "FULL"
	FullTransitive     Level = "FULL_TRANSITIVE"
)

// ParseLevel reads a compatibility level's name.
func ParseLevel(s string) (Level, error) {
	switch l := Level(strings.ToUpper(s)); l {
	case None, Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive:
		return l, nil
	}
	return "", errorf(CodeInvalidCompatibilityLevel, "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")
}

// Mode is a registry or subject mode.
type Mode string

// The modes.
const (
	ReadWrite Mode = "READWRITE"
	ReadOnly  Mode = "READONLY"
	Import    Mode = "IMPORT"
)

// ParseMode reads a mode's name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToUpper(s)); m {
	case ReadWrite, ReadOnly, Import:
		return m, nil
	}
	return "", errorf(CodeInvalidMode, "Invalid mode. Valid values are READWRITE, READONLY and IMPORT")
}

// Ref is a reference from a schema to another subject's version, under
// the name the referencing schema uses for it.
type Ref struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// stored is a schema as the registry keeps it, by id.
type stored struct {
	ID        int         `json:"-"`
	Type      schema.Type `json:"type"`
	Text      string      `json:"schema"`
	Refs      []Ref       `json:"refs,omitempty"`
	Canonical string      `json:"canonical"`
}

// identity is what makes two registrations the same schema.
func identity(t schema.Type, canonical string, refs []Ref) string {
	var b strings.Builder
	b.WriteString(string(t))
	b.WriteByte(0)
	b.WriteString(canonical)
	for _, r := range refs {
		fmt.Fprintf(&b, "\x00%s\x00%s\x00%d", r.Name, r.Subject, r.Version)
	}
	return b.String()
}

func (s *stored) identity() string { return identity(s.Type, s.Canonical, s.Refs) }

// version is one version of a subject.
type version struct {
	Version int  `json:"-"`
	ID      int  `json:"id"`
	Deleted bool `json:"deleted,omitempty"`
}

// subject is a subject's versions (ascending) and settings.
type subject struct {
	name     string
	versions []*version
	level    Level       // "": the global level
	mode     Mode        // "": the global mode
	readers  ReaderCheck // "": refuse
}

func (s *subject) find(v int) *version {
	i, ok := slices.BinarySearchFunc(s.versions, v, func(x *version, v int) int { return x.Version - v })
	if !ok {
		return nil
	}
	return s.versions[i]
}

// live returns the versions not soft-deleted.
func (s *subject) live() []*version {
	var out []*version
	for _, v := range s.versions {
		if !v.Deleted {
			out = append(out, v)
		}
	}
	return out
}

func (s *subject) latestLive() *version {
	for i := len(s.versions) - 1; i >= 0; i-- {
		if !s.versions[i].Deleted {
			return s.versions[i]
		}
	}
	return nil
}

// meta is the registry's global record.
type meta struct {
	Seq    uint64 `json:"seq"`     // changes applied
	NextID int    `json:"next_id"` // the next schema id handed out
	Level  Level  `json:"compat"`
	Mode   Mode   `json:"mode"`
}

// subjectConfig is a subject's settings record.
type subjectConfig struct {
	Level   Level       `json:"compat,omitempty"`
	Mode    Mode        `json:"mode,omitempty"`
	Readers ReaderCheck `json:"readers,omitempty"`
}

// model is the registry's state, as its records say.
type model struct {
	meta     meta
	schemas  map[int]*stored
	byIdent  map[string]int // identity → id
	subjects map[string]*subject
	readers  map[readerKey]readerRec // declared reader schemas (readers.go)
}

func newModel() *model {
	return &model{
		meta:     meta{NextID: 1, Level: Backward, Mode: ReadWrite},
		schemas:  map[int]*stored{},
		byIdent:  map[string]int{},
		subjects: map[string]*subject{},
		readers:  map[readerKey]readerRec{},
	}
}

func (m *model) subject(name string, create bool) *subject {
	s := m.subjects[name]
	if s == nil && create {
		s = &subject{name: name}
		m.subjects[name] = s
	}
	return s
}

// dropIfEmpty forgets a subject with no versions and no settings.
func (m *model) dropIfEmpty(s *subject) {
	if len(s.versions) == 0 && s.level == "" && s.mode == "" && s.readers == "" {
		delete(m.subjects, s.name)
	}
}

// level is a subject's effective compatibility level.
func (m *model) level(subj string) Level {
	if s := m.subjects[subj]; s != nil && s.level != "" {
		return s.level
	}
	return m.meta.Level
}

// mode is a subject's effective mode.
func (m *model) mode(subj string) Mode {
	if s := m.subjects[subj]; s != nil && s.mode != "" {
		return s.mode
	}
	return m.meta.Mode
}

// referrers returns the subject versions (live ones, unless all) whose
// schemas reference subj's version v.
func (m *model) referrers(subj string, v int, all bool) []int {
	var ids []int
	for _, s := range m.subjects {
		for _, ver := range s.versions {
			if ver.Deleted && !all {
				continue
			}
			for _, r := range m.schemas[ver.ID].Refs {
				if r.Subject == subj && r.Version == v {
					ids = append(ids, ver.ID)
				}
			}
		}
	}
	sort.Ints(ids)
	return slices.Compact(ids)
}

// The records, keyed in the registry's space (docs/format/state.md):
//
//	meta                               meta (JSON)
//	id/ ‖ id (uint64)                  stored schema (JSON)
//	sv/ ‖ subject ‖ 00 ‖ version (u32) version (JSON)
//	cfg/ ‖ subject                     subjectConfig (JSON)
//	rd/ ‖ topic ‖ 00 ‖ subscription    readerRec (JSON)
var (
	keyMeta   = []byte("meta")
	prefixID  = []byte("id/")
	prefixSV  = []byte("sv/")
	prefixCfg = []byte("cfg/")
)

func keyID(id int) []byte { return binary.BigEndian.AppendUint64(bytes.Clone(prefixID), uint64(id)) }

func keySV(subj string, v int) []byte {
	k := append(append(bytes.Clone(prefixSV), subj...), 0)
	return binary.BigEndian.AppendUint32(k, uint32(v))
}

func keyCfg(subj string) []byte { return append(bytes.Clone(prefixCfg), subj...) }

// load reads one record into the model.
func (m *model) load(key, value []byte) error {
	switch {
	case bytes.Equal(key, keyMeta):
		return json.Unmarshal(value, &m.meta)
	case bytes.HasPrefix(key, prefixID):
		k := key[len(prefixID):]
		if len(k) != 8 {
			return fmt.Errorf("schema record key %q", key)
		}
		var s stored
		if err := json.Unmarshal(value, &s); err != nil {
			return err
		}
		s.ID = int(binary.BigEndian.Uint64(k))
		m.schemas[s.ID] = &s
		m.byIdent[s.identity()] = s.ID
	case bytes.HasPrefix(key, prefixSV):
		k := key[len(prefixSV):]
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k)-i-1 != 4 {
			return fmt.Errorf("subject version record key %q", key)
		}
		var v version
		if err := json.Unmarshal(value, &v); err != nil {
			return err
		}
		v.Version = int(binary.BigEndian.Uint32(k[i+1:]))
		s := m.subject(string(k[:i]), true)
		s.versions = append(s.versions, &v) // keys come in version order
	case bytes.HasPrefix(key, prefixCfg):
		var c subjectConfig
		if err := json.Unmarshal(value, &c); err != nil {
			return err
		}
		s := m.subject(string(key[len(prefixCfg):]), true)
		s.level, s.mode, s.readers = c.Level, c.Mode, c.Readers
	case bytes.HasPrefix(key, prefixReader):
		return m.loadReader(key, value)
	default:
		return fmt.Errorf("unknown record %q", key)
	}
	return nil
}

// check verifies that every version's schema is there.
func (m *model) check() error {
	for _, s := range m.subjects {
		for _, v := range s.versions {
			if m.schemas[v.ID] == nil {
				return fmt.Errorf("subject %q version %d names schema %d, which is missing", s.name, v.Version, v.ID)
			}
		}
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the records are plain structs
	}
	return b
}

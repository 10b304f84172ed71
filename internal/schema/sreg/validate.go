package sreg

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/internal/schema"
)

// Validation on publish (broker.SchemaValidator). Each message of a bound
// topic names its schema by id — in the registry's wire format (magic
// byte 0, the id as 4 bytes big-endian, for Protobuf the message indexes,
// then the payload) or in a spool.schema-id header — and the id must be a
// live version of the topic's subject. The lookup is a read of an index
// rebuilt after every registry change (valIndex), without locks; each
// schema is parsed once, on first use.

// maxIndexes bounds a Protobuf value's message indexes.
const maxIndexes = 64

// valIndex maps a subject to its live versions' schemas, by id.
type valIndex map[string]map[int]*lazySchema

// lazySchema is a schema parsed on first use.
type lazySchema struct {
	id   int
	typ  schema.Type
	once sync.Once
	s    schema.Schema
	err  error

	// Messages validated with this schema on this node since it started,
	// and when the last was (Unix ns): what Usage reports as produced.
	produced atomic.Int64
	last     atomic.Int64
}

func (r *Registry) lazy(id int, t schema.Type) *lazySchema {
	r.lazyMu.Lock()
	defer r.lazyMu.Unlock()
	l := r.lazies[id]
	if l == nil {
		l = &lazySchema{id: id, typ: t}
		r.lazies[id] = l
	}
	return l
}

func (l *lazySchema) get(r *Registry) (schema.Schema, error) {
	l.once.Do(func() {
		r.mu.RLock()
		defer r.mu.RUnlock()
		l.s, l.err = r.parsedByID(r.m, l.id)
	})
	return l.s, l.err
}

// rebuildIndex makes the validation index from the model. Called with mu
// held (either way) and the model not changing.
func (r *Registry) rebuildIndex(m *model) {
	idx := valIndex{}
	for name, s := range m.subjects {
		var ids map[int]*lazySchema
		for _, v := range s.versions {
			if v.Deleted {
				continue
			}
			if ids == nil {
				ids = map[int]*lazySchema{}
			}
			ids[v.ID] = r.lazy(v.ID, m.schemas[v.ID].Type)
		}
		if ids != nil {
			idx[name] = ids
		}
	}
	r.index.Store(&idx)
}

// ValidateValue implements broker.SchemaValidator.
func (r *Registry) ValidateValue(subject string, value, schemaID []byte) error {
	var id int
	payload := value
	wire := schemaID == nil
	if wire {
		if len(value) < 5 || value[0] != 0 {
			return fmt.Errorf("the value is not in the schema registry's wire format (magic byte 0, then a 4-byte schema id) and has no %s header", "spool.schema-id")
		}
		id = int(binary.BigEndian.Uint32(value[1:5]))
		payload = value[5:]
	} else {
		n, err := strconv.ParseUint(string(schemaID), 10, 31)
		if err != nil {
			return fmt.Errorf("the spool.schema-id header %q is not a schema id", truncate(schemaID, 32))
		}
		id = int(n)
	}
	idx := *r.index.Load()
	ids := idx[subject]
	if ids == nil {
		return fmt.Errorf("subject %q has no schema to validate against", subject)
	}
	l := ids[id]
	if l == nil {
		return fmt.Errorf("schema id %d is not a version of subject %q", id, subject)
	}
	s, err := l.get(r)
	if err != nil {
		return fmt.Errorf("schema id %d: %v", id, err)
	}
	var indexes []int
	if wire && l.typ == schema.Protobuf {
		if indexes, payload, err = readIndexes(payload); err != nil {
			return err
		}
	}
	if err := s.Validate(payload, indexes); err != nil {
		return fmt.Errorf("schema id %d (%s): %v", id, l.typ, err)
	}
	l.produced.Add(1)
	l.last.Store(nowNano())
	return nil
}

// clockBase is a wall-clock reading with its monotonic reading: nowNano
// adds the monotonic time since, one clock read instead of time.Now's two
// (a validated message's cost: Usage's "last produced").
var clockBase = time.Now()

// nowNano returns the time as Unix nanoseconds.
func nowNano() int64 { return clockBase.UnixNano() + int64(time.Since(clockBase)) }

// VersionUsage is how a subject's version is used.
type VersionUsage struct {
	Version  int        `json:"version"`
	ID       int        `json:"id"`
	Deleted  bool       `json:"deleted,omitempty"`
	Produced int64      `json:"produced"`                // messages validated with it on this node since it started
	Last     *time.Time `json:"last_produced,omitempty"` // when the last was
	Readers  []Reader   `json:"readers"`                 // subscriptions that declare it as their reader schema
}

// Usage reports, for each version of a subject, the messages validated
// with it (on this node, since it started) and the subscriptions that
// read with it.
func (r *Registry) Usage(subject string) ([]VersionUsage, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.m.subjects[subject]
	if s == nil || len(s.versions) == 0 {
		return nil, subjectNotFound(subject)
	}
	readers := r.readersOf(r.m, subject)
	out := make([]VersionUsage, 0, len(s.versions))
	for _, v := range s.versions {
		u := VersionUsage{Version: v.Version, ID: v.ID, Deleted: v.Deleted, Readers: []Reader{}}
		u.Produced, u.Last = r.produced(v.ID)
		for _, rd := range readers {
			if rd.Version == v.Version {
				u.Readers = append(u.Readers, rd)
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// readIndexes reads a Protobuf value's message indexes: a zigzag varint
// count and as many zigzag varints; the single byte 0 means [0].
func readIndexes(b []byte) ([]int, []byte, error) {
	n, k := binary.Varint(b)
	if k <= 0 {
		return nil, nil, fmt.Errorf("the value's Protobuf message indexes are truncated")
	}
	b = b[k:]
	if n == 0 {
		return nil, b, nil // [0]: the first message
	}
	if n < 0 || n > maxIndexes || int(n) > len(b) {
		return nil, nil, fmt.Errorf("the value announces %d Protobuf message indexes", n)
	}
	out := make([]int, n)
	for i := range out {
		v, k := binary.Varint(b)
		if k <= 0 || v < 0 || v > 1<<20 {
			return nil, nil, fmt.Errorf("the value's Protobuf message index %d is malformed", i)
		}
		out[i] = int(v)
		b = b[k:]
	}
	return out, b, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

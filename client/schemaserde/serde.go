package schemaserde

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Serde encodes values into messages in the Confluent wire format for one
// subject, and decodes such messages. NewAvro, NewJSON and NewProtobuf
// make one per format. A Serde is safe for concurrent use.
//
// The schema id written into messages is chosen once, at the first Encode
// (or ID): by default the Serde's schema is registered under its subject
// (see AutoRegister, LookupSchema, UseLatest and UseSchemaID). A failure
// to choose it is returned by that Encode and tried again by the next.
// Decode asks the registry for the schema of each id it meets, once.
type Serde struct {
	reg     *Registry
	subject string
	local   Schema // the Serde's own schema
	cfg     config
	f       format

	mu sync.Mutex             // held while choosing the writer
	w  atomic.Pointer[writer] // the writer, once chosen
	rm sync.Mutex             // guards readers
	rd map[int]decodeFunc     // by writer schema id
}

// writer is the schema id messages are written with, and the encoder of
// its schema.
type writer struct {
	id  int
	enc encodeFunc
}

// encodeFunc appends the encoding of v, without a header, to dst.
type encodeFunc func(dst []byte, v any) ([]byte, error)

// decodeFunc decodes an encoded value, without its header, into v.
type decodeFunc func(payload []byte, v any) error

// format is what differs between the schema formats.
type format interface {
	// encoder returns the encoder of values for the write schema s.
	encoder(ctx context.Context, r *Registry, s Schema) (encodeFunc, error)
	// decoder returns the decoder of values written with schema s.
	decoder(ctx context.Context, r *Registry, s Schema) (decodeFunc, error)
	// appendHeader appends the header of a message with schema id.
	appendHeader(dst []byte, id int) []byte
	// parseHeader reads a message's header.
	parseHeader(b []byte) (id int, payload []byte, err error)
}

// idMode is how a Serde chooses the schema id it writes.
type idMode int

const (
	modeRegister idMode = iota
	modeLookup
	modeLatest
	modeID
)

type config struct {
	mode     idMode
	id       int
	refs     []Reference
	validate bool
}

// Option configures a Serde.
type Option func(*config)

// AutoRegister registers the Serde's schema under its subject at the first
// Encode, and writes its id; this is the default, as
// auto.register.schemas is in Confluent's serializers. A schema the
// subject already has is not registered again. A schema the subject's
// compatibility level rejects fails Encode with an *Error with Code
// CodeIncompatible.
func AutoRegister() Option { return func(c *config) { c.mode = modeRegister } }

// LookupSchema writes the id of the Serde's schema, which must already be
// registered under its subject: the Serde never registers (as
// auto.register.schemas=false in Confluent's serializers).
func LookupSchema() Option { return func(c *config) { c.mode = modeLookup } }

// UseLatest writes with the latest version of the subject, as it is at the
// first Encode (as use.latest.version in Confluent's serializers): Avro
// values are encoded with that version's schema, JSON values validated
// against it (with Validate). The Serde's own schema is still the one
// Decode reads into.
func UseLatest() Option { return func(c *config) { c.mode = modeLatest } }

// UseSchemaID writes with the schema registered with id, as UseLatest does
// with the latest version.
func UseSchemaID(id int) Option { return func(c *config) { c.mode, c.id = modeID, id } }

// WithReferences gives the references of the Serde's schema: the schemas,
// registered under other subjects, that it uses (Avro named types,
// imported .proto files, JSON Schema $refs).
func WithReferences(refs ...Reference) Option {
	return func(c *config) { c.refs = append(c.refs, refs...) }
}

// Validate makes a JSON Schema Serde validate values against the schema
// before encoding them, and messages against their writer schema before
// decoding them. It has no effect on the other formats, whose encodings
// cannot hold a value that does not match the schema.
func Validate() Option { return func(c *config) { c.validate = true } }

func newSerde(r *Registry, subject string, t Type, text string, opts []Option) (*Serde, error) {
	if r == nil {
		return nil, errors.New("schemaserde: nil Registry")
	}
	if subject == "" {
		return nil, errors.New("schemaserde: empty subject")
	}
	s := &Serde{reg: r, subject: subject, rd: make(map[int]decodeFunc)}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.mode == modeID && !validID(s.cfg.id) {
		return nil, fmt.Errorf("schemaserde: schema id %d out of range", s.cfg.id)
	}
	s.local = Schema{Type: t, Text: text, References: s.cfg.refs}
	return s, nil
}

// ID returns the schema id the Serde writes, choosing it first if no
// Encode has: call it to register the schema, or check that it is
// registered, before the first message.
func (s *Serde) ID(ctx context.Context) (int, error) {
	w, err := s.writer(ctx)
	if err != nil {
		return 0, err
	}
	return w.id, nil
}

func (s *Serde) writer(ctx context.Context) (*writer, error) {
	if w := s.w.Load(); w != nil {
		return w, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.w.Load(); w != nil {
		return w, nil
	}
	var id int
	var ws Schema
	var err error
	switch s.cfg.mode {
	case modeRegister:
		ws = s.local
		id, err = s.reg.registerID(ctx, s.subject, s.local)
	case modeLookup:
		ws = s.local
		var ss SubjectSchema
		ss, err = s.reg.Lookup(ctx, s.subject, s.local)
		id = ss.ID
	case modeLatest:
		var ss SubjectSchema
		ss, err = s.reg.Latest(ctx, s.subject)
		id, ws = ss.ID, ss.Schema
	case modeID:
		id = s.cfg.id
		ws, err = s.reg.SchemaByID(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("schemaserde: subject %q: choosing the schema to write: %w", s.subject, err)
	}
	if ws.Type != s.local.Type {
		return nil, fmt.Errorf("schemaserde: subject %q: schema id %d is %s, not %s", s.subject, id, ws.Type, s.local.Type)
	}
	enc, err := s.f.encoder(ctx, s.reg, ws)
	if err != nil {
		return nil, fmt.Errorf("schemaserde: subject %q: schema id %d: %w", s.subject, id, err)
	}
	w := &writer{id: id, enc: enc}
	s.w.Store(w)
	return w, nil
}

// Encode returns v encoded as a message: the wire-format header, then
// v's encoding. The first Encode may ask the registry for the schema id,
// within the Registry's timeout.
func (s *Serde) Encode(v any) ([]byte, error) { return s.AppendEncode(nil, v) }

// AppendEncode appends v encoded as a message to dst, as Encode.
func (s *Serde) AppendEncode(dst []byte, v any) ([]byte, error) {
	w, err := s.writer(context.Background())
	if err != nil {
		return dst, err
	}
	n := len(dst)
	out, err := w.enc(s.f.appendHeader(dst, w.id), v)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

// Decode decodes a message into v, which must be a pointer (for
// Protobuf, a message of the Serde's type). It looks up the schema of the
// message's id in the registry (once per id) and checks that it has the
// Serde's format; an Avro Serde reads the value written with that schema
// into its own schema (schema resolution: new fields take their
// defaults, removed ones are skipped). Errors: ErrInvalidHeader (wrapped)
// for a message without a valid header, an *Error with Code
// CodeSchemaNotFound for an unknown id.
func (s *Serde) Decode(b []byte, v any) error {
	id, payload, err := s.f.parseHeader(b)
	if err != nil {
		return err
	}
	dec, err := s.decoder(context.Background(), id)
	if err != nil {
		return err
	}
	return dec(payload, v)
}

func (s *Serde) decoder(ctx context.Context, id int) (decodeFunc, error) {
	s.rm.Lock()
	dec, ok := s.rd[id]
	s.rm.Unlock()
	if ok {
		return dec, nil
	}
	ws, err := s.reg.SchemaByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("schemaserde: schema id %d: %w", id, err)
	}
	if ws.Type != s.local.Type {
		return nil, fmt.Errorf("schemaserde: schema id %d is %s, not %s", id, ws.Type, s.local.Type)
	}
	dec, err = s.f.decoder(ctx, s.reg, ws)
	if err != nil {
		return nil, fmt.Errorf("schemaserde: schema id %d: %w", id, err)
	}
	s.rm.Lock()
	if d, ok := s.rd[id]; ok {
		dec = d // another Decode got there first
	} else {
		s.rd[id] = dec
	}
	s.rm.Unlock()
	return dec, nil
}

// sameSchema reports whether a and b are the same schema text with the
// same references.
func sameSchema(a, b Schema) bool {
	if a.Type != b.Type || a.Text != b.Text || len(a.References) != len(b.References) {
		return false
	}
	for i := range a.References {
		if a.References[i] != b.References[i] {
			return false
		}
	}
	return true
}

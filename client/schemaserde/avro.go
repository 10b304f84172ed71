package schemaserde

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/avro"
)

// NewAvro returns a Serde of Avro values for subject, with the Avro schema
// schemaText (JSON). Values are encoded and decoded as github.com/twmb/avro
// does: structs with `avro` field tags, maps, and the Go types its
// documentation lists. Decode reads values written with any schema that
// the registry has and that resolves to schemaText.
func NewAvro(r *Registry, subject, schemaText string, opts ...Option) (*Serde, error) {
	s, err := newSerde(r, subject, Avro, schemaText, opts)
	if err != nil {
		return nil, err
	}
	f := &avroFormat{local: s.local}
	if len(s.local.References) == 0 {
		// Without references the schema is checked now, not at the
		// first use.
		if f.reader, err = avro.Parse(schemaText); err != nil {
			return nil, fmt.Errorf("schemaserde: Avro schema: %w", err)
		}
	}
	s.f = f
	return s, nil
}

type avroFormat struct {
	local Schema

	mu     sync.Mutex
	reader *avro.Schema // the local schema, once parsed
}

// parseAvro parses an Avro schema with the schemas it references.
func parseAvro(ctx context.Context, r *Registry, s Schema) (*avro.Schema, error) {
	if len(s.References) == 0 {
		return avro.Parse(s.Text)
	}
	var cache avro.SchemaCache
	err := r.resolveRefs(ctx, s.References, func(name string, ref Schema) error {
		if ref.Type != Avro {
			return fmt.Errorf("reference %q is %s, not AVRO", name, ref.Type)
		}
		if _, err := cache.Parse(ref.Text); err != nil {
			return fmt.Errorf("reference %q: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cache.Parse(s.Text)
}

func (f *avroFormat) readerSchema(ctx context.Context, r *Registry) (*avro.Schema, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reader == nil {
		sch, err := parseAvro(ctx, r, f.local)
		if err != nil {
			return nil, fmt.Errorf("the Serde's Avro schema: %w", err)
		}
		f.reader = sch
	}
	return f.reader, nil
}

func (f *avroFormat) encoder(ctx context.Context, r *Registry, s Schema) (encodeFunc, error) {
	var sch *avro.Schema
	var err error
	if sameSchema(s, f.local) {
		sch, err = f.readerSchema(ctx, r)
	} else {
		sch, err = parseAvro(ctx, r, s)
	}
	if err != nil {
		return nil, err
	}
	return func(dst []byte, v any) ([]byte, error) {
		out, err := sch.AppendEncode(dst, v)
		if err != nil {
			return nil, fmt.Errorf("schemaserde: Avro encoding: %w", err)
		}
		return out, nil
	}, nil
}

func (f *avroFormat) decoder(ctx context.Context, r *Registry, s Schema) (decodeFunc, error) {
	reader, err := f.readerSchema(ctx, r)
	if err != nil {
		return nil, err
	}
	sch := reader
	if !sameSchema(s, f.local) {
		w, err := parseAvro(ctx, r, s)
		if err != nil {
			return nil, fmt.Errorf("the writer's Avro schema: %w", err)
		}
		if sch, err = avro.Resolve(w, reader); err != nil {
			return nil, fmt.Errorf("the writer's schema does not resolve to the Serde's: %w", err)
		}
	}
	return func(payload []byte, v any) error {
		rest, err := sch.Decode(payload, v)
		if err != nil {
			return fmt.Errorf("schemaserde: Avro decoding: %w", err)
		}
		if len(rest) > 0 {
			return fmt.Errorf("schemaserde: Avro decoding: %d bytes after the value", len(rest))
		}
		return nil
	}, nil
}

func (f *avroFormat) appendHeader(dst []byte, id int) []byte { return AppendHeader(dst, id) }

func (f *avroFormat) parseHeader(b []byte) (int, []byte, error) { return ParseHeader(b) }

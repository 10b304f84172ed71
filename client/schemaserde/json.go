package schemaserde

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// NewJSON returns a Serde of JSON values for subject, with the JSON Schema
// schemaText. Values are encoded and decoded with encoding/json; with
// Validate, they are checked against the schema too.
func NewJSON(r *Registry, subject, schemaText string, opts ...Option) (*Serde, error) {
	s, err := newSerde(r, subject, JSON, schemaText, opts)
	if err != nil {
		return nil, err
	}
	if !json.Valid([]byte(schemaText)) {
		return nil, errors.New("schemaserde: the JSON Schema is not valid JSON")
	}
	f := &jsonFormat{validate: s.cfg.validate}
	if f.validate && len(s.local.References) == 0 {
		// Checked now, not at the first use.
		if _, err := compileJSON(context.Background(), r, s.local); err != nil {
			return nil, err
		}
	}
	s.f = f
	return s, nil
}

type jsonFormat struct {
	validate bool
}

// jsonBase is the base URL of a schema without $id: references are
// resolved against it.
const jsonBase = "mem://schemaserde/schema.json"

// compileJSON compiles a JSON Schema with the schemas it references; the
// compiler fetches nothing.
func compileJSON(ctx context.Context, r *Registry, s Schema) (*jsonschema.Schema, error) {
	docs := map[string]any{}
	if len(s.References) > 0 {
		err := r.resolveRefs(ctx, s.References, func(name string, ref Schema) error {
			if ref.Type != JSON {
				return fmt.Errorf("reference %q is %s, not JSON", name, ref.Type)
			}
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(ref.Text))
			if err != nil {
				return fmt.Errorf("reference %q: %w", name, err)
			}
			docs[name] = doc
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	root, err := jsonschema.UnmarshalJSON(strings.NewReader(s.Text))
	if err != nil {
		return nil, fmt.Errorf("schemaserde: JSON Schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7) // Confluent's default
	c.UseLoader(refLoader(docs))
	if err := c.AddResource(jsonBase, root); err != nil {
		return nil, fmt.Errorf("schemaserde: JSON Schema: %w", err)
	}
	sch, err := c.Compile(jsonBase)
	if err != nil {
		return nil, fmt.Errorf("schemaserde: JSON Schema: %w", err)
	}
	return sch, nil
}

// refLoader loads the referenced schemas by their reference names, as
// given or resolved against a base URL, and nothing else.
type refLoader map[string]any

func (l refLoader) Load(u string) (any, error) {
	if doc, ok := l[u]; ok {
		return doc, nil
	}
	for name, doc := range l {
		if strings.HasSuffix(u, "/"+strings.TrimPrefix(name, "./")) {
			return doc, nil
		}
	}
	return nil, fmt.Errorf("%q is not a reference of the schema; references are not fetched", u)
}

func validateJSON(sch *jsonschema.Schema, b []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("schemaserde: not JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("schemaserde: the value does not match the JSON Schema: %w", err)
	}
	return nil
}

func (f *jsonFormat) encoder(ctx context.Context, r *Registry, s Schema) (encodeFunc, error) {
	var sch *jsonschema.Schema
	if f.validate {
		var err error
		if sch, err = compileJSON(ctx, r, s); err != nil {
			return nil, err
		}
	}
	return func(dst []byte, v any) ([]byte, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("schemaserde: JSON encoding: %w", err)
		}
		if sch != nil {
			if err := validateJSON(sch, b); err != nil {
				return nil, err
			}
		}
		return append(dst, b...), nil
	}, nil
}

func (f *jsonFormat) decoder(ctx context.Context, r *Registry, s Schema) (decodeFunc, error) {
	var sch *jsonschema.Schema
	if f.validate {
		var err error
		if sch, err = compileJSON(ctx, r, s); err != nil {
			return nil, err
		}
	}
	return func(payload []byte, v any) error {
		if sch != nil {
			if err := validateJSON(sch, payload); err != nil {
				return err
			}
		}
		if err := json.Unmarshal(payload, v); err != nil {
			return fmt.Errorf("schemaserde: JSON decoding: %w", err)
		}
		return nil
	}, nil
}

func (f *jsonFormat) appendHeader(dst []byte, id int) []byte { return AppendHeader(dst, id) }

func (f *jsonFormat) parseHeader(b []byte) (int, []byte, error) { return ParseHeader(b) }

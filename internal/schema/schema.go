// Package schema holds what the schema formats (savro, sjson, sproto) and
// the registry (sreg) share: a schema's type, the schemas it references, a
// parsed schema, and the compatibility issues found between two schemas.
//
// The formats are pure: they parse schema text, give its canonical form,
// check one schema against another and validate payloads. They do no I/O
// and keep no state; the registry stores schemas and decides which pairs
// to check (the compatibility level).
package schema

import (
	"fmt"
	"strings"
)

// Type is a schema's type, as the Confluent API names it.
type Type string

// The schema types.
const (
	Avro     Type = "AVRO"
	JSON     Type = "JSON"
	Protobuf Type = "PROTOBUF"
)

// Types lists the supported types in the order /schemas/types gives them.
var Types = []Type{JSON, Protobuf, Avro}

// ParseType reads a type name; "" is AVRO (the API's default).
func ParseType(s string) (Type, error) {
	switch t := Type(strings.ToUpper(s)); t {
	case "":
		return Avro, nil
	case Avro, JSON, Protobuf:
		return t, nil
	}
	return "", fmt.Errorf("unknown schema type %q (AVRO, JSON or PROTOBUF)", s)
}

// Bounds every format enforces, so that no schema or payload makes a
// parser recurse or allocate without limit.
const (
	// MaxDepth is the deepest nesting of a schema's types (records in
	// records, arrays of arrays, nested messages, subschemas).
	MaxDepth = 64
	// MaxDeps is the most schemas one schema may reference, transitively.
	MaxDeps = 256
)

// Dep is a schema another references, under the name the reference gives
// it: an Avro named type's full name, a JSON Schema's URL (the $ref it is
// referenced by), a Protobuf import path.
type Dep struct {
	Name string
	Text string
}

// Schema is a parsed schema with its references resolved.
type Schema interface {
	// Canonical returns the schema's canonical form: two schemas of one
	// type with the same canonical form (and the same references) are the
	// same schema, whatever their formatting, key order or redundant
	// defaults.
	Canonical() string
	// Check returns the ways in which this schema, as the reader, cannot
	// read data written with writer (a schema of the same type); none
	// when it can.
	Check(writer Schema) []Issue
	// Validate checks a payload (the message value without the wire
	// format's header) against the schema. indexes are Protobuf's message
	// indexes (nil or empty: the file's first message); other types
	// ignore them. The error says what is wrong, with the path.
	Validate(payload []byte, indexes []int) error
}

// Format parses schemas of one type.
type Format interface {
	// Parse parses schema text. deps are every schema it references,
	// transitively, each after the ones it references itself. A schema
	// that cannot be parsed, references what deps lacks, or exceeds the
	// bounds above is an error that says why.
	Parse(text string, deps []Dep) (Schema, error)
}

// Issue is one compatibility rule a pair of schemas breaks.
type Issue struct {
	// Rule names the rule (docs/schemas.md lists them), such as
	// FIELD_REMOVED or TYPE_NARROWED.
	Rule string
	// Path says where: the field, property or message concerned, in the
	// type's own notation (an Avro record's field path, a JSON pointer, a
	// Protobuf full name).
	Path string
	// Message says what changed, in a sentence.
	Message string
}

func (i Issue) String() string {
	if i.Path == "" {
		return i.Rule + ": " + i.Message
	}
	return i.Rule + " at " + i.Path + ": " + i.Message
}

// Decoder is a Schema that can render a payload as JSON, for people to
// read (the web console's message browser): Avro's JSON encoding, a JSON
// payload as it is, Protobuf's JSON mapping. The payload is checked as
// Validate checks it first, so a payload Validate refuses is an error here
// too; nothing is decoded without the format's bounds.
type Decoder interface {
	DecodeJSON(payload []byte, indexes []int) ([]byte, error)
}

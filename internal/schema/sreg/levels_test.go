package sreg

import (
	"fmt"
	"testing"

	"github.com/spoolmq/spool/internal/schema"
)

// TestLevelsTable: for each type, changes that only one direction can read
// get the verdict each level gives them; and, against three versions, the
// transitive levels look further back than the latest.
func TestLevelsTable(t *testing.T) {
	e := newEnv(t)
	const (
		ok, broken = true, false
	)
	levels := []Level{None, Backward, BackwardTransitive, Forward, ForwardTransitive, Full, FullTransitive}
	type change struct {
		typ      schema.Type
		old, new string
		verdicts []bool // by levels
	}
	backwardOnly := []bool{ok, ok, ok, broken, broken, broken, broken}
	forwardOnly := []bool{ok, broken, broken, ok, ok, broken, broken}
	changes := map[string]change{
		// Avro: a field added with a default (new reads old); a field
		// removed that the old schema needs (old cannot read new).
		"avro field added without default": {schema.Avro,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}`,
			[]bool{ok, broken, broken, ok, ok, broken, broken}},
		"avro field added with default": {schema.Avro,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}`,
			[]bool{ok, ok, ok, ok, ok, ok, ok}},
		"avro field removed": {schema.Avro,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`, backwardOnly},
		"avro int widened to long": {schema.Avro,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}`, backwardOnly},
		// JSON Schema: a bound loosened (new accepts all old data) or
		// tightened.
		"json maxLength loosened": {schema.JSON,
			`{"type":"object","properties":{"a":{"type":"string","maxLength":10}}}`,
			`{"type":"object","properties":{"a":{"type":"string","maxLength":20}}}`, backwardOnly},
		"json maxLength tightened": {schema.JSON,
			`{"type":"object","properties":{"a":{"type":"string","maxLength":10}}}`,
			`{"type":"object","properties":{"a":{"type":"string","maxLength":5}}}`, forwardOnly},
		"json integer widened to number": {schema.JSON,
			`{"type":"object","properties":{"a":{"type":"integer"}}}`,
			`{"type":"object","properties":{"a":{"type":"number"}}}`, backwardOnly},
		// Protobuf: a scalar widened within its wire type, or narrowed.
		"protobuf int32 widened to int64": {schema.Protobuf,
			`syntax = "proto3"; message M { int32 a = 1; }`,
			`syntax = "proto3"; message M { int64 a = 1; }`, backwardOnly},
		"protobuf int64 narrowed to int32": {schema.Protobuf,
			`syntax = "proto3"; message M { int64 a = 1; }`,
			`syntax = "proto3"; message M { int32 a = 1; }`, forwardOnly},
		"protobuf field renamed": {schema.Protobuf,
			`syntax = "proto3"; message M { int32 a = 1; }`,
			`syntax = "proto3"; message M { int32 b = 1; }`, []bool{ok, ok, ok, ok, ok, ok, ok}},
	}
	n := 0
	for name, c := range changes {
		for i, l := range levels {
			n++
			subj := fmt.Sprintf("levels-%d", n)
			if _, err := e.reg.Register(subj, SchemaInput{Type: c.typ, Text: c.old}, 0, 0); err != nil {
				t.Fatalf("%s: register the old schema: %v", name, err)
			}
			if err := e.reg.SetLevel(subj, l); err != nil {
				t.Fatal(err)
			}
			issues, err := e.reg.Compatible(subj, -1, true, SchemaInput{Type: c.typ, Text: c.new})
			if err != nil {
				t.Fatalf("%s at %s: %v", name, l, err)
			}
			if got := len(issues) == 0; got != c.verdicts[i] {
				t.Errorf("%s at %s: compatible %v, want %v (%v)", name, l, got, c.verdicts[i], issues)
			}
			// Registering agrees with checking.
			_, err = e.reg.Register(subj, SchemaInput{Type: c.typ, Text: c.new}, 0, 0)
			if (err == nil) != c.verdicts[i] {
				t.Errorf("%s at %s: registration %v, want compatible %v", name, l, err, c.verdicts[i])
			}
		}
	}
	// Transitive levels look at every version: v3 reads v2's data but not
	// v1's (b was added with a default in v2 and lost it in v3).
	v := []string{
		`{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}`,
	}
	for i, l := range levels {
		subj := fmt.Sprintf("transitive-%d", i)
		for _, s := range v[:2] {
			if _, err := e.reg.Register(subj, SchemaInput{Type: schema.Avro, Text: s}, 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		e.reg.SetLevel(subj, l)
		issues, err := e.reg.Compatible(subj, -1, true, SchemaInput{Type: schema.Avro, Text: v[2]})
		if err != nil {
			t.Fatal(err)
		}
		want := l != BackwardTransitive && l != FullTransitive
		if got := len(issues) == 0; got != want {
			t.Errorf("three versions at %s: compatible %v, want %v (%v)", l, got, want, issues)
		}
	}
}

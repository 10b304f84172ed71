package sproto

import (
	"slices"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/schema"
)

func p3(body string) string { return "syntax = \"proto3\";\npackage acme;\n" + body }
func p2(body string) string { return "syntax = \"proto2\";\npackage acme;\n" + body }

// compatCases change a schema from old to new. backward lists the rules
// new.Check(old) reports (a new reader on old data), forward those
// old.Check(new) reports (an old reader on new data).
var compatCases = []struct {
	name              string
	old, new          string
	backward, forward []string
}{
	// Compatible both ways.
	{name: "identical", old: p3(`message M { string a = 1; }`), new: p3(`message M { string a = 1; }`)},
	{name: "optional field added",
		old: p3(`message M { string a = 1; }`), new: p3(`message M { string a = 1; int64 b = 2; optional string c = 3; }`)},
	{name: "field renamed, number kept",
		old: p3(`message M { string a = 1; }`), new: p3(`message M { string title = 1; }`)},
	{name: "fields reordered",
		old: p3(`message M { string a = 1; int32 b = 2; }`), new: p3(`message M { int32 b = 2; string a = 1; }`)},
	{name: "field made optional (proto3 presence)",
		old: p3(`message M { string a = 1; }`), new: p3(`message M { optional string a = 1; }`)},
	{name: "packed changed",
		old: p2(`message M { repeated int32 a = 1; }`), new: p2(`message M { repeated int32 a = 1 [packed = true]; }`)},
	{name: "open enum value added",
		old: p3(`enum E { A = 0; } message M { E e = 1; }`), new: p3(`enum E { A = 0; B = 1; } message M { E e = 1; }`)},
	{name: "open enum value removed",
		old: p3(`enum E { A = 0; B = 1; } message M { E e = 1; }`), new: p3(`enum E { A = 0; } message M { E e = 1; }`)},
	{name: "field moved into a new oneof alone",
		old: p3(`message M { string a = 1; }`), new: p3(`message M { oneof o { string a = 1; } }`)},
	{name: "nested message added at the end",
		old:     p3(`message M { message N { int32 x = 1; } N n = 1; }`),
		new:     p3(`message M { message N { int32 x = 1; } message P { int32 y = 1; } N n = 1; }`),
		forward: []string{RuleMessageRemoved}},
	{name: "reserved field removed",
		old: p3(`message M { string a = 1; string b = 2; }`), new: p3(`message M { string a = 1; reserved 2; reserved "b"; }`)},
	{name: "recursive type unchanged",
		old: p3(`message Node { int32 v = 1; repeated Node kids = 2; }`), new: p3(`message Node { int32 v = 1; repeated Node kids = 2; string label = 3; }`)},
	{name: "enum to int32 and back (open enum)",
		old: p3(`enum E { A = 0; B = 1; } message M { E e = 1; }`), new: p3(`message M { int32 e = 1; }`)},

	// PACKAGE_CHANGED
	{name: "package changed",
		old:      p3(`message M { string a = 1; }`),
		new:      "syntax = \"proto3\"; package acme.v2; message M { string a = 1; }",
		backward: []string{RulePackageChanged}, forward: []string{RulePackageChanged}},

	// Messages by position.
	{name: "message removed",
		old: p3(`message A { int32 x = 1; } message B { int32 y = 1; }`), new: p3(`message A { int32 x = 1; }`),
		backward: []string{RuleMessageRemoved}},
	{name: "messages swapped",
		old: p3(`message A { int32 x = 1; } message B { int32 y = 1; }`), new: p3(`message B { int32 y = 1; } message A { int32 x = 1; }`),
		backward: []string{RuleMessageMoved, RuleMessageMoved}, forward: []string{RuleMessageMoved, RuleMessageMoved}},
	{name: "message inserted before another",
		old: p3(`message A { int32 x = 1; }`), new: p3(`message N { int32 n = 1; } message A { int32 x = 1; }`),
		backward: []string{RuleMessageMoved}, forward: []string{RuleMessageRemoved, RuleMessageMoved}},
	{name: "message renamed at its position",
		old: p3(`message A { int32 x = 1; }`), new: p3(`message A2 { int32 x = 1; }`),
		backward: []string{RuleMessageRenamed}, forward: []string{RuleMessageRenamed}},
	{name: "nested message renamed, field type follows",
		old: p3(`message M { message N { int32 x = 1; } N n = 1; }`), new: p3(`message M { message K { int32 x = 1; } K n = 1; }`),
		backward: []string{RuleFieldNamedTypeChanged, RuleMessageRenamed}, forward: []string{RuleFieldNamedTypeChanged, RuleMessageRenamed}},

	// Field types.
	{name: "scalar to message",
		old: p3(`message M { int32 a = 1; } message S { int32 x = 1; }`), new: p3(`message M { S a = 1; } message S { int32 x = 1; }`),
		backward: []string{RuleFieldKindChanged}, forward: []string{RuleFieldKindChanged}},
	{name: "bytes to message",
		old: p3(`message M { bytes a = 1; } message S { int32 x = 1; }`), new: p3(`message M { S a = 1; } message S { int32 x = 1; }`),
		backward: []string{RuleFieldKindChanged}, forward: []string{RuleFieldKindChanged}},
	{name: "map to repeated message",
		old: p3(`message M { map<string, int32> a = 1; }`), new: p3(`message M { repeated E a = 1; } message E { string key = 1; int32 value = 2; }`),
		backward: []string{RuleFieldKindChanged}, forward: []string{RuleFieldKindChanged, RuleMessageRemoved}},
	{name: "message to group",
		old:      p2(`message M { optional S s = 1; } message S { optional int32 x = 1; }`),
		new:      p2(`message M { optional group S = 1 { optional int32 x = 1; } } message S { optional int32 x = 1; }`),
		backward: []string{RuleFieldKindChanged}, forward: []string{RuleFieldKindChanged, RuleMessageRemoved}},
	{name: "enum to string",
		old: p3(`enum E { A = 0; } message M { E e = 1; }`), new: p3(`enum E { A = 0; } message M { string e = 1; }`),
		backward: []string{RuleFieldKindChanged}, forward: []string{RuleFieldKindChanged}},
	{name: "int32 to string",
		old: p3(`message M { int32 a = 1; }`), new: p3(`message M { string a = 1; }`),
		backward: []string{RuleFieldScalarKindChanged}, forward: []string{RuleFieldScalarKindChanged}},
	{name: "float to fixed32",
		old: p3(`message M { float a = 1; }`), new: p3(`message M { fixed32 a = 1; }`),
		backward: []string{RuleFieldScalarKindChanged}, forward: []string{RuleFieldScalarKindChanged}},
	{name: "int32 to sint32",
		old: p3(`message M { int32 a = 1; }`), new: p3(`message M { sint32 a = 1; }`),
		backward: []string{RuleFieldScalarKindChanged}, forward: []string{RuleFieldScalarKindChanged}},
	{name: "map value type changed",
		old: p3(`message M { map<string, int32> labels = 1; }`), new: p3(`message M { map<string, string> labels = 1; }`),
		backward: []string{RuleFieldScalarKindChanged}, forward: []string{RuleFieldScalarKindChanged}},
	{name: "int32 widened to int64",
		old: p3(`message M { int32 a = 1; }`), new: p3(`message M { int64 a = 1; }`),
		forward: []string{RuleFieldScalarNarrowed}},
	{name: "uint32 widened to uint64",
		old: p3(`message M { uint32 a = 1; }`), new: p3(`message M { uint64 a = 1; }`),
		forward: []string{RuleFieldScalarNarrowed}},
	{name: "sint32 widened to sint64",
		old: p3(`message M { sint32 a = 1; }`), new: p3(`message M { sint64 a = 1; }`),
		forward: []string{RuleFieldScalarNarrowed}},
	{name: "bool widened to int32",
		old: p3(`message M { bool a = 1; }`), new: p3(`message M { int32 a = 1; }`),
		forward: []string{RuleFieldScalarNarrowed}},
	{name: "int32 to uint32",
		old: p3(`message M { int32 a = 1; }`), new: p3(`message M { uint32 a = 1; }`),
		backward: []string{RuleFieldScalarNarrowed}, forward: []string{RuleFieldScalarNarrowed}},
	{name: "fixed32 to sfixed32",
		old: p3(`message M { fixed32 a = 1; }`), new: p3(`message M { sfixed32 a = 1; }`),
		backward: []string{RuleFieldScalarNarrowed}, forward: []string{RuleFieldScalarNarrowed}},
	{name: "string to bytes",
		old: p3(`message M { string a = 1; }`), new: p3(`message M { bytes a = 1; }`),
		forward: []string{RuleFieldScalarNarrowed}},
	{name: "closed enum to int32",
		old: p2(`enum E { A = 0; B = 1; } message M { optional E e = 1; }`), new: p2(`message M { optional int32 e = 1; }`),
		forward: []string{RuleFieldScalarNarrowed}},
	{name: "enum with negative values to uint32",
		old: p3(`enum E { A = 0; NEG = -1; } message M { E e = 1; }`), new: p3(`message M { uint32 e = 1; }`),
		backward: []string{RuleFieldScalarNarrowed}, forward: []string{RuleFieldScalarNarrowed}},
	{name: "enum without negative values to uint32",
		old: p3(`enum E { A = 0; B = 7; } message M { E e = 1; }`), new: p3(`message M { uint32 e = 1; }`),
		forward: []string{RuleFieldScalarNarrowed}},
	{name: "message type changed",
		old:      p3(`message M { A x = 1; } message A { int32 v = 1; } message B { int32 v = 1; }`),
		new:      p3(`message M { B x = 1; } message A { int32 v = 1; } message B { int32 v = 1; }`),
		backward: []string{RuleFieldNamedTypeChanged}, forward: []string{RuleFieldNamedTypeChanged}},
	{name: "enum type changed",
		old:      p3(`enum E { A = 0; } enum F { B = 0; } message M { E x = 1; }`),
		new:      p3(`enum E { A = 0; } enum F { B = 0; } message M { F x = 1; }`),
		backward: []string{RuleFieldNamedTypeChanged}, forward: []string{RuleFieldNamedTypeChanged}},
	{name: "number reused by a different field",
		old: p3(`message M { string name = 2; }`), new: p3(`message M { int64 count = 2; }`),
		backward: []string{RuleFieldNumberReused}, forward: []string{RuleFieldNumberReused}},
	{name: "field type changed in a nested message",
		old: p3(`message M { message N { int32 x = 1; } N n = 1; }`), new: p3(`message M { message N { string x = 1; } N n = 1; }`),
		backward: []string{RuleFieldScalarKindChanged}, forward: []string{RuleFieldScalarKindChanged}},
	{name: "field type changed inside a recursive type",
		old: p3(`message Node { int32 v = 1; repeated Node kids = 2; }`), new: p3(`message Node { string v = 1; repeated Node kids = 2; }`),
		backward: []string{RuleFieldScalarKindChanged}, forward: []string{RuleFieldScalarKindChanged}},

	// Cardinality.
	{name: "singular to repeated",
		old: p3(`message M { int32 a = 1; }`), new: p3(`message M { repeated int32 a = 1; }`),
		forward: []string{RuleFieldCardinalityChanged}},
	{name: "singular message to repeated",
		old: p3(`message M { S s = 1; } message S { int32 x = 1; }`), new: p3(`message M { repeated S s = 1; } message S { int32 x = 1; }`),
		forward: []string{RuleFieldCardinalityChanged}},

	// Required fields.
	{name: "required field added",
		old: p2(`message M { optional int32 a = 1; }`), new: p2(`message M { optional int32 a = 1; required int32 b = 2; }`),
		backward: []string{RuleRequiredFieldAdded}},
	{name: "optional field made required",
		old: p2(`message M { optional int32 a = 1; }`), new: p2(`message M { required int32 a = 1; }`),
		backward: []string{RuleRequiredFieldAdded}},
	{name: "required field removed and reserved",
		old: p2(`message M { optional int32 a = 1; required int32 b = 2; }`), new: p2(`message M { optional int32 a = 1; reserved 2; }`),
		forward: []string{RuleRequiredFieldRemoved}},
	{name: "required field removed, not reserved",
		old: p2(`message M { optional int32 a = 1; required int32 b = 2; }`), new: p2(`message M { optional int32 a = 1; }`),
		forward: []string{RuleRequiredFieldAdded}},

	// Oneofs.
	{name: "oneof field removed",
		old: p3(`message M { oneof o { int32 a = 1; string b = 2; } }`), new: p3(`message M { oneof o { int32 a = 1; } }`),
		backward: []string{RuleOneofFieldRemoved}},
	{name: "two fields moved into a oneof",
		old: p3(`message M { int32 a = 1; string b = 2; }`), new: p3(`message M { oneof o { int32 a = 1; string b = 2; } }`),
		backward: []string{RuleMultipleFieldsMovedToOneof}},
	{name: "field moved into an existing oneof",
		old: p3(`message M { int32 a = 1; oneof o { string b = 2; } }`), new: p3(`message M { oneof o { int32 a = 1; string b = 2; } }`),
		backward: []string{RuleFieldMovedToExistingOneof}},
	{name: "two oneofs merged",
		old: p3(`message M { oneof o { int32 a = 1; } oneof p { string b = 2; } }`), new: p3(`message M { oneof o { int32 a = 1; string b = 2; } }`),
		backward: []string{RuleFieldMovedToExistingOneof}},

	// Enums.
	{name: "closed enum value removed",
		old: p2(`enum E { A = 0; B = 1; C = 2; } message M { optional E e = 1; }`), new: p2(`enum E { A = 0; B = 1; } message M { optional E e = 1; }`),
		backward: []string{RuleEnumValueRemoved}},
	{name: "closed enum value added",
		old: p2(`enum E { A = 0; } message M { optional E e = 1; }`), new: p2(`enum E { A = 0; B = 1; } message M { optional E e = 1; }`),
		forward: []string{RuleEnumValueRemoved}},

	// Several issues, reported in order: package, then by position and number.
	{name: "several changes",
		old:      p3(`message A { int32 x = 1; string y = 2; oneof o { int32 p = 3; int32 q = 4; } } message B { int32 z = 1; }`),
		new:      "syntax = \"proto3\"; package acme.v2; message A { string x = 1; repeated string y = 2; oneof o { int32 p = 3; } }",
		backward: []string{RulePackageChanged, RuleFieldScalarKindChanged, RuleOneofFieldRemoved, RuleMessageRemoved},
		forward:  []string{RulePackageChanged, RuleFieldScalarKindChanged, RuleFieldCardinalityChanged}},
}

func rules(issues []schema.Issue) []string {
	out := []string{}
	for _, i := range issues {
		out = append(out, i.Rule)
	}
	return out
}

func TestCheckCases(t *testing.T) {
	for _, tc := range compatCases {
		t.Run(tc.name, func(t *testing.T) {
			old, nw := mustParse(t, tc.old), mustParse(t, tc.new)
			want := func(w []string) []string {
				if w == nil {
					return []string{}
				}
				return w
			}
			if got := nw.Check(old); !slices.Equal(rules(got), want(tc.backward)) {
				t.Errorf("backward (new reads old): got %v, want %v", got, tc.backward)
			}
			if got := old.Check(nw); !slices.Equal(rules(got), want(tc.forward)) {
				t.Errorf("forward (old reads new): got %v, want %v", got, tc.forward)
			}
		})
	}
}

// TestCheckEveryRule makes sure the table exercises every rule (but
// SCHEMA_TYPE_CHANGED, which needs another format; see below).
func TestCheckEveryRule(t *testing.T) {
	all := []string{RulePackageChanged, RuleMessageRemoved, RuleMessageMoved, RuleMessageRenamed,
		RuleFieldKindChanged, RuleFieldScalarKindChanged, RuleFieldScalarNarrowed, RuleFieldNamedTypeChanged,
		RuleFieldNumberReused, RuleFieldCardinalityChanged, RuleRequiredFieldAdded, RuleRequiredFieldRemoved,
		RuleOneofFieldRemoved, RuleMultipleFieldsMovedToOneof, RuleFieldMovedToExistingOneof, RuleEnumValueRemoved}
	for _, r := range all {
		found := false
		for _, tc := range compatCases {
			if slices.Contains(tc.backward, r) || slices.Contains(tc.forward, r) {
				found = true
			}
		}
		if !found {
			t.Errorf("no case for %s", r)
		}
	}
}

type otherSchema struct{ schema.Schema }

func TestCheckOtherType(t *testing.T) {
	s := mustParse(t, p3(`message M { int32 a = 1; }`))
	if got := rules(s.Check(otherSchema{})); !slices.Equal(got, []string{RuleSchemaTypeChanged}) {
		t.Errorf("got %v", got)
	}
}

func TestCheckPaths(t *testing.T) {
	old := mustParse(t, p3(`message M { message N { int32 x = 1; } N n = 1; map<string, int32> labels = 2; }`))
	nw := mustParse(t, p3(`message M { message N { string x = 1; } N n = 1; map<string, string> labels = 2; }`))
	var got []string
	for _, i := range nw.Check(old) {
		got = append(got, i.Rule+" "+i.Path)
		if i.Message == "" || strings.Contains(i.String(), "%!") {
			t.Errorf("bad message: %v", i)
		}
	}
	want := []string{RuleFieldScalarKindChanged + " acme.M.N.x", RuleFieldScalarKindChanged + " acme.M.labels.value"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestCheckImportedTypes(t *testing.T) {
	depV1 := schema.Dep{Name: "acme/common.proto", Text: "syntax = \"proto3\"; package acme.common; message Money { int64 cents = 1; }"}
	depV2 := schema.Dep{Name: "acme/common.proto", Text: "syntax = \"proto3\"; package acme.common; message Money { string cents = 1; }"}
	text := p3(`import "acme/common.proto"; message Order { acme.common.Money total = 1; }`)
	old, nw := mustParse(t, text, depV1), mustParse(t, text, depV2)
	got := nw.Check(old)
	if len(got) != 1 || got[0].Rule != RuleFieldScalarKindChanged || got[0].Path != "acme.common.Money.cents" {
		t.Errorf("got %v", got)
	}
	if len(nw.Check(mustParse(t, text, depV2))) != 0 {
		t.Error("same schema and deps are not compatible")
	}
}

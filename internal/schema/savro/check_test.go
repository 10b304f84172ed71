package savro

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/schema"
	"github.com/twmb/avro"
)

// rec is a record R with the given fields.
func rec(fields ...string) string {
	return `{"type":"record","name":"R","namespace":"ns","fields":[` + strings.Join(fields, ",") + `]}`
}

// fld is a field of type typ, with a default if def is not "".
func fld(name, typ, def string) string {
	if def != "" {
		return fmt.Sprintf(`{"name":%q,"type":%s,"default":%s}`, name, typ, def)
	}
	return fmt.Sprintf(`{"name":%q,"type":%s}`, name, typ)
}

func enum(syms ...string) string {
	return `{"type":"enum","name":"E","symbols":["` + strings.Join(syms, `","`) + `"]}`
}

// compatCases: a and b are two versions of a schema; aReadsB are the rules
// a.Check(b) breaks (a reading b's data), bReadsA the other direction.
var compatCases = []struct {
	name             string
	a, b             string
	aReadsB, bReadsA []string
}{
	{"identical", rec(fld("x", `"int"`, "")), rec(fld("x", `"int"`, "")), nil, nil},
	{"field added with default",
		rec(fld("x", `"int"`, ""), fld("y", `"string"`, `"none"`)), rec(fld("x", `"int"`, "")), nil, nil},
	{"field added without default",
		rec(fld("x", `"int"`, ""), fld("y", `"string"`, "")), rec(fld("x", `"int"`, "")),
		[]string{RuleReaderFieldMissingDefault}, nil},
	{"optional field added",
		rec(fld("x", `"int"`, ""), fld("y", `["null","string"]`, "null")), rec(fld("x", `"int"`, "")), nil, nil},
	{"fields reordered",
		rec(fld("x", `"int"`, ""), fld("y", `"string"`, "")), rec(fld("y", `"string"`, ""), fld("x", `"int"`, "")), nil, nil},
	{"two fields added without default and a narrowing",
		rec(fld("x", `"int"`, ""), fld("y", `"string"`, ""), fld("z", `"int"`, "")), rec(fld("x", `"long"`, "")),
		[]string{RuleTypeMismatch, RuleReaderFieldMissingDefault, RuleReaderFieldMissingDefault}, nil},
	{"int widened to long", rec(fld("x", `"long"`, "")), rec(fld("x", `"int"`, "")), nil, []string{RuleTypeMismatch}},
	{"int widened to float", rec(fld("x", `"float"`, "")), rec(fld("x", `"int"`, "")), nil, []string{RuleTypeMismatch}},
	{"long widened to double", rec(fld("x", `"double"`, "")), rec(fld("x", `"long"`, "")), nil, []string{RuleTypeMismatch}},
	{"float widened to double", rec(fld("x", `"double"`, "")), rec(fld("x", `"float"`, "")), nil, []string{RuleTypeMismatch}},
	{"string and bytes", rec(fld("x", `"string"`, "")), rec(fld("x", `"bytes"`, "")), nil, nil},
	{"string and int", rec(fld("x", `"string"`, "")), rec(fld("x", `"int"`, "")),
		[]string{RuleTypeMismatch}, []string{RuleTypeMismatch}},
	{"top-level primitives", `"boolean"`, `"null"`, []string{RuleTypeMismatch}, []string{RuleTypeMismatch}},
	{"record and array", rec(), `{"type":"array","items":"int"}`, []string{RuleTypeMismatch}, []string{RuleTypeMismatch}},
	{"logical type added on the same type",
		rec(fld("x", `{"type":"long","logicalType":"timestamp-millis"}`, "")), rec(fld("x", `"long"`, "")), nil, nil},
	{"record renamed",
		`{"type":"record","name":"A","fields":[]}`, `{"type":"record","name":"B","fields":[]}`,
		[]string{RuleNameMismatch}, []string{RuleNameMismatch}},
	{"record renamed with an alias for the old name",
		`{"type":"record","name":"B","aliases":["A"],"fields":[]}`, `{"type":"record","name":"A","fields":[]}`,
		nil, []string{RuleNameMismatch}},
	{"namespace changed", `{"type":"record","name":"x.R","fields":[]}`, `{"type":"record","name":"y.R","fields":[]}`, nil, nil},
	{"field renamed with an alias",
		rec(fld("full_name", `"string"`, "")), rec(`{"name":"name","type":"string"}`),
		[]string{RuleReaderFieldMissingDefault}, []string{RuleReaderFieldMissingDefault}},
	{"field renamed keeping the old name as alias",
		rec(`{"name":"full_name","aliases":["name"],"type":"string"}`), rec(fld("name", `"string"`, "")),
		nil, []string{RuleReaderFieldMissingDefault}},
	{"alias and name claim one field",
		rec(`{"name":"a","aliases":["b"],"type":"int"}`), rec(fld("a", `"int"`, ""), fld("b", `"int"`, "")),
		[]string{RuleAmbiguousField}, []string{RuleReaderFieldMissingDefault}},
	{"enum symbol added", rec(fld("e", enum("A", "B", "C"), "")), rec(fld("e", enum("A", "B"), "")),
		nil, []string{RuleMissingEnumSymbols}},
	{"enum symbol added, old reader has a default",
		rec(fld("e", enum("A", "B", "C"), "")),
		rec(fld("e", `{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}`, "")), nil, nil},
	{"enum symbols replaced", rec(fld("e", enum("A", "B"), "")), rec(fld("e", enum("C", "D"), "")),
		[]string{RuleMissingEnumSymbols}, []string{RuleMissingEnumSymbols}},
	{"enum renamed", `{"type":"enum","name":"E","symbols":["A"]}`, `{"type":"enum","name":"F","symbols":["A"]}`,
		[]string{RuleNameMismatch}, []string{RuleNameMismatch}},
	{"fixed resized", `{"type":"fixed","name":"F","size":16}`, `{"type":"fixed","name":"F","size":8}`,
		[]string{RuleFixedSizeMismatch}, []string{RuleFixedSizeMismatch}},
	{"fixed renamed", `{"type":"fixed","name":"F","size":4}`, `{"type":"fixed","name":"G","size":4}`,
		[]string{RuleNameMismatch}, []string{RuleNameMismatch}},
	{"decimal precision changed",
		`{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}`,
		`{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}`,
		[]string{RuleDecimalMismatch}, []string{RuleDecimalMismatch}},
	{"decimal scale changed on a fixed",
		`{"type":"fixed","name":"D","size":8,"logicalType":"decimal","precision":10,"scale":2}`,
		`{"type":"fixed","name":"D","size":8,"logicalType":"decimal","precision":10}`,
		[]string{RuleDecimalMismatch}, []string{RuleDecimalMismatch}},
	{"field made optional", rec(fld("x", `["null","string"]`, "null")), rec(fld("x", `"string"`, "")),
		nil, []string{RuleTypeMismatch}},
	{"union branch added", `["null","string","int"]`, `["null","string"]`, nil, []string{RuleMissingUnionBranch}},
	{"union branches swapped", `["string","null"]`, `["null","string"]`, nil, nil},
	{"reader union lacks the writer's type", `["null","string"]`, `"boolean"`,
		[]string{RuleMissingUnionBranch}, []string{RuleTypeMismatch, RuleTypeMismatch}},
	{"union branch read through promotion", `["null","double"]`, `["null","int"]`, nil, []string{RuleMissingUnionBranch}},
	{"union of records, one renamed",
		`[{"type":"record","name":"A","fields":[]},{"type":"record","name":"C","fields":[]}]`,
		`[{"type":"record","name":"A","fields":[]},{"type":"record","name":"B","fields":[]}]`,
		[]string{RuleMissingUnionBranch}, []string{RuleMissingUnionBranch}},
	{"array items widened", `{"type":"array","items":"long"}`, `{"type":"array","items":"int"}`, nil, []string{RuleTypeMismatch}},
	{"map values changed", `{"type":"map","values":"string"}`, `{"type":"map","values":"boolean"}`,
		[]string{RuleTypeMismatch}, []string{RuleTypeMismatch}},
	{"nested record field added without default",
		rec(fld("addr", `{"type":"record","name":"A","fields":[{"name":"zip","type":"string"},{"name":"city","type":"string"}]}`, "")),
		rec(fld("addr", `{"type":"record","name":"A","fields":[{"name":"zip","type":"string"}]}`, "")),
		[]string{RuleReaderFieldMissingDefault}, nil},
	{"recursive list value widened",
		`{"type":"record","name":"L","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","L"]}]}`,
		`{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}`,
		nil, []string{RuleTypeMismatch}},
	{"record and error of one name", `{"type":"error","name":"R","fields":[]}`, `{"type":"record","name":"R","fields":[]}`, nil, nil},
}

func mustParse(t testing.TB, text string, deps ...schema.Dep) *Schema {
	t.Helper()
	s, err := parse(text, deps)
	if err != nil {
		t.Fatalf("parse %s: %v", text, err)
	}
	return s
}

func rules(issues []schema.Issue) []string {
	var out []string
	for _, i := range issues {
		out = append(out, i.Rule)
	}
	return out
}

func TestCheckCases(t *testing.T) {
	for _, c := range compatCases {
		t.Run(c.name, func(t *testing.T) {
			a, b := mustParse(t, c.a), mustParse(t, c.b)
			checkDirection(t, "a reads b", a, b, c.aReadsB)
			checkDirection(t, "b reads a", b, a, c.bReadsA)
		})
	}
}

func checkDirection(t *testing.T, dir string, r, w *Schema, want []string) {
	t.Helper()
	issues := r.Check(w)
	if got := rules(issues); !slices.Equal(got, want) {
		t.Errorf("%s: rules %v, want %v (issues %v)", dir, got, want, issues)
	}
	for _, i := range issues {
		if i.Path == "" || i.Message == "" {
			t.Errorf("%s: issue without path or message: %+v", dir, i)
		}
	}
	// The walk must agree with the library's verdict on its own, or
	// Check is only right by its fallback.
	libErr := avro.CheckCompatibility(w.lib, r.lib)
	if walked := walkCompat(r.root, w.root); (len(walked) == 0) != (libErr == nil) {
		t.Errorf("%s: walk found %v, library %v", dir, walked, libErr)
	}
}

func TestCheckEveryRuleHasACase(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range compatCases {
		for _, r := range append(slices.Clone(c.aReadsB), c.bReadsA...) {
			covered[r] = true
		}
	}
	for _, r := range []string{RuleTypeMismatch, RuleNameMismatch, RuleFixedSizeMismatch, RuleMissingEnumSymbols,
		RuleReaderFieldMissingDefault, RuleMissingUnionBranch, RuleDecimalMismatch, RuleAmbiguousField} {
		if !covered[r] {
			t.Errorf("no case for %s", r)
		}
	}
}

func TestCheckPathsAndMessages(t *testing.T) {
	reader := mustParse(t, rec(
		fld("addr", `{"type":"record","name":"A","fields":[{"name":"zip","type":"int"},{"name":"tags","type":{"type":"array","items":"int"}}]}`, ""),
		fld("e", enum("A"), "")))
	writer := mustParse(t, rec(
		fld("addr", `{"type":"record","name":"A","fields":[{"name":"zip","type":"string"},{"name":"tags","type":{"type":"array","items":"long"}}]}`, ""),
		fld("e", enum("A", "B", "C"), "")))
	got := reader.Check(writer)
	want := []schema.Issue{
		{Rule: RuleTypeMismatch, Path: "/fields/addr/fields/zip"},
		{Rule: RuleTypeMismatch, Path: "/fields/addr/fields/tags/items"},
		{Rule: RuleMissingEnumSymbols, Path: "/fields/e"},
	}
	if len(got) != len(want) {
		t.Fatalf("issues %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Rule != want[i].Rule || got[i].Path != want[i].Path {
			t.Errorf("issue %d: %v, want %s at %s", i, got[i], want[i].Rule, want[i].Path)
		}
	}
	if !strings.Contains(got[2].Message, "B, C") {
		t.Errorf("enum message does not list the missing symbols: %s", got[2].Message)
	}
	if !strings.Contains(got[0].Message, "string") || !strings.Contains(got[0].Message, "int") {
		t.Errorf("type message does not name the types: %s", got[0].Message)
	}
}

func TestCheckDeterministic(t *testing.T) {
	a := mustParse(t, rec(fld("a", `"int"`, ""), fld("b", `"int"`, ""), fld("c", `"int"`, ""), fld("d", `"string"`, "")))
	b := mustParse(t, rec(fld("d", `"int"`, "")))
	first := fmt.Sprint(a.Check(b))
	for range 20 {
		if got := fmt.Sprint(a.Check(b)); got != first {
			t.Fatalf("issues changed between calls:\n%s\n%s", first, got)
		}
	}
}

type otherSchema struct{ schema.Schema }

func TestCheckOtherType(t *testing.T) {
	got := mustParse(t, `"int"`).Check(otherSchema{})
	if len(got) != 1 || got[0].Rule != RuleTypeMismatch {
		t.Errorf("issues %v, want one %s", got, RuleTypeMismatch)
	}
}

func TestLibIssueMapping(t *testing.T) {
	for _, c := range compatCases {
		for _, dir := range []struct {
			r, w string
			want []string
		}{{c.a, c.b, c.aReadsB}, {c.b, c.a, c.bReadsA}} {
			if len(dir.want) == 0 {
				continue
			}
			r, w := mustParse(t, dir.r), mustParse(t, dir.w)
			err := avro.CheckCompatibility(w.lib, r.lib)
			if got := libIssue(err).Rule; !slices.Contains(dir.want, got) {
				t.Errorf("%s: library error %v maps to %s, want one of %v", c.name, err, got, dir.want)
			}
		}
	}
}

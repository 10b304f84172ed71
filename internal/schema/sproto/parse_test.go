package sproto

import (
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/schema"
)

func TestParseImports(t *testing.T) {
	money := schema.Dep{Name: "acme/money.proto", Text: `syntax = "proto3"; package acme.money; message Money { int64 cents = 1; string currency = 2; }`}
	line := schema.Dep{Name: "acme/line.proto", Text: `syntax = "proto3"; package acme.line; import "acme/money.proto"; message Line { string sku = 1; acme.money.Money price = 2; }`}
	text := p3(`import "acme/line.proto"; import "google/protobuf/timestamp.proto";
		message Order { repeated acme.line.Line lines = 1; google.protobuf.Timestamp at = 2; }`)
	s := mustParse(t, text, money, line)
	payload := encode(t, s, nil, `{"lines": [{"sku": "x", "price": {"cents": "5", "currency": "EUR"}}], "at": "2025-01-01T00:00:00Z"}`)
	if err := s.Validate(payload, nil); err != nil {
		t.Fatal(err)
	}
}

func TestParseErrors(t *testing.T) {
	self := schema.Dep{Name: "self.proto", Text: `syntax = "proto3"; import "self.proto"; message S {}`}
	a := schema.Dep{Name: "a.proto", Text: `syntax = "proto3"; import "b.proto"; message A {}`}
	b := schema.Dep{Name: "b.proto", Text: `syntax = "proto3"; import "a.proto"; message B {}`}
	manyDeps := make([]schema.Dep, schema.MaxDeps+1)
	for i := range manyDeps {
		manyDeps[i] = schema.Dep{Name: strings.Repeat("x", i+1) + ".proto", Text: `syntax = "proto3";`}
	}
	cases := []struct {
		name, text string
		deps       []schema.Dep
		want       string // in the error
	}{
		{"syntax error", p3("message M { int32 a = 1 }"), nil, "<schema>:3:"},
		{"unknown type", p3("message M { Nope a = 1; }"), nil, "<schema>:3:13: field acme.M.a: unknown type Nope"},
		{"missing import", p3(`import "acme/missing.proto"; message M {}`), nil, `import "acme/missing.proto" is neither among the schema's references nor a standard import`},
		{"imports itself", p3(`import "<schema>"; message M {}`), nil, "cycle"},
		{"dep imports itself", p3(`import "self.proto"; message M {}`), []schema.Dep{self}, "cycle"},
		{"deps import each other", p3(`import "a.proto"; message M {}`), []schema.Dep{a, b}, "cycle"},
		{"duplicate field number", p3("message M { int32 a = 1; int32 b = 1; }"), nil, "<schema>:3:"},
		{"too many deps", p3("message M {}"), manyDeps, "more than the 256 allowed"},
		{"duplicate dep", p3("message M {}"), []schema.Dep{a, a}, `reference "a.proto" is given twice`},
		{"unnamed dep", p3("message M {}"), []schema.Dep{{Text: "x"}}, "has no name"},
		{"dep named like the schema", p3("message M {}"), []schema.Dep{{Name: mainFile}}, "reserved"},
		{"huge schema", p3("message M {}" + strings.Repeat(" ", maxFileSize)), nil, "more than the 1048576 allowed"},
		{"deep brackets", p3(strings.Repeat("message M {", 300)), nil, "nests brackets"},
		{"deep messages", p3(nested(maxNesting + 1)), nil, "nesting depth"},
		{"empty", "", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Format{}.Parse(tc.text, tc.deps)
			if tc.name == "empty" {
				// An empty file is a valid, empty proto2 file; it has no
				// message to validate against.
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Validate(nil, nil); err == nil {
					t.Error("validated against a schema without messages")
				}
				return
			}
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// nested returns depth messages, each declared inside the previous one.
func nested(depth int) string {
	return strings.Repeat("message M { int32 a = 1; ", depth) + strings.Repeat("}", depth)
}

// maxNesting is how deep the compiler lets messages nest.
const maxNesting = 31

func TestParseDepthLimit(t *testing.T) {
	if maxNesting > schema.MaxDepth {
		t.Fatal("messages may nest deeper than schema.MaxDepth")
	}
	mustParse(t, p3(nested(maxNesting)))
}

func TestParseManyErrors(t *testing.T) {
	var body strings.Builder
	for range 20 {
		body.WriteString("message M { Nope a = 1; }\n")
	}
	_, err := Format{}.Parse(p3(body.String()), nil)
	if err == nil || !strings.Contains(err.Error(), "stopped after the first ten errors") {
		t.Errorf("got %v", err)
	}
}

func TestParseStandardImportNotReplaced(t *testing.T) {
	// A reference named like a standard file does not replace it.
	fake := schema.Dep{Name: "google/protobuf/timestamp.proto", Text: `syntax = "proto3"; package google.protobuf; message Timestamp { string s = 1; }`}
	s := mustParse(t, p3(`import "google/protobuf/timestamp.proto"; message M { google.protobuf.Timestamp t = 1; }`), fake)
	payload := encode(t, s, nil, `{"t": "2025-01-01T00:00:01Z"}`)
	if err := s.Validate(payload, nil); err != nil {
		t.Fatal(err)
	}
}

func TestParseEditions(t *testing.T) {
	s := mustParse(t, `edition = "2023"; package acme;
		message M { string a = 1; int32 b = 2 [features.field_presence = LEGACY_REQUIRED]; string c = 3 [features.utf8_validation = NONE]; }`)
	m := s.roots[0].info
	if len(m.required) != 1 || m.required[0].name != "b" {
		t.Errorf("required fields: %v", m.required)
	}
	if !m.field(1).utf8 || m.field(3).utf8 {
		t.Errorf("utf8: a=%v c=%v", m.field(1).utf8, m.field(3).utf8)
	}
}

func TestLexicalDepth(t *testing.T) {
	for _, tc := range []struct {
		text string
		want int
	}{
		{"message M { }", 1},
		{`message M { string a = 1 [default = "{{{{"]; }`, 2},
		{"// {{{{\nmessage M {}", 1},
		{"/* {{{{ */ message M { map<string, int32> m = 1; }", 2},
		{"message M { /* unterminated", 1},
		{`'{{{`, 0},
	} {
		if got := lexicalDepth(tc.text); got != tc.want {
			t.Errorf("lexicalDepth(%q) = %d, want %d", tc.text, got, tc.want)
		}
	}
}

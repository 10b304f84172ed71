package sjson

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/schema"
)

func mustParse(t testing.TB, text string, deps ...schema.Dep) schema.Schema {
	t.Helper()
	s, err := Format{}.Parse(text, deps)
	if err != nil {
		t.Fatalf("Parse(%s): %v", text, err)
	}
	return s
}

func TestParseErrors(t *testing.T) {
	deep := strings.Repeat(`{"items":`, schema.MaxDepth+1) + `{"type":"string"}` + strings.Repeat(`}`, schema.MaxDepth+1)
	tooManyDeps := make([]schema.Dep, schema.MaxDeps+1)
	for i := range tooManyDeps {
		tooManyDeps[i] = schema.Dep{Name: strings.Repeat("a", i+1) + ".json", Text: `{}`}
	}
	cases := []struct {
		name, text string
		deps       []schema.Dep
		want       string
	}{
		{"not json", `{"type":`, nil, "not valid JSON"},
		{"trailing data", `{} {}`, nil, "data after the JSON value"},
		{"not a schema", `42`, nil, "neither an object nor a boolean"},
		{"bad type", `{"type":"strin"}`, nil, "does not compile"},
		{"bad keyword value", `{"maxLength":-1}`, nil, "does not compile"},
		{"bad pattern", `{"pattern":"("}`, nil, "does not compile"},
		{"unknown draft", `{"$schema":"http://example.com/s"}`, nil, "not a supported draft"},
		{"missing ref", `{"$ref":"address.json"}`, nil, `no reference named "https://schemas.spool.invalid/address.json"`},
		{"missing absolute ref", `{"$ref":"http://example.com/a.json"}`, nil, "references are never fetched"},
		{"file ref", `{"$ref":"file:///etc/passwd"}`, nil, "references are never fetched"},
		{"missing pointer", `{"$ref":"#/definitions/nope"}`, nil, "does not compile"},
		{"deep subschemas", deep, nil, "deeper than 64"},
		{"deep text", strings.Repeat("[", 1000), nil, "nested deeper than"},
		{"repeated key", `{"type":"string","type":"integer"}`, nil, `key "type" repeated`},
		{"huge exponent", `{"maximum":1e999999999}`, nil, "exponent"},
		{"too many deps", `{}`, tooManyDeps, "more than the 256 allowed"},
		{"dep twice", `{}`, []schema.Dep{{Name: "a.json", Text: `{}`}, {Name: "a.json", Text: `{}`}}, "given twice"},
		{"bad dep", `{"$ref":"a.json"}`, []schema.Dep{{Name: "a.json", Text: `{`}}, `reference "a.json"`},
		{"too many subschemas", `{"properties":{` + strings.Repeat(`"p":{},`, 0) + manyProps(6000) + `}}`, nil, "more than the 5000 allowed"},
		{"unnamed dep", `{}`, []schema.Dep{{Text: `{}`}}, "no name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Format{}.Parse(c.text, c.deps)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestReferences(t *testing.T) {
	country := schema.Dep{Name: "country.json", Text: `{"type":"string","enum":["FR","DE"]}`}
	address := schema.Dep{Name: "address.json", Text: `{"type":"object","properties":{"zip":{"type":"string","maxLength":5},"country":{"$ref":"country.json"}},"required":["zip"]}`}
	person := `{"type":"object","properties":{"name":{"type":"string"},"address":{"$ref":"address.json"}}}`
	s := mustParse(t, person, country, address)
	if err := s.Validate([]byte(`{"name":"a","address":{"zip":"75001","country":"FR"}}`), nil); err != nil {
		t.Fatalf("valid payload rejected: %v", err)
	}
	err := s.Validate([]byte(`{"name":"a","address":{"zip":"750011","country":"IT"}}`), nil)
	if err == nil || !strings.Contains(err.Error(), "/address/zip") || !strings.Contains(err.Error(), "/address/country") {
		t.Fatalf("invalid payload: error %v, want both failures with their locations", err)
	}
	// An absolute name, and a reference into a dep's definitions.
	defs := schema.Dep{Name: "https://example.com/defs.json", Text: `{"definitions":{"id":{"type":"integer","minimum":1}}}`}
	s2 := mustParse(t, `{"properties":{"id":{"$ref":"https://example.com/defs.json#/definitions/id"}}}`, defs)
	if err := s2.Validate([]byte(`{"id":0}`), nil); err == nil {
		t.Fatal("id 0 accepted, want minimum 1")
	}
	// Check follows references into deps: tightening the dep breaks.
	address2 := schema.Dep{Name: "address.json", Text: strings.Replace(address.Text, `"maxLength":5`, `"maxLength":4`, 1)}
	s3 := mustParse(t, person, country, address2)
	if got := rules(s3.Check(s)); got != "MAX_LENGTH_DECREASED" {
		t.Fatalf("Check through dep: %s, want MAX_LENGTH_DECREASED", got)
	}
	if got := rules(s.Check(s3)); got != "" {
		t.Fatalf("Check through dep, other direction: %s, want compatible", got)
	}
}

func TestRecursiveReferences(t *testing.T) {
	tree := `{"type":"object","properties":{"value":{"type":"integer"},"children":{"type":"array","items":{"$ref":"#"}}}}`
	tree2 := `{"definitions":{"node":{"type":"object","properties":{"value":{"type":"number"},"next":{"$ref":"#/definitions/node"}}}},"$ref":"#/definitions/node"}`
	a, b := mustParse(t, tree), mustParse(t, tree2)
	for _, pair := range [][2]schema.Schema{{a, a}, {b, b}, {a, b}, {b, a}} {
		_ = pair[0].Check(pair[1]) // must terminate
	}
	if got := rules(a.Check(a)); got != "" {
		t.Fatalf("recursive schema against itself: %s", got)
	}
	if err := a.Validate([]byte(`{"value":1,"children":[{"value":2,"children":[{"value":"x"}]}]}`), nil); err == nil || !strings.Contains(err.Error(), "/children/0/children/0/value") {
		t.Fatalf("recursive validation error %v", err)
	}
	// Mutually recursive deps, and a dep referring back to the schema by
	// a name that is not among the deps.
	x := schema.Dep{Name: "x.json", Text: `{"properties":{"y":{"$ref":"y.json"}}}`}
	y := schema.Dep{Name: "y.json", Text: `{"properties":{"x":{"$ref":"x.json"}}}`}
	s := mustParse(t, `{"$ref":"x.json"}`, x, y)
	if got := rules(s.Check(s)); got != "" {
		t.Fatalf("mutually recursive deps: %s", got)
	}
	self := schema.Dep{Name: "self.json", Text: `{"properties":{"me":{"$ref":"root.json"}}}`}
	if _, err := (Format{}).Parse(`{"$id":"https://example.com/person.json","$ref":"self.json"}`, []schema.Dep{self}); err == nil {
		t.Fatal("reference to a name not in deps accepted")
	}
	loop := `{"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},"properties":{"p":{"$ref":"#/definitions/a"}}}`
	if s, err := (Format{}).Parse(loop, nil); err == nil {
		_ = s.Check(s)
		_ = s.Validate([]byte(`{"p":1}`), nil)
	}
}

func TestCanonical(t *testing.T) {
	same := [][]string{
		{`{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}}}`,
			` { "properties" : { "b" : {"type":["string"]}, "a": {"type":"integer"} }, "type" : "object" } `,
			`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":true,"properties":{"a":{"type":"integer","minLength":0},"b":{"type":"string"}},"required":[]}`},
		{`{"maximum":1}`, `{"maximum":1.0}`, `{"maximum":10e-1}`, `{"maximum":0.1E+1}`},
		{`{"enum":["a","b"]}`, `{"enum":["b","a"]}`, `{"enum":["\u0062","\u0061"]}`},
		{`{"type":["string","null"]}`, `{"type":["null","string"]}`},
		{`{"required":["a","b"]}`, `{"required":["b","a"]}`},
		{`{"pattern":"a/b"}`, `{"pattern":"a\/b"}`},
		{`{"$schema":"https://json-schema.org/draft/2020-12/schema"}`, `{"$schema":"http://json-schema.org/draft/2020-12/schema#"}`},
	}
	for _, group := range same {
		want := mustParse(t, group[0]).Canonical()
		for _, text := range group[1:] {
			if got := mustParse(t, text).Canonical(); got != want {
				t.Errorf("Canonical(%s) = %s, want %s", text, got, want)
			}
		}
	}
	differ := []string{
		`{"type":"object"}`, `{"type":"string"}`, `{"type":["string","null"]}`,
		`{"maximum":1}`, `{"maximum":1.5}`, `{"exclusiveMaximum":1}`,
		`{"properties":{"a":{}}}`, `{"properties":{"a":{}},"additionalProperties":false}`,
		`{"required":["a"]}`, `{"enum":[1]}`, `{"enum":["1"]}`,
		`{"$schema":"http://json-schema.org/draft-04/schema#"}`, `{}`,
		`{"description":"x"}`, `{"pattern":"a"}`, `{"pattern":"b"}`,
	}
	seen := map[string]string{}
	for _, text := range differ {
		c := mustParse(t, text).Canonical()
		if prev, ok := seen[c]; ok {
			t.Errorf("%s and %s share canonical form %s", prev, text, c)
		}
		seen[c] = text
	}
	if got := mustParse(t, `{ "b" : 1.50, "a":"\u00e9\n" }`).Canonical(); got != `{"a":"é\n","b":1.5}` {
		t.Errorf("canonical spelling %s", got)
	}
	// The canonical form parses to the same canonical form.
	for _, group := range same {
		c := mustParse(t, group[0]).Canonical()
		if again := mustParse(t, c).Canonical(); again != c {
			t.Errorf("canonical form not stable: %s then %s", c, again)
		}
	}
}

func TestNormNumber(t *testing.T) {
	cases := map[string]string{
		"0": "0", "-0": "0", "0.0": "0", "1": "1", "1.0": "1", "10e-1": "1", "100": "100", "1e2": "100",
		"1.5": "1.5", "-1.50": "-1.5", "0.001": "0.001", "1e-7": "0.0000001", "1e-8": "1e-8",
		"1e20": "100000000000000000000", "1e21": "1e21", "123456789012345678901234567890": "12345678901234567890123456789e1",
		"0.000012e3": "0.012", "12.34e1": "123.4",
	}
	for in, want := range cases {
		if got := normNumber(in); got != want {
			t.Errorf("normNumber(%s) = %s, want %s", in, got, want)
		}
	}
}

func manyProps(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"p%d":{}`, i)
	}
	return b.String()
}

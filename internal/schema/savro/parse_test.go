package savro

import (
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/schema"
)

const addressDep = `{"type":"record","name":"Address","namespace":"com.acme","fields":[
	{"name":"zip","type":"string"},
	{"name":"country","type":{"type":"enum","name":"Country","symbols":["FR","DE"]}}]}`

func TestParseReference(t *testing.T) {
	deps := []schema.Dep{{Name: "com.acme.Address", Text: addressDep}}
	s := mustParse(t, `{"type":"record","name":"User","namespace":"com.acme","fields":[
		{"name":"home","type":"Address"},
		{"name":"work","type":["null","com.acme.Address"],"default":null},
		{"name":"born","type":"com.acme.Country"}]}`, deps...)
	want := `{"type":"record","name":"com.acme.User","fields":[{"name":"home","type":"com.acme.Address"},` +
		`{"name":"work","type":["null","com.acme.Address"],"default":null},{"name":"born","type":"com.acme.Country"}]}`
	if got := s.Canonical(); got != want {
		t.Errorf("canonical\n%s\nwant\n%s", got, want)
	}
	// The canonical form parses again with the same references.
	again := mustParse(t, s.Canonical(), deps...)
	if again.Canonical() != want {
		t.Errorf("canonical form of the canonical form: %s", again.Canonical())
	}
	// And validates payloads through the referenced types.
	// home {zip "FR", country FR}, work branch 1 {zip "DE", country DE}, born FR.
	payload := []byte{4, 'F', 'R', 0, 2, 4, 'D', 'E', 2, 0}
	if err := s.Validate(payload, nil); err != nil {
		t.Errorf("validate: %v", err)
	}
}

func TestParseTransitiveReferences(t *testing.T) {
	deps := []schema.Dep{
		{Name: "com.acme.Address", Text: addressDep},
		{Name: "com.acme.Customer", Text: `{"type":"record","name":"com.acme.Customer","fields":[{"name":"address","type":"com.acme.Address"}]}`},
	}
	s := mustParse(t, `{"type":"record","name":"Order","fields":[{"name":"c","type":"com.acme.Customer"},{"name":"a","type":"com.acme.Address"}]}`, deps...)
	if want := `{"type":"record","name":"Order","fields":[{"name":"c","type":"com.acme.Customer"},{"name":"a","type":"com.acme.Address"}]}`; s.Canonical() != want {
		t.Errorf("canonical %s", s.Canonical())
	}
}

func TestParseErrors(t *testing.T) {
	deep := strings.Repeat(`{"type":"array","items":`, schema.MaxDepth) + `"int"` + strings.Repeat(`}`, schema.MaxDepth)
	deepJSON := strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000)
	tooMany := make([]schema.Dep, schema.MaxDeps+1)
	cases := []struct {
		name string
		text string
		deps []schema.Dep
		want string
	}{
		{"malformed JSON", `{"type":"record"`, nil, "avro schema"},
		{"empty", ``, nil, "avro schema"},
		{"unknown type", `{"type":"record","name":"R","fields":[{"name":"a","type":"strng"}]}`, nil, `"strng"`},
		{"missing reference", `{"type":"record","name":"R","fields":[{"name":"a","type":"com.acme.Address"}]}`, nil, `"com.acme.Address"`},
		{"reference defines another name", `"int"`, []schema.Dep{{Name: "com.acme.Other", Text: addressDep}}, `defines no type named "com.acme.Other"`},
		{"reference without name", `"int"`, []schema.Dep{{Text: addressDep}}, "no name"},
		{"bad reference", `"int"`, []schema.Dep{{Name: "X", Text: `{`}}, `reference 0 ("X")`},
		{"references in the wrong order", `"int"`, []schema.Dep{
			{Name: "com.acme.Customer", Text: `{"type":"record","name":"com.acme.Customer","fields":[{"name":"a","type":"com.acme.Address"}]}`},
			{Name: "com.acme.Address", Text: addressDep}}, `"com.acme.Address"`},
		{"too many references", `"int"`, tooMany, "references, more than"},
		{"nested too deep", `{"type":"array","items":` + deep + `}`, nil, "deeper than 64"},
		{"JSON nested too deep", deepJSON, nil, "JSON nests deeper"},
		{"huge text", `"` + strings.Repeat("a", maxTextBytes) + `"`, nil, "more than the"},
		{"bad default", `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}`, nil, "default"},
		{"duplicate field", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}`, nil, "duplicate"},
		{"record that contains itself", `{"type":"record","name":"R","fields":[{"name":"r","type":"R"}]}`, nil, "contains itself"},
		{"records that contain each other", `{"type":"record","name":"A","fields":[{"name":"b","type":{"type":"record","name":"B","fields":[{"name":"a","type":"A"}]}}]}`, nil, "contains itself"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Format{}.Parse(c.text, c.deps)
			if err == nil {
				t.Fatal("parsed")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestParseDepthLimit(t *testing.T) {
	at := func(levels int) string {
		return strings.Repeat(`{"type":"array","items":`, levels-1) + `"int"` + strings.Repeat(`}`, levels-1)
	}
	if _, err := parse(at(schema.MaxDepth), nil); err != nil {
		t.Errorf("%d levels: %v", schema.MaxDepth, err)
	}
	if _, err := parse(at(schema.MaxDepth+1), nil); err == nil {
		t.Errorf("%d levels parsed", schema.MaxDepth+1)
	}
	var b strings.Builder
	for i := range schema.MaxDepth - 1 {
		b.WriteString(strings.Replace(`{"type":"record","name":"R%d","fields":[{"name":"f","type":`, "%d", string(rune('a'+i%26))+strings.Repeat("x", i/26), 1))
	}
	text := b.String() + `"int"` + strings.Repeat(`}]}`, schema.MaxDepth-1)
	if _, err := parse(text, nil); err != nil {
		t.Errorf("%d nested records: %v", schema.MaxDepth, err)
	}
}

func TestParseRecursive(t *testing.T) {
	s := mustParse(t, `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},
		{"name":"kids","type":{"type":"array","items":"Node"}},{"name":"next","type":["null","Node"]}]}`)
	want := `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"kids","type":{"type":"array","items":"Node"}},{"name":"next","type":["null","Node"]}]}`
	if s.Canonical() != want {
		t.Errorf("canonical %s", s.Canonical())
	}
	// A schema that refers to itself by a name no dep has.
	if _, err := parse(`{"type":"record","name":"A","fields":[{"name":"b","type":"B"}]}`, []schema.Dep{{Name: "B",
		Text: `{"type":"record","name":"B","fields":[{"name":"a","type":"A"}]}`}}); err == nil || !strings.Contains(err.Error(), `"A"`) {
		t.Errorf("cyclic reference: %v", err)
	}
}

package sjson

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/schema"
)

// rules lists issues' rule names, sorted and joined by spaces.
func rules(issues []schema.Issue) string {
	names := make([]string, len(issues))
	for i, is := range issues {
		names[i] = is.Rule
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), " ")
}

// compatCases: reader.Check(writer) must give exactly the rules listed
// (sorted); "" is compatible. Cases come in pairs where a change breaks one
// way only.
var compatCases = []struct {
	name, reader, writer, want string
}{
	// Identity and no-op changes.
	{"same", personSchema, personSchema, ""},
	{"reordered", `{"properties":{"b":{"type":"string"},"a":{"type":"integer"}},"type":"object"}`, `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}}}`, ""},
	{"description changed", `{"type":"string","description":"new"}`, `{"type":"string","description":"old"}`, ""},
	{"true reader", `true`, `{"type":"string"}`, ""},
	{"false writer", `{"type":"string"}`, `false`, ""},
	{"false reader", `false`, `{}`, "TYPE_NARROWED"},

	// Types.
	{"type changed", `{"type":"string"}`, `{"type":"integer"}`, "TYPE_CHANGED"},
	{"type changed back", `{"type":"integer"}`, `{"type":"string"}`, "TYPE_CHANGED"},
	{"integer to number widens", `{"type":"number"}`, `{"type":"integer"}`, ""},
	{"number to integer narrows", `{"type":"integer"}`, `{"type":"number"}`, "TYPE_NARROWED"},
	{"type union narrowed", `{"type":"string"}`, `{"type":["string","null"]}`, "TYPE_NARROWED"},
	{"type union extended", `{"type":["string","null"]}`, `{"type":"string"}`, ""},
	{"type added", `{"type":"string"}`, `{}`, "TYPE_NARROWED"},
	{"type removed", `{}`, `{"type":"string"}`, ""},
	{"enum limits the writer's types", `{"type":"string"}`, `{"enum":["a","b"]}`, ""},

	// Enums.
	{"enum narrowed", `{"enum":["a","b"]}`, `{"enum":["a","b","c"]}`, "ENUM_ARRAY_NARROWED"},
	{"enum extended", `{"enum":["a","b","c"]}`, `{"enum":["a","b"]}`, ""},
	{"enum added", `{"type":"string","enum":["a"]}`, `{"type":"string"}`, "ENUM_ARRAY_NARROWED"},
	{"enum removed", `{"type":"string"}`, `{"type":"string","enum":["a"]}`, ""},
	{"const in enum", `{"enum":[1,2]}`, `{"const":1.0}`, ""},
	{"const changed", `{"const":1}`, `{"const":2}`, "ENUM_ARRAY_NARROWED"},

	// Strings.
	{"maxLength added", `{"type":"string","maxLength":5}`, `{"type":"string"}`, "MAX_LENGTH_ADDED"},
	{"maxLength removed", `{"type":"string"}`, `{"type":"string","maxLength":5}`, ""},
	{"maxLength decreased", `{"type":"string","maxLength":4}`, `{"type":"string","maxLength":5}`, "MAX_LENGTH_DECREASED"},
	{"maxLength increased", `{"type":"string","maxLength":5}`, `{"type":"string","maxLength":4}`, ""},
	{"minLength added", `{"type":"string","minLength":1}`, `{"type":"string"}`, "MIN_LENGTH_ADDED"},
	{"minLength removed", `{"type":"string"}`, `{"type":"string","minLength":1}`, ""},
	{"minLength increased", `{"type":"string","minLength":2}`, `{"type":"string","minLength":1}`, "MIN_LENGTH_INCREASED"},
	{"minLength decreased", `{"type":"string","minLength":1}`, `{"type":"string","minLength":2}`, ""},
	{"pattern added", `{"type":"string","pattern":"^a"}`, `{"type":"string"}`, "PATTERN_ADDED"},
	{"pattern removed", `{"type":"string"}`, `{"type":"string","pattern":"^a"}`, ""},
	{"pattern changed", `{"type":"string","pattern":"^a"}`, `{"type":"string","pattern":"^b"}`, "PATTERN_CHANGED"},
	{"pattern changed back", `{"type":"string","pattern":"^b"}`, `{"type":"string","pattern":"^a"}`, "PATTERN_CHANGED"},
	{"format added", `{"type":"string","format":"email"}`, `{"type":"string"}`, "FORMAT_ADDED"},
	{"format removed", `{"type":"string"}`, `{"type":"string","format":"email"}`, ""},
	{"format changed", `{"type":"string","format":"email"}`, `{"type":"string","format":"uri"}`, "FORMAT_CHANGED"},
	{"string rules ignored for numbers", `{"type":"integer","maxLength":3}`, `{"type":"integer"}`, ""},

	// Numbers.
	{"maximum added", `{"type":"number","maximum":10}`, `{"type":"number"}`, "MAXIMUM_ADDED"},
	{"maximum removed", `{"type":"number"}`, `{"type":"number","maximum":10}`, ""},
	{"maximum decreased", `{"type":"number","maximum":9}`, `{"type":"number","maximum":10}`, "MAXIMUM_DECREASED"},
	{"maximum increased", `{"type":"number","maximum":10}`, `{"type":"number","maximum":9.5}`, ""},
	{"minimum added", `{"type":"number","minimum":0}`, `{"type":"number"}`, "MINIMUM_ADDED"},
	{"minimum removed", `{"type":"number"}`, `{"type":"number","minimum":0}`, ""},
	{"minimum increased", `{"type":"number","minimum":1}`, `{"type":"number","minimum":0}`, "MINIMUM_INCREASED"},
	{"minimum decreased", `{"type":"number","minimum":0}`, `{"type":"number","minimum":1}`, ""},
	{"exclusiveMaximum added", `{"type":"number","exclusiveMaximum":10}`, `{"type":"number"}`, "EXCLUSIVE_MAXIMUM_ADDED"},
	{"exclusiveMaximum decreased", `{"type":"number","exclusiveMaximum":10}`, `{"type":"number","maximum":10}`, "EXCLUSIVE_MAXIMUM_DECREASED"},
	{"exclusiveMaximum to maximum", `{"type":"number","maximum":10}`, `{"type":"number","exclusiveMaximum":10}`, ""},
	{"exclusiveMinimum added", `{"type":"number","exclusiveMinimum":0}`, `{"type":"number"}`, "EXCLUSIVE_MINIMUM_ADDED"},
	{"exclusiveMinimum increased", `{"type":"number","exclusiveMinimum":0}`, `{"type":"number","minimum":0}`, "EXCLUSIVE_MINIMUM_INCREASED"},
	{"exclusiveMinimum to minimum", `{"type":"number","minimum":0}`, `{"type":"number","exclusiveMinimum":0}`, ""},
	{"draft 4 exclusive flag", `{"$schema":"http://json-schema.org/draft-04/schema#","type":"number","maximum":10,"exclusiveMaximum":true}`, `{"type":"number","maximum":10}`, "EXCLUSIVE_MAXIMUM_DECREASED"},
	{"draft 4 reader, draft 7 writer", `{"$schema":"http://json-schema.org/draft-04/schema#","type":"number","maximum":10,"exclusiveMaximum":true}`, `{"type":"number","exclusiveMaximum":10}`, ""},
	{"multipleOf added", `{"type":"number","multipleOf":2}`, `{"type":"number"}`, "MULTIPLE_OF_ADDED"},
	{"multipleOf removed", `{"type":"number"}`, `{"type":"number","multipleOf":2}`, ""},
	{"multipleOf expanded", `{"type":"number","multipleOf":4}`, `{"type":"number","multipleOf":2}`, "MULTIPLE_OF_EXPANDED"},
	{"multipleOf reduced", `{"type":"number","multipleOf":2}`, `{"type":"number","multipleOf":4}`, ""},
	{"multipleOf changed", `{"type":"number","multipleOf":3}`, `{"type":"number","multipleOf":2}`, "MULTIPLE_OF_CHANGED"},
	{"multipleOf 1 for integers", `{"type":"integer","multipleOf":1}`, `{"type":"integer"}`, ""},

	// Arrays.
	{"items added", `{"type":"array","items":{"type":"string"}}`, `{"type":"array"}`, "ITEMS_ADDED"},
	{"items removed", `{"type":"array"}`, `{"type":"array","items":{"type":"string"}}`, ""},
	{"items type changed", `{"type":"array","items":{"type":"string"}}`, `{"type":"array","items":{"type":"integer"}}`, "TYPE_CHANGED"},
	{"items closed", `{"type":"array","items":false}`, `{"type":"array"}`, "ITEMS_REMOVED"},
	{"maxItems added", `{"type":"array","maxItems":3}`, `{"type":"array"}`, "MAX_ITEMS_ADDED"},
	{"maxItems decreased", `{"type":"array","maxItems":3}`, `{"type":"array","maxItems":4}`, "MAX_ITEMS_DECREASED"},
	{"maxItems increased", `{"type":"array","maxItems":4}`, `{"type":"array","maxItems":3}`, ""},
	{"minItems added", `{"type":"array","minItems":1}`, `{"type":"array"}`, "MIN_ITEMS_ADDED"},
	{"minItems increased", `{"type":"array","minItems":2}`, `{"type":"array","minItems":1}`, "MIN_ITEMS_INCREASED"},
	{"minItems decreased", `{"type":"array","minItems":1}`, `{"type":"array","minItems":2}`, ""},
	{"uniqueItems added", `{"type":"array","uniqueItems":true}`, `{"type":"array"}`, "UNIQUE_ITEMS_ADDED"},
	{"uniqueItems removed", `{"type":"array"}`, `{"type":"array","uniqueItems":true}`, ""},
	{"tuple item added to open", `{"items":[{"type":"string"},{"type":"integer"}]}`, `{"items":[{"type":"string"}]}`, "ITEM_ADDED_TO_OPEN_CONTENT_MODEL"},
	{"tuple item added to closed", `{"items":[{"type":"string"},{"type":"integer"}]}`, `{"items":[{"type":"string"}],"additionalItems":false}`, ""},
	{"tuple item removed from closed", `{"items":[{"type":"string"}],"additionalItems":false}`, `{"items":[{"type":"string"},{"type":"integer"}]}`, "ADDITIONAL_ITEMS_REMOVED ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL"},
	{"tuple item removed from open", `{"items":[{"type":"string"}]}`, `{"items":[{"type":"string"},{"type":"integer"}]}`, ""},
	{"additionalItems removed", `{"items":[{"type":"string"}],"additionalItems":false}`, `{"items":[{"type":"string"}]}`, "ADDITIONAL_ITEMS_REMOVED"},
	{"additionalItems narrowed", `{"items":[{"type":"string"}],"additionalItems":{"type":"integer"}}`, `{"items":[{"type":"string"}]}`, "ADDITIONAL_ITEMS_NARROWED"},
	{"additionalItems extended", `{"items":[{"type":"string"}]}`, `{"items":[{"type":"string"}],"additionalItems":{"type":"integer"}}`, ""},
	{"2020 prefixItems", `{"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"string"}],"items":false}`, `{"items":[{"type":"string"}],"additionalItems":false}`, ""},
	{"2020 prefixItems changed", `{"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"integer"}]}`, `{"items":[{"type":"string"}]}`, "TYPE_CHANGED"},

	// Objects.
	{"property added to open", `{"type":"object","properties":{"a":{"type":"string"}}}`, `{"type":"object"}`, "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"},
	{"property removed from open", `{"type":"object"}`, `{"type":"object","properties":{"a":{"type":"string"}}}`, ""},
	{"unconstrained property added", `{"type":"object","properties":{"a":{"description":"anything"}}}`, `{"type":"object"}`, ""},
	{"property added to closed", `{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}`, `{"type":"object","additionalProperties":false}`, ""},
	{"property removed from closed", `{"type":"object","additionalProperties":false}`, `{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}`, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"},
	{"property added to partial, covered", `{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}}`, `{"type":"object","additionalProperties":{"type":"string"}}`, ""},
	{"property added to partial, not covered", `{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":{"type":"string"}}`, `{"type":"object","additionalProperties":{"type":"string"}}`, "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"},
	{"property removed from partial, covered", `{"type":"object","additionalProperties":{"type":"string"}}`, `{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}}`, ""},
	{"property removed from partial, not covered", `{"type":"object","additionalProperties":{"type":"string"}}`, `{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":{"type":"string"}}`, "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"},
	{"property type changed", `{"properties":{"a":{"type":"string"}}}`, `{"properties":{"a":{"type":"boolean"}}}`, "TYPE_CHANGED"},
	{"property made required", `{"properties":{"a":{"type":"string"}},"required":["a"]}`, `{"properties":{"a":{"type":"string"}}}`, "REQUIRED_ATTRIBUTE_ADDED"},
	{"property made optional", `{"properties":{"a":{"type":"string"}}}`, `{"properties":{"a":{"type":"string"}},"required":["a"]}`, ""},
	{"required property added to closed", `{"properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}`, `{"additionalProperties":false}`, "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"},
	{"required property removed from closed", `{"additionalProperties":false}`, `{"properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}`, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"},
	{"required from another allOf member", `{"properties":{"a":{"type":"string"}},"required":["a"]}`, `{"allOf":[{"properties":{"a":{"type":"string"}}},{"required":["a"]}]}`, ""},
	{"additionalProperties removed", `{"type":"object","additionalProperties":false}`, `{"type":"object"}`, "ADDITIONAL_PROPERTIES_REMOVED"},
	{"additionalProperties added back", `{"type":"object"}`, `{"type":"object","additionalProperties":false}`, ""},
	{"additionalProperties narrowed", `{"type":"object","additionalProperties":{"type":"string"}}`, `{"type":"object"}`, "ADDITIONAL_PROPERTIES_NARROWED"},
	{"additionalProperties extended", `{"type":"object"}`, `{"type":"object","additionalProperties":{"type":"string"}}`, ""},
	{"additionalProperties type changed", `{"additionalProperties":{"type":"string"}}`, `{"additionalProperties":{"type":"integer"}}`, "TYPE_CHANGED"},
	{"maxProperties added", `{"type":"object","maxProperties":3}`, `{"type":"object"}`, "MAX_PROPERTIES_ADDED"},
	{"maxProperties decreased", `{"type":"object","maxProperties":3}`, `{"type":"object","maxProperties":4}`, "MAX_PROPERTIES_DECREASED"},
	{"minProperties added", `{"type":"object","minProperties":1}`, `{"type":"object"}`, "MIN_PROPERTIES_ADDED"},
	{"minProperties increased", `{"type":"object","minProperties":2}`, `{"type":"object","minProperties":1}`, "MIN_PROPERTIES_INCREASED"},
	{"minProperties decreased", `{"type":"object","minProperties":1}`, `{"type":"object","minProperties":2}`, ""},
	{"nested property", `{"properties":{"address":{"properties":{"zip":{"type":"string","maxLength":5}}}}}`, `{"properties":{"address":{"properties":{"zip":{"type":"string"}}}}}`, "MAX_LENGTH_ADDED"},
	{"equal patternProperties, closed", `{"patternProperties":{"^x-":{}},"additionalProperties":false}`, `{"patternProperties":{"^x-":{}},"additionalProperties":false}`, ""},
	{"patternProperties added", `{"patternProperties":{"^x-":{"type":"string"}}}`, `{}`, "KEYWORD_ADDED"},
	{"patternProperties changed", `{"patternProperties":{"^x-":{"type":"string"}}}`, `{"patternProperties":{"^y-":{"type":"string"}}}`, "KEYWORD_CHANGED"},
	{"patternProperties removed", `{}`, `{"patternProperties":{"^x-":{"type":"string"}}}`, ""},
	{"writer patterns open its content", `{"additionalProperties":false}`, `{"patternProperties":{"^x-":{}},"additionalProperties":false}`, "ADDITIONAL_PROPERTIES_REMOVED"},
	{"dependencies added", `{"dependencies":{"a":["b"]}}`, `{}`, "KEYWORD_ADDED"},
	{"propertyNames changed", `{"propertyNames":{"maxLength":3}}`, `{"propertyNames":{"maxLength":4}}`, "KEYWORD_CHANGED"},
	{"contains added", `{"contains":{"type":"string"}}`, `{"type":"array"}`, "KEYWORD_ADDED"},
	{"if added", `{"if":{"type":"string"},"then":{"maxLength":3}}`, `{}`, "KEYWORD_ADDED"},

	// Combined criteria.
	{"oneOf reads a plain writer", `{"oneOf":[{"type":"string"},{"type":"null"}]}`, `{"type":"string"}`, ""},
	{"sum narrowed", `{"type":"string"}`, `{"oneOf":[{"type":"string"},{"type":"null"}]}`, "TYPE_CHANGED"},
	{"oneOf branch removed", `{"oneOf":[{"type":"string"},{"type":"integer"}]}`, `{"oneOf":[{"type":"string"},{"type":"integer"},{"type":"boolean"}]}`, "SUM_TYPE_NARROWED"},
	{"oneOf branch added", `{"oneOf":[{"type":"string"},{"type":"integer"},{"type":"boolean"}]}`, `{"oneOf":[{"type":"string"},{"type":"integer"}]}`, ""},
	{"anyOf reordered", `{"anyOf":[{"type":"integer"},{"type":"string"}]}`, `{"anyOf":[{"type":"string"},{"type":"integer"}]}`, ""},
	{"anyOf branch narrowed", `{"anyOf":[{"type":"string","maxLength":3},{"type":"integer"}]}`, `{"anyOf":[{"type":"string"},{"type":"integer"}]}`, "SUM_TYPE_NARROWED"},
	{"oneOf to anyOf", `{"anyOf":[{"type":"string"},{"type":"integer"}]}`, `{"oneOf":[{"type":"string"},{"type":"integer"}]}`, ""},
	{"oneOf with shared base", `{"type":"object"}`, `{"type":"object","oneOf":[{"required":["a"]},{"required":["b"]}]}`, ""},
	{"allOf extended", `{"allOf":[{"type":"string"},{"maxLength":3}]}`, `{"allOf":[{"type":"string"}]}`, "PRODUCT_TYPE_EXTENDED"},
	{"allOf narrowed", `{"allOf":[{"type":"string"}]}`, `{"allOf":[{"type":"string"},{"maxLength":3}]}`, ""},
	{"allOf flattened", `{"type":"string","maxLength":3}`, `{"allOf":[{"type":"string"},{"maxLength":3}]}`, ""},
	{"not added", `{"not":{"type":"null"}}`, `{}`, "NOT_TYPE_ADDED"},
	{"not removed", `{}`, `{"not":{"type":"null"}}`, ""},
	{"not extended", `{"not":{"type":["null","string"]}}`, `{"not":{"type":"null"}}`, "NOT_TYPE_EXTENDED"},
	{"not narrowed", `{"not":{"type":"null"}}`, `{"not":{"type":["null","string"]}}`, ""},

	// References.
	{"ref to definitions", `{"definitions":{"s":{"type":"string","maxLength":3}},"properties":{"a":{"$ref":"#/definitions/s"}}}`, `{"properties":{"a":{"type":"string"}}}`, "MAX_LENGTH_ADDED"},
	{"ref same target", `{"definitions":{"s":{"type":"string"}},"properties":{"a":{"$ref":"#/definitions/s"}}}`, `{"properties":{"a":{"type":"string"}}}`, ""},
	{"2020 ref with siblings", `{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"s":{"type":"string"}},"$ref":"#/$defs/s","maxLength":3}`, `{"type":"string","maxLength":2}`, ""},
	{"2020 ref target narrowed", `{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"s":{"type":"string","pattern":"a"}},"$ref":"#/$defs/s"}`, `{"type":"string"}`, "PATTERN_ADDED"},
	{"anchor ref not checked", `{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"s":{"$anchor":"s","type":"string"}},"properties":{"a":{"$ref":"#s"}}}`, `{"properties":{"a":{"type":"string"}}}`, "REFERENCE_NOT_CHECKED"},
	{"anchor ref unchanged", `{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"s":{"$anchor":"s","type":"string"}},"properties":{"a":{"$ref":"#s"}}}`, `{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"s":{"$anchor":"s","type":"string"}},"properties":{"a":{"$ref":"#s"}}}`, ""},
}

func TestCheck(t *testing.T) {
	for _, c := range compatCases {
		t.Run(c.name, func(t *testing.T) {
			r, w := mustParse(t, c.reader), mustParse(t, c.writer)
			issues := r.Check(w)
			if got := rules(issues); got != c.want {
				t.Fatalf("reader %s\nwriter %s\nrules %q, want %q\nissues %v", c.reader, c.writer, got, c.want, issues)
			}
			for _, is := range issues {
				if is.Path == "" || !strings.HasPrefix(is.Path, "#") || is.Message == "" {
					t.Errorf("issue without path or message: %+v", is)
				}
			}
		})
	}
}

// TestCheckRulesCovered makes sure every rule Check can report has a case.
func TestCheckRulesCovered(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range compatCases {
		for _, r := range strings.Fields(c.want) {
			covered[r] = true
		}
	}
	for _, r := range Rules {
		if !covered[r] && r != "CHECK_LIMIT_EXCEEDED" {
			t.Errorf("rule %s has no case", r)
		}
	}
	for r := range covered {
		if !slices.Contains(Rules, r) {
			t.Errorf("case expects %s, which Rules does not list", r)
		}
	}
}

func TestCheckReportsAll(t *testing.T) {
	r := mustParse(t, `{"type":"object","properties":{"a":{"type":"string","maxLength":3},"b":{"type":"integer","minimum":1}},"required":["a"]}`)
	w := mustParse(t, `{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}`)
	issues := r.Check(w)
	want := []string{
		"MAX_LENGTH_ADDED at #/properties/a/maxLength",
		"MINIMUM_ADDED at #/properties/b/minimum",
		"REQUIRED_ATTRIBUTE_ADDED at #/required",
	}
	if len(issues) != len(want) {
		t.Fatalf("issues %v, want %v", issues, want)
	}
	for i, is := range issues {
		if !strings.HasPrefix(is.String(), want[i]) {
			t.Errorf("issue %d: %s, want %s...", i, is, want[i])
		}
	}
	if again := r.Check(w); !slices.Equal(again, issues) {
		t.Errorf("second Check differs: %v", again)
	}
}

func TestCheckLimit(t *testing.T) {
	// Sums of sums: each level has 8 branches, all referring to the level
	// below, so the pairs to compare multiply while the text stays small.
	var b strings.Builder
	b.WriteString(`{"definitions":{"l0":{"type":"string"}`)
	for l := 1; l <= 6; l++ {
		fmt.Fprintf(&b, `,"l%d":{"anyOf":[`, l)
		for i := range 8 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":"array","items":{"$ref":"#/definitions/l%d"},"maxItems":%d}`, l-1, 8-i)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`},"$ref":"#/definitions/l6"}`)
	r := mustParse(t, b.String())
	w := mustParse(t, strings.Replace(b.String(), `"type":"string"`, `"type":"string","maxLength":1`, 1))
	start := time.Now()
	issues := w.Check(r)
	if time.Since(start) > 20*time.Second {
		t.Errorf("Check took %v", time.Since(start))
	}
	if len(issues) == 0 {
		t.Fatal("narrowed reader found compatible")
	}
	t.Logf("%d issues in %v: %v", len(issues), time.Since(start), issues)
}

package sjson

import (
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/schema"
)

const personSchema = `{
  "type": "object",
  "properties": {
    "id": {"type": "integer", "minimum": 1},
    "name": {"type": "string", "minLength": 1, "maxLength": 64},
    "email": {"type": "string", "format": "email"},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "score": {"type": "number"},
    "status": {"enum": ["active", "suspended", "deleted"]},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 16},
    "address": {
      "type": "object",
      "properties": {
        "street": {"type": "string"},
        "city": {"type": "string"},
        "zip": {"type": "string", "pattern": "^[0-9]{5}$"}
      },
      "required": ["city"],
      "additionalProperties": false
    },
    "verified": {"type": "boolean"},
    "nickname": {"type": ["string", "null"]}
  },
  "required": ["id", "name", "status"]
}`

const personPayload = `{"id":123456,"name":"Ada Lovelace","email":"ada@example.com","age":36,"score":98.5,` +
	`"status":"active","tags":["math","engines","poetry"],"address":{"street":"12 St James's Square",` +
	`"city":"London","zip":"01234"},"verified":true}`

func TestValidate(t *testing.T) {
	s := mustParse(t, personSchema)
	if err := s.Validate([]byte(personPayload), nil); err != nil {
		t.Fatalf("valid payload: %v", err)
	}
	cases := []struct{ name, payload, want string }{
		{"empty", ``, "empty"},
		{"truncated", personPayload[:40], "unexpected end of input"},
		{"trailing data", personPayload + `{}`, "data after the JSON value"},
		{"trailing garbage", personPayload + ` x`, "data after the JSON value"},
		{"missing required", `{"id":1,"name":"a"}`, "required"},
		{"wrong type", `{"id":"1","name":"a","status":"active"}`, "at '/id'"},
		{"not integer", `{"id":1.5,"name":"a","status":"active"}`, "at '/id'"},
		{"enum", `{"id":1,"name":"a","status":"gone"}`, "at '/status'"},
		{"nested closed", `{"id":1,"name":"a","status":"active","address":{"city":"x","floor":3}}`, "at '/address'"},
		{"pattern", `{"id":1,"name":"a","status":"active","address":{"city":"x","zip":"1"}}`, "keyword pattern"},
		{"format", `{"id":1,"name":"a","status":"active","email":"nope"}`, "at '/email'"},
		{"array item", `{"id":1,"name":"a","status":"active","tags":["x",2]}`, "at '/tags/1'"},
		{"too deep", strings.Repeat(`[`, schema.MaxDepth+1) + strings.Repeat(`]`, schema.MaxDepth+1), "nested deeper than 64"},
		{"very deep", strings.Repeat(`{"a":`, 100000), "nested deeper than 64"},
		{"repeated key", `{"id":1,"id":2,"name":"a","status":"active"}`, "repeated"},
		{"bad utf8", "{\"id\":1,\"name\":\"\xff\",\"status\":\"active\"}", "UTF-8"},
		{"control char", "{\"name\":\"a\x01\"}", "control character"},
		{"bad escape", `{"name":"\q"}`, "invalid escape"},
		{"bad number", `{"id":01}`, "expected ',' or '}'"},
		{"huge exponent", `{"id":1e100000,"name":"a","status":"active"}`, "exponent"},
		{"long number", `{"id":` + strings.Repeat("9", 2000) + `}`, "longer than 1024"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.Validate([]byte(c.payload), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestValidateNumbers(t *testing.T) {
	s := mustParse(t, `{"type":"integer","maximum":9007199254740993}`)
	if err := s.Validate([]byte(`9007199254740993`), nil); err != nil {
		t.Fatalf("big integer at the bound: %v", err)
	}
	// As a float64 this would round down to the bound and be accepted.
	if err := s.Validate([]byte(`9007199254740994`), nil); err == nil {
		t.Fatal("big integer above the bound accepted")
	}
	if err := s.Validate([]byte(`1.0`), nil); err != nil {
		t.Fatalf("1.0 is an integer from draft 6 on: %v", err)
	}
}

func TestValidateStrings(t *testing.T) {
	s := mustParse(t, `{"const":"é😀\"\\/\n"}`)
	for _, p := range []string{`"é😀\"\\/\n"`, `"\u00e9\ud83d\ude00\"\\\/\n"`} {
		if err := s.Validate([]byte(p), nil); err != nil {
			t.Errorf("Validate(%s): %v", p, err)
		}
	}
	// A lone surrogate decodes to U+FFFD, which is not the const.
	if err := s.Validate([]byte(`"\ud83d"`), nil); err == nil {
		t.Error("lone surrogate matched")
	}
}

func TestDrafts(t *testing.T) {
	cases := []struct {
		schema, good, bad string
	}{
		{`{"$schema":"http://json-schema.org/draft-04/schema#","maximum":5,"exclusiveMaximum":true}`, `4`, `5`},
		{`{"$schema":"http://json-schema.org/draft-06/schema#","exclusiveMaximum":5}`, `4`, `5`},
		{`{"maximum":5}`, `5`, `6`},
		{`{"$schema":"https://json-schema.org/draft/2019-09/schema","items":[{"type":"integer"}],"additionalItems":false}`, `[1]`, `[1,2]`},
		{`{"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"integer"}],"items":false}`, `[1]`, `[1,2]`},
		{`{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{"a":{"type":"string"}},"$ref":"#/$defs/a","maxLength":2}`, `"ab"`, `"abc"`},
	}
	for _, c := range cases {
		s := mustParse(t, c.schema)
		if err := s.Validate([]byte(c.good), nil); err != nil {
			t.Errorf("%s: %s rejected: %v", c.schema, c.good, err)
		}
		if err := s.Validate([]byte(c.bad), nil); err == nil {
			t.Errorf("%s: %s accepted", c.schema, c.bad)
		}
	}
}

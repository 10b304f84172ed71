package savro

import (
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/schema"
)

func benchPayload(t testing.TB) (*Schema, []byte) {
	s := mustParse(t, benchSchema)
	payload, err := s.lib.Encode(benchValue())
	if err != nil {
		t.Fatal(err)
	}
	return s, payload
}

func TestValidateTruncatedAndTrailing(t *testing.T) {
	s, payload := benchPayload(t)
	if err := s.Validate(payload, nil); err != nil {
		t.Fatal(err)
	}
	// Every proper prefix misses something: the last field is a boolean.
	for n := range len(payload) {
		if err := s.Validate(payload[:n], nil); err == nil {
			t.Errorf("prefix of %d of %d bytes validated", n, len(payload))
		}
	}
	err := s.Validate(append(payload[:len(payload):len(payload)], 0), nil)
	if err == nil || !strings.Contains(err.Error(), "1 trailing bytes") {
		t.Errorf("trailing byte: %v", err)
	}
}

func TestValidateErrors(t *testing.T) {
	union := `["null","string"]`
	nested := `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"record","name":"A","fields":[{"name":"tags","type":{"type":"array","items":"string"}}]}}]}`
	cases := []struct {
		name    string
		schema  string
		payload []byte
		want    string
	}{
		{"empty payload", `"int"`, nil, "ends inside a int"},
		{"int overflow", `"int"`, []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, "overflows 32 bits"},
		{"long overflow", `"long"`, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, "overflows 64 bits"},
		{"long truncated", `"long"`, []byte{0x80, 0x80}, "ends inside a long"},
		{"boolean 2", `"boolean"`, []byte{2}, "not 0 or 1"},
		{"float truncated", `"float"`, []byte{0, 0, 0}, "ends inside a float"},
		{"double truncated", `"double"`, []byte{0, 0, 0, 0, 0, 0, 0}, "ends inside a double"},
		{"fixed truncated", `{"type":"fixed","name":"F","size":3}`, []byte{1, 2}, "ends inside a fixed"},
		{"negative string length", `"string"`, []byte{1}, "length -1 is negative"},
		{"huge string length", `"string"`, []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "beyond the 0 bytes left"},
		{"bytes longer than the payload", `"bytes"`, []byte{10, 1, 2}, "bytes length 5 is beyond the 2 bytes left"},
		{"invalid UTF-8", `"string"`, []byte{2, 0xff}, "not valid UTF-8"},
		{"enum index too big", `{"type":"enum","name":"E","symbols":["A","B"]}`, []byte{4}, "enum symbol index 2 is out of range"},
		{"enum index negative", `{"type":"enum","name":"E","symbols":["A","B"]}`, []byte{1}, "index -1 is out of range"},
		{"union index too big", union, []byte{4}, "union branch index 2 is out of range"},
		{"union index negative", union, []byte{3}, "index -2 is out of range"},
		{"huge array count", `{"type":"array","items":"int"}`, []byte{0xfe, 0xff, 0xff, 0xff, 0x0f}, "more than the 0 bytes left can hold"},
		{"array without end", `{"type":"array","items":"int"}`, []byte{2, 2}, "ends inside a long"},
		{"minimum block count", `{"type":"array","items":"int"}`, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "out of range"},
		{"block size too big", `{"type":"array","items":"int"}`, []byte{1, 100, 2, 0}, "block size 50 is beyond"},
		{"block size negative", `{"type":"array","items":"int"}`, []byte{1, 1, 2, 0}, "block size -1"},
		{"block size wrong", `{"type":"array","items":"int"}`, []byte{3, 2, 2, 4, 0}, "announced 1 bytes but its items take 2"},
		{"map key invalid", `{"type":"map","values":"int"}`, []byte{2, 2, 0xc0, 0, 0}, "/<key 0>"},
		{"path through records and arrays", nested, []byte{4, 2, 'x', 2, 0xff, 0}, "at /a/tags/1 "},
		{"path through a map", `{"type":"map","values":{"type":"map","values":"boolean"}}`,
			[]byte{2, 4, 'a', '/', 2, 2, 'b', 7, 0, 0}, "at /a~1/b "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.schema)
			err := s.Validate(c.payload, nil)
			if err == nil {
				t.Fatal("validated")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestValidateValid(t *testing.T) {
	cases := []struct {
		name    string
		schema  string
		payload []byte
	}{
		{"null", `"null"`, nil},
		{"int extremes", `{"type":"array","items":"int"}`, []byte{4, 0xfe, 0xff, 0xff, 0xff, 0x0f, 0xff, 0xff, 0xff, 0xff, 0x0f, 0}},
		{"long extremes", `{"type":"array","items":"long"}`, []byte{4,
			0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}},
		{"blocks with sizes", `{"type":"array","items":"string"}`, []byte{3, 8, 2, 'a', 2, 'b', 2, 2, 'c', 0}},
		{"many nulls in few bytes", `{"type":"array","items":"null"}`, []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}},
		{"empty map", `{"type":"map","values":"int"}`, []byte{0}},
		{"empty fixed", `{"type":"fixed","name":"F","size":0}`, nil},
		{"enum last symbol", `{"type":"enum","name":"E","symbols":["A","B"]}`, []byte{2}},
		{"union second branch", `["null",{"type":"record","name":"R","fields":[{"name":"s","type":"string"}]}]`, []byte{2, 4, 0xc3, 0xa9}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := mustParse(t, c.schema).Validate(c.payload, nil); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestValidateDepth(t *testing.T) {
	s := mustParse(t, `{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}`)
	// Each level is a record and a union: two levels of nesting.
	payload := func(records int) []byte {
		var p []byte
		for range records - 1 {
			p = append(p, 2)
		}
		return append(p, 0)
	}
	if err := s.Validate(payload(schema.MaxDepth/2), nil); err != nil {
		t.Errorf("%d records: %v", schema.MaxDepth/2, err)
	}
	err := s.Validate(payload(100000), nil)
	if err == nil || !strings.Contains(err.Error(), "nest deeper than 64") {
		t.Errorf("deep payload: %v", err)
	}
}

func TestValidateNoAllocation(t *testing.T) {
	s, payload := benchPayload(t)
	if n := testing.AllocsPerRun(100, func() {
		if err := s.Validate(payload, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per validation", n)
	}
}

// TestValidateAgreesWithEncoder checks payloads the library encodes from
// values of many shapes.
func TestValidateAgreesWithEncoder(t *testing.T) {
	s := mustParse(t, `{"type":"record","name":"R","fields":[
		{"name":"u","type":["null","int","string",{"type":"array","items":"double"}]},
		{"name":"m","type":{"type":"map","values":["null","boolean"]}},
		{"name":"f","type":{"type":"fixed","name":"F","size":2}},
		{"name":"b","type":"bytes"},{"name":"l","type":"long"},{"name":"x","type":"float"}]}`)
	values := []any{nil, int32(-7), "héllo", []any{1.5, -2.0}}
	for _, u := range values {
		v := map[string]any{"u": u, "m": map[string]any{"a": true, "b": nil}, "f": []byte{1, 2},
			"b": []byte("raw"), "l": int64(-1 << 62), "x": float32(0.5)}
		payload, err := s.lib.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(payload, nil); err != nil {
			t.Errorf("%v: %v", u, err)
		}
	}
}

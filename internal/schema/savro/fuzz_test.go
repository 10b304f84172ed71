package savro

import (
	"testing"
)

var fuzzSchemas = []string{
	`"int"`,
	`"string"`,
	`["null","long","string",{"type":"array","items":"int"}]`,
	`{"type":"map","values":{"type":"array","items":"boolean"}}`,
	`{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}`,
	`{"type":"record","name":"T","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
		{"name":"f","type":{"type":"fixed","name":"F","size":3}},{"name":"d","type":"double"},{"name":"x","type":"float"},
		{"name":"b","type":"bytes"},{"name":"kids","type":{"type":"array","items":"T"}}]}`,
	benchSchema,
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSchemas {
		f.Add(s)
	}
	for _, c := range compatCases {
		f.Add(c.a)
	}
	f.Add(addressDep)
	f.Add(`{"type":"record","name":"R","fields":[{"name":"r","type":"R"}]}`)
	f.Add(`{"type":"bytes","logicalType":"decimal","precision":4,"scale":2,"x":{"b":[1,2.5,null]}}`)
	f.Add(`{"type":"record","name":"R","namespace":"n","aliases":["Q"],"fields":[{"name":"f","type":{"type":"fixed","name":"F","namespace":"","size":1},"default":"a"}]}`)
	f.Fuzz(func(t *testing.T, text string) {
		s, err := parse(text, nil)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if issues := s.Check(s); len(issues) != 0 {
			t.Fatalf("schema incompatible with itself: %v", issues)
		}
		again, err := parse(s.Canonical(), nil)
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", s.Canonical(), err)
		}
		if again.Canonical() != s.Canonical() {
			t.Fatalf("canonical form changes when parsed again:\n%s\n%s", s.Canonical(), again.Canonical())
		}
		if len(again.Check(s)) != 0 || len(s.Check(again)) != 0 {
			t.Fatalf("schema incompatible with its canonical form")
		}
		_ = s.Validate([]byte(text), nil)
	})
}

func FuzzValidate(f *testing.F) {
	f.Add(uint8(0), []byte{0x02})
	f.Add(uint8(1), []byte{0x06, 'a', 'b', 'c'})
	f.Add(uint8(2), []byte{0x06, 0x03, 0x04, 0x02, 0x04, 0x00})
	f.Add(uint8(3), []byte{0x02, 0x02, 'k', 0x03, 0x04, 0x01, 0x00, 0x00, 0x00})
	f.Add(uint8(4), []byte{0x02, 0x02, 0x04, 0x00})
	f.Add(uint8(5), []byte{0x04, 'x', 'y', 'z', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00})
	_, payload := benchPayload(f)
	f.Add(uint8(6), payload)
	parsed := make([]*Schema, len(fuzzSchemas))
	for i, text := range fuzzSchemas {
		parsed[i] = mustParse(f, text)
	}
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		s := parsed[int(which)%len(parsed)]
		err := s.Validate(payload, nil)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		// What validates, the library decodes, completely.
		var v any
		rest, derr := s.lib.Decode(payload, &v)
		if derr != nil || len(rest) != 0 {
			t.Fatalf("validated, but the library decodes it with %d bytes left and error %v", len(rest), derr)
		}
		// And encodes back to the same bytes: the walk accepted nothing
		// the encoding would not produce, but for non-minimal varints
		// and array blocks, which the encoder writes one way only.
		if _, err := s.lib.Encode(v); err != nil {
			t.Fatalf("validated, decoded, does not encode: %v", err)
		}
	})
}

package sjson

import (
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, c := range compatCases[:40] {
		f.Add(c.reader, c.writer)
	}
	f.Add(`{"$ref":"#"}`, `{"definitions":{"a":{"$ref":"#/definitions/a"}},"$ref":"#/definitions/a"}`)
	f.Add(`[[[[`, `{"a":"\ud800"}`)
	f.Fuzz(func(t *testing.T, a, b string) {
		ra, errA := Format{}.Parse(a, nil)
		rb, errB := Format{}.Parse(b, nil)
		if errA != nil || errB != nil {
			return
		}
		// A canonical form must parse to itself.
		again, err := Format{}.Parse(ra.Canonical(), nil)
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", ra.Canonical(), err)
		}
		if again.Canonical() != ra.Canonical() {
			t.Fatalf("canonical form not stable: %s then %s", ra.Canonical(), again.Canonical())
		}
		if issues := ra.Check(ra); len(issues) != 0 {
			t.Fatalf("schema %s incompatible with itself: %v", a, issues)
		}
		_ = ra.Check(rb)
		_ = rb.Check(ra)
	})
}

func FuzzValidate(f *testing.F) {
	f.Add([]byte(personPayload))
	f.Add([]byte(`{"id":1,"name":"a","status":"active","tags":[1,[2,{"x":3}]]}`))
	f.Add([]byte(`{"id":1e999,"name":"\u00e9\ud83d\ude00"} trailing`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]`))
	s := mustParse(f, personSchema)
	f.Fuzz(func(t *testing.T, payload []byte) {
		_ = s.Validate(payload, nil)
	})
}

package sjson

import "testing"

// BenchmarkValidate validates a 256-byte object of ten properties: strings,
// integers, a number, an enum, an array, a nested object and an optional
// property left out.
func BenchmarkValidate(b *testing.B) {
	s := mustParse(b, personSchema)
	payload := []byte(personPayload)
	if err := s.Validate(payload, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Validate(payload, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	payload := personPayload
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeJSON(payload, 64); err != nil {
			b.Fatal(err)
		}
	}
}

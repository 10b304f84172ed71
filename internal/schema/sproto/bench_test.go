package sproto

import "testing"

func BenchmarkValidate(b *testing.B) {
	s := mustParse(b, orderProto)
	payload := encode(b, s, nil, orderJSON)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Validate(payload, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode is the dynamicpb decode Validate avoids, for comparison.
func BenchmarkDecode(b *testing.B) {
	s := mustParse(b, orderProto)
	payload := encode(b, s, nil, orderJSON)
	desc := s.roots[0].info.desc
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := decodes(desc, payload); err != nil {
			b.Fatal(err)
		}
	}
}

package sproto

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/spoolmq/spool/internal/schema"
)

func FuzzParse(f *testing.F) {
	f.Add(orderProto)
	f.Add(proto2Schema)
	f.Add(`edition = "2023"; message M { string a = 1 [features.utf8_validation = NONE]; }`)
	f.Add(p3(`import "dep.proto"; message M { D d = 1; }`))
	f.Add(p3(`message M { oneof o { int32 a = 1; string b = 2; } map<string, M> m = 3; }`))
	f.Add(p3(nested(5)))
	dep := schema.Dep{Name: "dep.proto", Text: p3(`message D { int32 x = 1; }`)}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Format{}.Parse(text, []schema.Dep{dep})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if s.Canonical() == "" {
			t.Fatal("empty canonical form")
		}
		if issues := s.Check(s); len(issues) != 0 {
			t.Fatalf("schema incompatible with itself: %v", issues)
		}
		_ = s.Validate([]byte{0x08, 0x01, 0x12, 0x00}, nil)
	})
}

// FuzzValidate compares Validate with protobuf-go's decoder: whatever the
// decoder rejects Validate rejects, and Validate rejects nothing more
// than what it documents as stricter (wire type mismatches, deep unknown
// groups).
func FuzzValidate(f *testing.F) {
	f.Add(0, []byte{})
	f.Add(1, nest(3))
	f.Add(1, tag(tag(str(nil, 1, "e"), 3, protowire.StartGroupType), 3, protowire.EndGroupType))
	f.Add(1, str(str(nil, 1, "e"), 7, "abcd"))
	f.Add(0, str(nil, 6, string(str(nil, 2, "\xff"))))
	f.Add(0, str(nil, 13, string(str(str(nil, 1, "k"), 2, "v"))))
	f.Add(0, protowire.AppendVarint(tag(nil, 1, protowire.BytesType), 1<<40))
	f.Add(0, tag(nil, 99, protowire.StartGroupType))
	order := mustParse(f, orderProto)
	legacy := mustParse(f, proto2Schema)
	f.Add(0, encode(f, order, nil, orderJSON))
	f.Fuzz(func(t *testing.T, which int, payload []byte) {
		s := order
		if which%2 != 0 {
			s = legacy
		}
		err := s.Validate(payload, nil)
		want := decodes(s.roots[0].info.desc, payload)
		if want != nil && err == nil {
			t.Fatalf("Validate accepted what the decoder rejects: %v", want)
		}
		if want == nil && err != nil {
			var pe *payloadError
			if !errors.As(err, &pe) || !pe.strict {
				t.Fatalf("Validate rejected what the decoder accepts: %v", err)
			}
		}
	})
}

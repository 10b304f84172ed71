package sproto

import "testing"

func TestCanonicalSame(t *testing.T) {
	pairs := [][2]string{
		{p3(`message M { string a = 1; int32 b = 2; }`),
			"// an order\nsyntax   =  'proto3' ;\n\n/* pkg */ package acme;\nmessage M {\n  int32 b = 2; // count\n  string a = 1;\n}\n"},
		{p3(`message M { int32 a = 1 [deprecated = true, json_name = "x"]; }`), p3(`message M { int32 a = 1 [json_name = "x", deprecated = true]; }`)},
		{p3(`import "google/protobuf/any.proto"; import "google/protobuf/empty.proto"; message M { google.protobuf.Any a = 1; google.protobuf.Empty e = 2; }`),
			p3(`import "google/protobuf/empty.proto"; import "google/protobuf/any.proto"; message M { google.protobuf.Empty e = 2; google.protobuf.Any a = 1; }`)},
		{p3(`message M { reserved 5, 2 to 3; reserved "z", "y"; }`), p3(`message M { reserved 2 to 3, 5; reserved "y", "z"; }`)},
		{p3(`message M { acme.N n = 1; } message N {}`), p3(`message M { N n = 1; } message N {}`)},
	}
	for _, p := range pairs {
		a, b := mustParse(t, p[0]).Canonical(), mustParse(t, p[1]).Canonical()
		if a != b {
			t.Errorf("different canonical forms:\n%s\n%s", a, b)
		}
	}
}

func TestCanonicalDifferent(t *testing.T) {
	base := p3(`message M { string a = 1; int32 b = 2; } message N { int32 x = 1; } enum E { Z = 0; O = 1; }`)
	for _, other := range []string{
		p3(`message M { string a = 1; int64 b = 2; } message N { int32 x = 1; } enum E { Z = 0; O = 1; }`),          // type
		p3(`message M { string a = 1; int32 b = 3; } message N { int32 x = 1; } enum E { Z = 0; O = 1; }`),          // number
		p3(`message M { string a = 1; repeated int32 b = 2; } message N { int32 x = 1; } enum E { Z = 0; O = 1; }`), // cardinality
		p3(`message N { int32 x = 1; } message M { string a = 1; int32 b = 2; } enum E { Z = 0; O = 1; }`),          // message order
		p3(`message M { string a = 1; int32 b = 2; } message N { int32 x = 1; } enum E { Z = 0; O = 2; }`),          // enum value
		p3(`message M { string a = 1; optional int32 b = 2; } message N { int32 x = 1; } enum E { Z = 0; O = 1; }`), // presence
		p3(`message M { string a = 1; int32 c = 2; } message N { int32 x = 1; } enum E { Z = 0; O = 1; }`),          // name (JSON)
		"syntax = \"proto3\"; package acme.v2; message M { string a = 1; int32 b = 2; } message N { int32 x = 1; } enum E { Z = 0; O = 1; }",
		p2(`message M { optional string a = 1; optional int32 b = 2; } message N { optional int32 x = 1; } enum E { Z = 0; O = 1; }`),
	} {
		if mustParse(t, base).Canonical() == mustParse(t, other).Canonical() {
			t.Errorf("same canonical form for\n%s\nand\n%s", base, other)
		}
	}
}

func TestCanonicalStable(t *testing.T) {
	s := mustParse(t, orderProto)
	want := s.Canonical()
	for range 5 {
		if got := mustParse(t, orderProto).Canonical(); got != want {
			t.Fatal("canonical form differs between parses")
		}
	}
	if want == "" || want[0] != '{' {
		t.Errorf("canonical form: %q", want)
	}
}

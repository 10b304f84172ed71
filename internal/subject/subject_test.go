package subject

import (
	"errors"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		filter, subject string
		want            bool
	}{
		{"", "", true},
		{"", "a.b", true},
		{"#", "", false},
		{"#", "a", true},
		{"#", "a.b.c", true},
		{"a", "a", true},
		{"a", "b", false},
		{"a", "a.b", false},
		{"a.b", "a", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"orders.*.created", "orders.eu.created", true},
		{"orders.*.created", "orders.eu.deleted", false},
		{"orders.*.created", "orders.created", false},
		{"orders.#", "orders", true},
		{"orders.#", "orders.eu", true},
		{"orders.#", "orders.eu.created", true},
		{"orders.#", "order", false},
		{"#.created", "created", true},
		{"#.created", "orders.eu.created", true},
		{"#.created", "orders.eu.created.x", false},
		{"a.#.z", "a.z", true},
		{"a.#.z", "a.b.c.z", true},
		{"a.#.z", "a.b.c", false},
		{"*.#", "a", true},
		{"*.#", "a.b.c", true},
		{"#.*", "a", true},
		{"#.#", "a.b", true},
		{"a.*.#.d", "a.b.d", true},
		{"a.*.#.d", "a.d", false},
		{"a.*.#.d", "a.b.c.c.d", true},
	}
	for _, c := range cases {
		f, err := Compile(c.filter)
		if err != nil {
			t.Fatalf("compile %q: %v", c.filter, err)
		}
		if got := f.Match(c.subject); got != c.want {
			t.Errorf("%q ~ %q = %v, want %v", c.filter, c.subject, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, p := range []string{".", "a.", ".a", "a..b", "a*", "or#ders", "a.b*.c", strings.Repeat("a", MaxLen+1)} {
		if _, err := Compile(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("Compile(%q) = %v, want ErrInvalid", p, err)
		}
	}
}

// TestMatchAgainstReference checks the matcher against a direct recursive
// definition on many generated filters and subjects.
func TestMatchAgainstReference(t *testing.T) {
	toks := []string{"a", "b", "*", "#"}
	subs := []string{"a", "b"}
	var filters, subjects []string
	var gen func(prefix []string, depth int, alphabet []string, out *[]string)
	gen = func(prefix []string, depth int, alphabet []string, out *[]string) {
		if len(prefix) > 0 {
			*out = append(*out, strings.Join(prefix, "."))
		}
		if depth == 0 {
			return
		}
		for _, t := range alphabet {
			gen(append(prefix, t), depth-1, alphabet, out)
		}
	}
	gen(nil, 4, toks, &filters)
	gen(nil, 5, subs, &subjects)
	for _, fs := range filters {
		f, err := Compile(fs)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range subjects {
			if got, want := f.Match(s), ref(strings.Split(fs, "."), strings.Split(s, ".")); got != want {
				t.Fatalf("%q ~ %q = %v, reference says %v", fs, s, got, want)
			}
		}
	}
}

func ref(f, s []string) bool {
	if len(f) == 0 {
		return len(s) == 0
	}
	switch f[0] {
	case "#":
		return ref(f[1:], s) || (len(s) > 0 && ref(f, s[1:]))
	case "*":
		return len(s) > 0 && ref(f[1:], s[1:])
	}
	return len(s) > 0 && s[0] == f[0] && ref(f[1:], s[1:])
}

func FuzzMatch(f *testing.F) {
	f.Add("orders.*.created", "orders.eu.created")
	f.Add("#.x.#", "a.x.b")
	f.Fuzz(func(t *testing.T, pattern, subj string) {
		flt, err := Compile(pattern)
		if err != nil {
			return
		}
		got := flt.Match(subj)
		if subj != "" && !strings.Contains(subj, "..") && !strings.HasPrefix(subj, ".") && !strings.HasSuffix(subj, ".") && len(strings.Split(subj, ".")) < 12 && len(flt.tokens) < 12 {
			if want := ref(flt.tokens, strings.Split(subj, ".")); got != want && !flt.MatchAll() {
				t.Fatalf("%q ~ %q = %v, reference %v", pattern, subj, got, want)
			}
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	f, _ := Compile("orders.*.created.#")
	for i := 0; i < b.N; i++ {
		f.Match("orders.eu.created.v2")
	}
}

package schema

import (
	"strings"
	"testing"
)

func TestLineDiff(t *testing.T) {
	split := func(s string) []string { return strings.Split(s, "") }
	for _, tc := range []struct{ a, b, want string }{
		{"", "", ""},
		{"abc", "abc", " a b c"},
		{"abc", "", "-a-b-c"},
		{"", "xy", "+x+y"},
		{"abcd", "acbd", " a-b c+b d"},
		{"abxcd", "abycd", " a b-x+y c d"},
		{"abxycd", "abzcd", " a b-x-y+z c d"},
	} {
		var got strings.Builder
		for _, op := range LineDiff(split(tc.a), split(tc.b)) {
			got.WriteByte(op.Kind)
			got.WriteString(op.Line)
		}
		if got.String() != tc.want {
			t.Errorf("LineDiff(%q, %q) = %q, want %q", tc.a, tc.b, got.String(), tc.want)
		}
	}

	// Hunks: far-apart changes make two, near ones one.
	a := strings.Split("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", " ")
	b := append([]string{}, a...)
	b[1] = "two"
	b[17] = "eighteen"
	var w strings.Builder
	WriteUnifiedDiff(&w, "a", "b", a, b, 3)
	want := "--- a\n+++ b\n@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n"
	if w.String() != want {
		t.Errorf("unified diff:\n%s\nwant:\n%s", w.String(), want)
	}
	w.Reset()
	WriteUnifiedDiff(&w, "a", "b", a, append(a[:3:3], a[4:]...), 1)
	if want := "--- a\n+++ b\n@@ -3,3 +3,2 @@\n 3\n-4\n 5\n"; w.String() != want {
		t.Errorf("unified diff of a removal:\n%s\nwant:\n%s", w.String(), want)
	}
	w.Reset()
	WriteUnifiedDiff(&w, "a", "b", nil, []string{"x"}, 3)
	if want := "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n"; w.String() != want {
		t.Errorf("unified diff from nothing:\n%s", w.String())
	}
}

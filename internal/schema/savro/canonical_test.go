package savro

import "testing"

func TestCanonicalSame(t *testing.T) {
	pairs := []struct{ name, a, b string }{
		{"primitive spelled as object", `"string"`, `{"type":"string"}`},
		{"whitespace", `{"type":"array","items":"int"}`, "{ \"type\" : \"array\",\n\t\"items\" : \"int\" }"},
		{"key order", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`,
			`{"fields":[{"type":"int","name":"a"}],"name":"R","type":"record"}`},
		{"namespace attribute and dotted name", `{"type":"record","name":"C","namespace":"a.b","fields":[]}`,
			`{"type":"record","name":"a.b.C","fields":[]}`},
		{"short and full reference",
			`{"type":"record","name":"R","namespace":"n","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["X"]}},{"name":"f","type":"E"}]}`,
			`{"type":"record","name":"n.R","fields":[{"name":"e","type":{"type":"enum","name":"n.E","symbols":["X"]}},{"name":"f","type":"n.E"}]}`},
		{"alias order", `{"type":"record","name":"R","aliases":["B","A"],"fields":[]}`,
			`{"type":"record","name":"R","aliases":["A","B"],"fields":[]}`},
		{"explicit ascending order", `{"type":"record","name":"R","fields":[{"name":"a","type":"int","order":"ascending"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`},
		{"default spelled differently", `{"type":"record","name":"R","fields":[{"name":"a","type":"double","default":1}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"double","default":1.0e0}]}`},
		{"string escapes", `{"type":"record","name":"R","fields":[{"name":"a","type":"string","default":"\u00e9\/"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"string","default":"é/"}]}`},
		{"record default key order",
			`{"type":"record","name":"R","fields":[{"name":"p","type":{"type":"record","name":"P","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]},"default":{"x":1,"y":2}}]}`,
			`{"type":"record","name":"R","fields":[{"name":"p","type":{"type":"record","name":"P","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]},"default":{"y":2,"x":1}}]}`},
		{"zero decimal scale", `{"type":"bytes","logicalType":"decimal","precision":4,"scale":0}`,
			`{"type":"bytes","logicalType":"decimal","precision":4}`},
		{"property key order", `{"type":"string","b":1,"a":[true]}`, `{"a":[true],"type":"string","b":1}`},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			a, b := mustParse(t, p.a).Canonical(), mustParse(t, p.b).Canonical()
			if a != b {
				t.Errorf("different canonical forms:\n%s\n%s", a, b)
			}
			if again := mustParse(t, a).Canonical(); again != a {
				t.Errorf("canonical form changes when parsed again:\n%s\n%s", a, again)
			}
		})
	}
}

func TestCanonicalDifferent(t *testing.T) {
	pairs := []struct{ name, a, b string }{
		{"default", `{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":1}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":2}]}`},
		{"default present", `{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"],"default":null}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":["null","int"]}]}`},
		{"field order", `{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"b","type":"int"},{"name":"a","type":"int"}]}`},
		{"alias", `{"type":"record","name":"R","aliases":["A"],"fields":[]}`, `{"type":"record","name":"R","fields":[]}`},
		{"field alias", `{"type":"record","name":"R","fields":[{"name":"a","aliases":["b"],"type":"int"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`},
		{"namespace", `{"type":"record","name":"a.R","fields":[]}`, `{"type":"record","name":"b.R","fields":[]}`},
		{"sort order", `{"type":"record","name":"R","fields":[{"name":"a","type":"int","order":"descending"}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`},
		{"logical type", `{"type":"long","logicalType":"timestamp-millis"}`, `"long"`},
		{"decimal scale", `{"type":"bytes","logicalType":"decimal","precision":4,"scale":1}`,
			`{"type":"bytes","logicalType":"decimal","precision":4}`},
		{"enum default", `{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}`, `{"type":"enum","name":"E","symbols":["A","B"]}`},
		{"enum symbol order", `{"type":"enum","name":"E","symbols":["A","B"]}`, `{"type":"enum","name":"E","symbols":["B","A"]}`},
		{"union order", `["null","int"]`, `["int","null"]`},
		{"fixed size", `{"type":"fixed","name":"F","size":4}`, `{"type":"fixed","name":"F","size":5}`},
		{"doc", `{"type":"record","name":"R","doc":"x","fields":[]}`, `{"type":"record","name":"R","fields":[]}`},
		{"error and record", `{"type":"error","name":"R","fields":[]}`, `{"type":"record","name":"R","fields":[]}`},
		{"float and double default", `{"type":"record","name":"R","fields":[{"name":"a","type":"float","default":0.1}]}`,
			`{"type":"record","name":"R","fields":[{"name":"a","type":"double","default":0.1}]}`},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			a, b := mustParse(t, p.a).Canonical(), mustParse(t, p.b).Canonical()
			if a == b {
				t.Errorf("same canonical form %s", a)
			}
		})
	}
}

func TestCanonicalNullNamespaceInside(t *testing.T) {
	s := mustParse(t, `{"type":"record","name":"R","namespace":"n","fields":[{"name":"f","type":{"type":"fixed","name":"F","namespace":"","size":1}}]}`)
	want := `{"type":"record","name":"n.R","fields":[{"name":"f","type":{"type":"fixed","name":"F","namespace":"","size":1}}]}`
	if s.Canonical() != want {
		t.Errorf("canonical\n%s\nwant\n%s", s.Canonical(), want)
	}
	if again := mustParse(t, want).Canonical(); again != want {
		t.Errorf("parsed again: %s", again)
	}
}

func TestCanonicalBytesDefault(t *testing.T) {
	s := mustParse(t, `{"type":"record","name":"R","fields":[{"name":"b","type":"bytes","default":"\u0000\u00ff"},{"name":"n","type":"double","default":"NaN"}]}`)
	want := `{"type":"record","name":"R","fields":[{"name":"b","type":"bytes","default":"\u0000ÿ"},{"name":"n","type":"double","default":"NaN"}]}`
	if s.Canonical() != want {
		t.Errorf("canonical\n%s\nwant\n%s", s.Canonical(), want)
	}
}

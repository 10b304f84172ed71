package quota

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/spoolmq/spool/internal/golden"
)

// The quota records and changes as stored and replicated
// (docs/format/state.md): the golden files are their bytes, which must
// never change; -update writes missing ones.
func TestRecordGolden(t *testing.T) {
	cases := []struct {
		name string
		v    any
		zero func() any
	}{
		{"user.v1.json", &Quota{Entity: Entity{User: "alice"}, ProducerByteRate: 1048576, RequestRate: 12.5},
			func() any { return &Quota{} }},
		{"default.v1.json", &Quota{Entity: Entity{Default: true}, ConsumerByteRate: 2097152},
			func() any { return &Quota{} }},
		{"change-alter.v1.json", &change{Op: opAlter, Entity: Entity{User: "alice"},
			Set: map[string]float64{KeyProducerByteRate: 1048576}, Remove: []string{KeyRequestRate}},
			func() any { return &change{} }},
		{"change-delete.v1.json", &change{Op: opDelete, Entity: Entity{Default: true}},
			func() any { return &change{} }},
	}
	for _, c := range cases {
		enc, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		want := golden.Read(t, "testdata", c.name, enc)
		if !bytes.Equal(enc, want) {
			t.Errorf("%s: encoded %s, golden %s", c.name, enc, want)
		}
		got := c.zero()
		if err := json.Unmarshal(want, got); err != nil || !reflect.DeepEqual(got, c.v) {
			t.Errorf("%s: decoded %+v (%v), want %+v", c.name, got, err, c.v)
		}
	}
}

package sproto

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/spoolmq/spool/internal/schema"
)

// proto2Schema has what only proto2 has: required fields, groups and
// closed enums, and strings the decoder does not check.
const proto2Schema = `
syntax = "proto2";
package legacy;

message Event {
  required string id = 1;
  optional int32 kind = 2;
  repeated group Tag = 3 {
    required string key = 4;
    optional string value = 5;
  }
  optional Event parent = 6;
  repeated fixed32 codes = 7 [packed = true];
  optional Level level = 8;
  enum Level { LOW = 0; HIGH = 1; }
  repeated int64 counts = 9;
}
`

func TestValidateIndexes(t *testing.T) {
	s := mustParse(t, orderProto)
	order := encode(t, s, nil, orderJSON)
	addr := encode(t, s, []int{1}, `{"street": "a", "city": "b"}`)
	entry := encode(t, s, []int{0, 0}, `{"key": "k", "value": "v"}`)
	for _, tc := range []struct {
		payload []byte
		indexes []int
		want    string
	}{
		{order, nil, ""},
		{order, []int{}, ""},
		{order, []int{0}, ""},
		{addr, []int{1}, ""},
		{entry, []int{0, 0}, ""},
		// An Order read as an Address: Order's fields 3 and 4 are
		// varints where Address has strings.
		{order, []int{1}, "invalid payload at acme.Address."},
		{order, []int{3}, "message index 3 at position 0 of [3] is out of range (the file has 3 messages)"},
		{order, []int{-1}, "out of range"},
		{order, []int{0, 1}, "out of range (acme.Order has 1 messages)"},
		{order, []int{1, 0}, "out of range (acme.Address has 0 messages)"},
	} {
		err := s.Validate(tc.payload, tc.indexes)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.indexes, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: got %v, want %q", tc.indexes, err, tc.want)
		}
	}
}

// tag appends a field's tag.
func tag(b []byte, n protowire.Number, typ protowire.Type) []byte {
	return protowire.AppendTag(b, n, typ)
}

func str(b []byte, n protowire.Number, s string) []byte {
	return protowire.AppendString(tag(b, n, protowire.BytesType), s)
}

func TestValidateErrors(t *testing.T) {
	s := mustParse(t, orderProto)
	order := encode(t, s, nil, orderJSON)
	hugeLen := protowire.AppendVarint(tag(nil, 1, protowire.BytesType), 1<<40)
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"trailing garbage", append(append([]byte{}, order...), 0xff), "acme.Order (byte 263): field tag runs past the end of its message"},
		{"trailing zero", append(append([]byte{}, order...), 0), "invalid field number"},
		{"truncated string", str(nil, 2, "customer-1")[:8], "acme.Order.customer (byte 1): length-delimited value runs past the end"},
		{"huge length", hugeLen, "acme.Order.id (byte 1): length-delimited value runs past the end"},
		{"wire type mismatch", protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 5), "acme.Order.id (byte 1): wire type varint, but the field is string"},
		{"bad UTF-8 deep", str(nil, 6, string(str(nil, 2, "\xff"))), "acme.Order.ship_to.city (byte 4): string is not valid UTF-8"},
		{"bad map value", str(nil, 13, string(str(str(nil, 1, "k"), 2, "\xc3"))), "acme.Order.labels.value"},
		{"reserved wire type", []byte{0x0f}, "reserved wire type"},
		{"end group alone", tag(nil, 3, protowire.EndGroupType), "end of group 3 without its start"},
		{"unknown group unterminated", tag(nil, 99, protowire.StartGroupType), "group 99 has no end"},
		{"unknown group wrong end", tag(tag(nil, 99, protowire.StartGroupType), 98, protowire.EndGroupType), "group 99 ends with the end of group 98"},
		{"unknown truncated", protowire.AppendVarint(tag(nil, 99, protowire.Fixed64Type), 1), "acme.Order.99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Validate(tc.payload, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	s := mustParse(t, orderProto)
	order := encode(t, s, nil, orderJSON)
	unknown := protowire.AppendVarint(tag(nil, 99, protowire.VarintType), 7)
	unknown = str(unknown, 100, "x")
	unknown = tag(tag(str(tag(unknown, 101, protowire.StartGroupType), 1, "in"), 101, protowire.EndGroupType), 102, protowire.Fixed32Type)
	unknown = append(unknown, 1, 2, 3, 4)
	packedQty := str(nil, 4, "\x05") // a packed run of one value for a singular field
	for name, p := range map[string][]byte{
		"empty":           nil,
		"unknown fields":  append(append([]byte{}, order...), unknown...),
		"fields repeated": append(append([]byte{}, order...), order...),
	} {
		if err := s.Validate(p, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A singular field does not take a packed run: protobuf-go keeps it
	// as an unknown field, Validate rejects it as the wrong wire type.
	if err := s.Validate(packedQty, nil); err == nil {
		t.Error("packed run accepted for a singular field")
	}
}

func TestValidateProto2(t *testing.T) {
	s := mustParse(t, proto2Schema)
	ok := encode(t, s, nil, `{"id": "e1", "tag": [{"key": "k"}], "parent": {"id": "p"}, "codes": [1, 2], "level": "HIGH"}`)
	if err := s.Validate(ok, nil); err != nil {
		t.Fatal(err)
	}
	unpacked := protowire.AppendFixed32(tag(str(nil, 1, "e"), 7, protowire.Fixed32Type), 9)
	badUTF8 := str(nil, 1, "\xff") // proto2 strings are not checked
	unknownEnum := protowire.AppendVarint(tag(str(nil, 1, "e"), 8, protowire.VarintType), 42)
	// The second occurrence of parent supplies the required id the first
	// lacks; the decoder merges them.
	merged := str(str(str(nil, 1, "e"), 6, ""), 6, string(str(nil, 1, "p")))
	for name, p := range map[string][]byte{"unpacked": unpacked, "bad UTF-8": badUTF8, "unknown enum": unknownEnum, "merged": merged} {
		if err := s.Validate(p, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		want    string
	}{
		{"missing id", protowire.AppendVarint(tag(nil, 2, protowire.VarintType), 1), "invalid payload at legacy.Event: required field id is not set"},
		{"missing nested id", str(str(nil, 1, "e"), 6, ""), "invalid payload at legacy.Event.parent: required field id is not set"},
		{"missing group key", tag(tag(str(nil, 1, "e"), 3, protowire.StartGroupType), 3, protowire.EndGroupType), "invalid payload at legacy.Event.tag: required field key is not set"},
		{"group not ended", tag(str(nil, 1, "e"), 3, protowire.StartGroupType), "group 3 has no end"},
		{"group ends wrong", tag(tag(str(nil, 1, "e"), 3, protowire.StartGroupType), 4, protowire.EndGroupType), "end of group 4 without its start"},
		{"packed varint truncated", str(str(nil, 1, "e"), 9, "\x80"), "legacy.Event.counts (byte 5): packed varint runs past the end"},
		{"packed fixed32 length", str(str(nil, 1, "e"), 7, "abc"), "packed fixed32 values are 3 bytes"},
	} {
		err := s.Validate(tc.payload, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// nest returns a legacy.Event payload with levels Events, each the
// parent of the one before.
func nest(levels int) []byte {
	p := str(nil, 1, "e")
	for range levels - 1 {
		p = str(str(nil, 1, "e"), 6, string(p))
	}
	return p
}

func TestValidateDepth(t *testing.T) {
	s := mustParse(t, proto2Schema)
	desc := s.roots[0].info.desc
	for _, levels := range []int{schema.MaxDepth - 1, schema.MaxDepth, schema.MaxDepth + 1, 10 * schema.MaxDepth} {
		err := s.Validate(nest(levels), nil)
		if (err == nil) != (levels <= schema.MaxDepth) {
			t.Errorf("%d levels: %v", levels, err)
		}
		if (err == nil) != (decodes(desc, nest(levels)) == nil) {
			t.Errorf("%d levels: Validate says %v, the decoder %v", levels, err, decodes(desc, nest(levels)))
		}
	}
	// Unknown groups count as levels too.
	g := []byte{}
	for range schema.MaxDepth + 1 {
		g = tag(g, 99, protowire.StartGroupType)
	}
	for range schema.MaxDepth + 1 {
		g = tag(g, 99, protowire.EndGroupType)
	}
	if err := s.Validate(append(str(nil, 1, "e"), g...), nil); err == nil || !strings.Contains(err.Error(), "nest more than 64") {
		t.Errorf("deep unknown groups: %v", err)
	}
}

// TestValidatePrefixes checks every truncation of a valid payload the way
// protobuf-go's decoder does: a cut between fields leaves a valid message.
func TestValidatePrefixes(t *testing.T) {
	for _, text := range []string{orderProto, proto2Schema} {
		s := mustParse(t, text)
		js := orderJSON
		if text == proto2Schema {
			js = `{"id": "e1", "tag": [{"key": "k", "value": "v"}], "parent": {"id": "p", "codes": [5]}, "codes": [1, 2], "level": "HIGH"}`
		}
		full := encode(t, s, nil, js)
		desc := s.roots[0].info.desc
		for i := range full {
			err, want := s.Validate(full[:i], nil), decodes(desc, full[:i])
			if (err == nil) != (want == nil) {
				t.Errorf("%s prefix %d: Validate %v, decoder %v", desc.FullName(), i, err, want)
			}
		}
	}
}

func TestValidateHugeLengthDoesNotAllocate(t *testing.T) {
	s := mustParse(t, orderProto)
	p := protowire.AppendVarint(tag(nil, 7, protowire.BytesType), 1<<62)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		if s.Validate(p, nil) == nil {
			t.Fatal("accepted")
		}
		if decodes(s.roots[0].info.desc, p) == nil {
			t.Fatal("decoder accepted")
		}
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("allocated %d bytes for 100 rejections", n)
	}
}

func TestValidateErrorKinds(t *testing.T) {
	s := mustParse(t, orderProto)
	err := s.Validate(protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 5), nil)
	var pe *payloadError
	if !errors.As(err, &pe) || !pe.strict {
		t.Errorf("wire type mismatch not marked strict: %#v", err)
	}
}

func TestValidateConcurrent(t *testing.T) {
	s := mustParse(t, orderProto)
	order := encode(t, s, nil, orderJSON)
	bad := order[:len(order)-1]
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if s.Validate(order, nil) != nil || s.Validate(bad, nil) == nil {
					t.Error("wrong result under concurrency")
					return
				}
			}
		})
	}
	wg.Wait()
}

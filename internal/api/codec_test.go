package api

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/catalog"
)

// requestTypes returns the input message of every RPC Spool serves.
func requestTypes(t *testing.T) []protoreflect.MessageDescriptor {
	t.Helper()
	var out []protoreflect.MessageDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("spool.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			ms := fd.Services().Get(i).Methods()
			for j := range ms.Len() {
				out = append(out, ms.Get(j).Input())
			}
		}
		return true
	})
	if len(out) < 10 {
		t.Fatalf("found only %d request types", len(out))
	}
	return out
}

// TestEveryListBounded: every repeated field a request can carry, however
// deeply nested, has its own bound, and no request holds a type whose JSON
// form the walk does not follow (Struct, ListValue, Value, Any, maps).
func TestEveryListBounded(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		switch md.FullName() {
		case "google.protobuf.Struct", "google.protobuf.ListValue", "google.protobuf.Value", "google.protobuf.Any":
			t.Errorf("a request holds %s", md.FullName())
		}
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.IsMap() {
				t.Errorf("%s is a map", fd.FullName())
			}
			if _, ok := listCaps[fd.FullName()]; fd.IsList() && !ok {
				t.Errorf("%s has no bound in listCaps", fd.FullName())
			}
			if m := fd.Message(); m != nil {
				walk(m)
			}
		}
	}
	for _, md := range requestTypes(t) {
		walk(md)
	}
	for name := range listCaps {
		if _, ok := seen[name.Parent()]; !ok {
			t.Errorf("listCaps names %s, which no request holds", name)
		}
	}
}

// scanBoth checks m in binary and in JSON (compact, indented, with proto
// field names) and returns the binary verdict after checking that every
// encoding agrees.
func scanBoth(t *testing.T, m proto.Message) error {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var s listScan
	berr := s.scanBinary(b, m.ProtoReflect().Descriptor())
	for _, opts := range []protojson.MarshalOptions{{}, {Multiline: true, Indent: "\t"}, {UseProtoNames: true}} {
		js, err := opts.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		s := listScan{json: jsonScanner{data: js}}
		jerr := s.scanJSON(m.ProtoReflect().Descriptor())
		if (jerr == nil) != (berr == nil) {
			t.Fatalf("%T: binary says %v, JSON %+v says %v", m, berr, opts, jerr)
		}
		if jerr == nil && s.json.peek() != 0 {
			t.Fatalf("%T: JSON walk stopped at %d of %d", m, s.json.pos, len(js))
		}
	}
	return berr
}

// TestListBounds: each bound admits a list of its length and refuses one
// longer, in both encodings, wherever the list is nested.
func TestListBounds(t *testing.T) {
	msgs := func(n, headers int) *spoolv1.PublishRequest {
		req := &spoolv1.PublishRequest{Topic: "t", RequestId: 7}
		for range n {
			m := &spoolv1.Message{Key: []byte("k"), Id: "x"}
			for range headers {
				m.Headers = append(m.Headers, &spoolv1.Header{Key: "h", Value: []byte("v")})
			}
			req.Messages = append(req.Messages, m)
		}
		return req
	}
	ranges := func(n int) *spoolv1.ConsumeRequest {
		a := &spoolv1.Ack{RequestId: 1}
		for i := range n {
			a.Ranges = append(a.Ranges, &spoolv1.OffsetRange{Partition: 1, From: int64(i), To: int64(i) + 1})
		}
		return &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Ack{Ack: a}}
	}
	extend := func(n int) *spoolv1.ConsumeRequest {
		e := &spoolv1.Extend{Partition: 2, By: durationpb.New(1)}
		for i := range n {
			e.Offsets = append(e.Offsets, int64(i)*1000)
		}
		return &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Extend{Extend: e}}
	}
	commit := func(n int) *spoolv1.ConsumeRequest {
		c := &spoolv1.Commit{Generation: 3}
		for i := range n {
			c.Offsets = append(c.Offsets, &spoolv1.PartitionOffset{Partition: int32(i), Offset: 5})
		}
		return &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Commit{Commit: c}}
	}
	revoked := func(n int) *spoolv1.ConsumeRequest {
		r := &spoolv1.Revoked{}
		for i := range n {
			r.Partitions = append(r.Partitions, int32(i))
		}
		return &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Revoked{Revoked: r}}
	}
	delays := func(n int) *spoolv1.CreateSubscriptionRequest {
		b := &spoolv1.Backoff{Multiplier: 2}
		for range n {
			b.Delays = append(b.Delays, durationpb.New(1e9))
		}
		return &spoolv1.CreateSubscriptionRequest{Topic: "t", Name: "s", Config: &spoolv1.SubscriptionConfig{Backoff: b, Filter: "a.*"}}
	}
	mask := func(n int) *spoolv1.AlterTopicRequest {
		m := &fieldmaskpb.FieldMask{}
		for range n {
			m.Paths = append(m.Paths, "retention")
		}
		return &spoolv1.AlterTopicRequest{Name: "t", UpdateMask: m}
	}
	cases := []struct {
		name  string
		limit int
		make  func(n int) proto.Message
	}{
		{"messages", MaxPublishMessages, func(n int) proto.Message { return msgs(n, 0) }},
		{"headers per message", MaxMessageHeaders, func(n int) proto.Message { return msgs(1, n) }},
		{"headers per request", MaxRequestHeaders / 500, func(n int) proto.Message { return msgs(n, 500) }},
		{"ack ranges", MaxLeaseOffsets, func(n int) proto.Message { return ranges(n) }},
		{"extend offsets", MaxLeaseOffsets, func(n int) proto.Message { return extend(n) }},
		{"commit offsets", catalog.MaxPartitions, func(n int) proto.Message { return commit(n) }},
		{"revoked partitions", catalog.MaxPartitions, func(n int) proto.Message { return revoked(n) }},
		{"backoff delays", maxBackoffDelays, func(n int) proto.Message { return delays(n) }},
		{"update mask paths", maxMaskPaths, func(n int) proto.Message { return mask(n) }},
	}
	for _, c := range cases {
		if err := scanBoth(t, c.make(0)); err != nil {
			t.Errorf("%s: empty: %v", c.name, err)
		}
		if err := scanBoth(t, c.make(c.limit)); err != nil {
			t.Errorf("%s: %d (the limit): %v", c.name, c.limit, err)
		}
		if err := scanBoth(t, c.make(c.limit+1)); err == nil || !strings.Contains(err.Error(), "the limit") {
			t.Errorf("%s: %d: %v, want a refusal", c.name, c.limit+1, err)
		}
	}
}

// TestListScanBinaryMerge: a singular message field sent twice is merged by
// the decoder, so its lists count together.
func TestListScanBinaryMerge(t *testing.T) {
	half, err := proto.Marshal(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Ack{Ack: &spoolv1.Ack{
		Ranges: make([]*spoolv1.OffsetRange, MaxLeaseOffsets/2+1)}}})
	if err != nil {
		t.Fatal(err)
	}
	twice := append(append([]byte(nil), half...), half...)
	var decoded spoolv1.ConsumeRequest
	if err := proto.Unmarshal(twice, &decoded); err != nil || len(decoded.GetAck().GetRanges()) != MaxLeaseOffsets+2 {
		t.Fatalf("the decoder merges: %v, %d ranges", err, len(decoded.GetAck().GetRanges()))
	}
	var s listScan
	if err := s.scanBinary(twice, decoded.ProtoReflect().Descriptor()); err == nil {
		t.Fatal("merged ack ranges over the limit accepted")
	}
}

// TestListScanWire: lists written in ways a marshaller would not (unpacked
// scalars, escaped or proto-named JSON keys, unknown fields) are counted
// as the decoders read them.
func TestListScanWire(t *testing.T) {
	md := (&spoolv1.ConsumeRequest{}).ProtoReflect().Descriptor()
	// Extend offsets unpacked, one tag each.
	var ext []byte
	for i := range MaxLeaseOffsets + 1 {
		ext = protowire.AppendTag(ext, 2, protowire.VarintType)
		ext = protowire.AppendVarint(ext, uint64(i))
	}
	req := protowire.AppendTag(nil, 8, protowire.BytesType)
	req = protowire.AppendBytes(req, ext)
	var s listScan
	if err := s.scanBinary(req, md); err == nil {
		t.Error("unpacked extend offsets over the limit accepted")
	}

	pub := (&spoolv1.PublishRequest{}).ProtoReflect().Descriptor()
	over := strings.TrimSuffix(strings.Repeat("{},", MaxPublishMessages+1), ",")
	for _, js := range []string{
		`{"mess\u0061ges":[` + over + `]}`,
		`{"topic":"t" , "messages" : [` + over + `] }`,
		"{\n\"requestId\":\"1\",\n\t\"messages\":[" + over + "]}",
	} {
		s := listScan{json: jsonScanner{data: []byte(js)}}
		if err := s.scanJSON(pub); err == nil {
			t.Errorf("%.40s…: accepted", js)
		}
	}
	// Unknown fields are skipped whole, whatever they hold.
	unknown := `{"other":[` + over + `,{"messages":[` + over + `]}],"topic":"t","x":"]}\""}`
	if err := (&listScan{json: jsonScanner{data: []byte(unknown)}}).scanJSON(pub); err != nil {
		t.Errorf("unknown fields: %v", err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(unknown), &spoolv1.PublishRequest{}); err != nil {
		t.Errorf("the decoder refuses the unknown fields: %v", err)
	}
	// Malformed JSON is refused, never followed past what it means.
	for _, js := range []string{``, `{`, `{"messages":[{}`, `{"messages":[{},]}`, `{"topic":"t\q"}`, `{"messages":{}}`, `[]`} {
		if err := (&listScan{json: jsonScanner{data: []byte(js)}}).scanJSON(pub); err == nil {
			t.Errorf("%q accepted", js)
		}
	}
	// A field mask's paths are one string in JSON.
	alter := (&spoolv1.AlterSubscriptionRequest{}).ProtoReflect().Descriptor()
	paths := `{"updateMask":"` + strings.Repeat(`a\u002c`, maxMaskPaths) + `"}`
	if err := (&listScan{json: jsonScanner{data: []byte(paths)}}).scanJSON(alter); err == nil {
		t.Error("field mask paths over the limit accepted")
	}
}

// FuzzListScan: the walk never panics, and whatever it accepts decodes
// within the bounds.
func FuzzListScan(f *testing.F) {
	seeds := []proto.Message{
		&spoolv1.PublishRequest{Topic: "t", Messages: []*spoolv1.Message{{Key: []byte("k"), Headers: []*spoolv1.Header{{Key: "a"}}}, {}}},
		&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Ack{Ack: &spoolv1.Ack{Ranges: []*spoolv1.OffsetRange{{From: 1, To: 2}}}}},
		&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Extend{Extend: &spoolv1.Extend{Offsets: []int64{1, 300, 70000}}}},
	}
	for _, m := range seeds {
		b, _ := proto.Marshal(m)
		f.Add(b, false)
		js, _ := protojson.Marshal(m)
		f.Add(js, true)
	}
	check := func(t *testing.T, m proto.Message) {
		count(t, m.ProtoReflect(), map[protoreflect.FieldDescriptor]int{})
	}
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		for _, m := range []proto.Message{&spoolv1.PublishRequest{}, &spoolv1.ConsumeRequest{}} {
			md := m.ProtoReflect().Descriptor()
			if asJSON {
				s := listScan{json: jsonScanner{data: data}}
				if s.scanJSON(md) == nil && protojson.Unmarshal(data, m) == nil {
					check(t, m)
				}
			} else {
				var s listScan
				if s.scanBinary(data, md) == nil && proto.Unmarshal(data, m) == nil {
					check(t, m)
				}
			}
		}
	})
}

// count fails t if a list of m is longer than its bound (totals in
// totals).
func count(t *testing.T, m protoreflect.Message, totals map[protoreflect.FieldDescriptor]int) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsList() {
			l := v.List()
			c := capOf(fd)
			totals[fd] += l.Len()
			if l.Len() > c.each || (c.total > 0 && totals[fd] > c.total) {
				t.Fatalf("%s: %d elements accepted", fd.FullName(), l.Len())
			}
			if fd.Message() != nil {
				for i := range l.Len() {
					count(t, l.Get(i).Message(), totals)
				}
			}
		} else if fd.Message() != nil {
			count(t, v.Message(), totals)
		}
		return true
	})
}

// TestListScanAllocs: the walk allocates per list field, never per element.
func TestListScanAllocs(t *testing.T) {
	req := &spoolv1.PublishRequest{Topic: "t"}
	for range MaxPublishMessages {
		m := &spoolv1.Message{Key: []byte("k"), Subject: "a.b", Delay: durationpb.New(1)}
		for range 10 {
			m.Headers = append(m.Headers, &spoolv1.Header{Key: "h"})
		}
		req.Messages = append(req.Messages, m)
	}
	md := req.ProtoReflect().Descriptor()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	js, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for name, walk := range map[string]func() error{
		"binary": func() error { var s listScan; return s.scanBinary(b, md) },
		"json":   func() error { s := listScan{json: jsonScanner{data: js}}; return s.scanJSON(md) },
	} {
		if err := walk(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := testing.AllocsPerRun(5, func() { walk() }); n > 4 {
			t.Errorf("%s: %v allocations for %d messages", name, n, MaxPublishMessages)
		}
	}
}

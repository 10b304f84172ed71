package api

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Connect decodes a request before the handler runs (and a stream's
// messages as the handler receives them), so a bound checked by the handler
// comes too late: decoding has allocated for every element. The codecs
// below are Connect's protobuf and JSON codecs with one addition: before
// decoding, they walk the encoded message and refuse it if a list is longer
// than listCaps allows. The walk allocates nothing per element and stops
// at the first list over its bound. Connect reports a refused request as
// invalid_argument ("unmarshal message: …"); on a stream it ends the
// stream. Publish requests are not decoded here at all (see
// encodedPublish): their handler walks, charges and decodes them.

// codecs returns the handler options that install the bounded codecs under
// the names Connect's own are registered with.
func codecs() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithCodec(protoCodec{}),
		connect.WithCodec(jsonCodec{name: "json"}),
		connect.WithCodec(jsonCodec{name: "json; charset=utf-8"}),
	}
}

// protoCodec is the binary protobuf codec with list bounds.
type protoCodec struct{}

func (protoCodec) Name() string { return "proto" }

func (protoCodec) Marshal(m any) ([]byte, error) {
	pm, err := protoMessage(m)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(pm)
}

func (protoCodec) MarshalAppend(dst []byte, m any) ([]byte, error) {
	pm, err := protoMessage(m)
	if err != nil {
		return nil, err
	}
	return proto.MarshalOptions{}.MarshalAppend(dst, pm)
}

func (protoCodec) MarshalStable(m any) ([]byte, error) {
	pm, err := protoMessage(m)
	if err != nil {
		return nil, err
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(pm)
}

func (protoCodec) IsBinary() bool { return true }

func (protoCodec) Unmarshal(data []byte, m any) error {
	if ep, ok := m.(*encodedPublish); ok {
		ep.data, ep.json = append(requestBuf(len(data)), data...), false
		return nil
	}
	pm, err := protoMessage(m)
	if err != nil {
		return err
	}
	var s listScan
	if err := s.scanBinary(data, pm.ProtoReflect().Descriptor()); err != nil {
		return err
	}
	return proto.Unmarshal(data, pm)
}

// jsonCodec is the protobuf JSON codec with list bounds.
type jsonCodec struct{ name string }

func (c jsonCodec) Name() string { return c.name }

func (jsonCodec) Marshal(m any) ([]byte, error) {
	pm, err := protoMessage(m)
	if err != nil {
		return nil, err
	}
	return protojson.Marshal(pm)
}

func (jsonCodec) MarshalAppend(dst []byte, m any) ([]byte, error) {
	pm, err := protoMessage(m)
	if err != nil {
		return nil, err
	}
	return protojson.MarshalOptions{}.MarshalAppend(dst, pm)
}

func (c jsonCodec) MarshalStable(m any) ([]byte, error) { return c.Marshal(m) }

func (jsonCodec) IsBinary() bool { return false }

func (jsonCodec) Unmarshal(data []byte, m any) error {
	if ep, ok := m.(*encodedPublish); ok {
		ep.data, ep.json = append(requestBuf(len(data)), data...), true
		return nil
	}
	pm, err := protoMessage(m)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	s := listScan{json: jsonScanner{data: data}}
	if err := s.scanJSON(pm.ProtoReflect().Descriptor()); err != nil {
		return err
	}
	// Unknown fields are ignored, as by Connect's own JSON codec, so that
	// clients and servers need not share the same version of the schema.
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, pm)
}

func protoMessage(m any) (proto.Message, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a protobuf message", m)
	}
	return pm, nil
}

// maxScanDepth bounds the nesting of messages the walk follows (Spool's
// requests nest a few levels; anything deeper is refused).
const maxScanDepth = 32

// errTooDeep refuses a message nested deeper than maxScanDepth.
var errTooDeep = errors.New("request nested too deeply")

// listScan counts list elements while walking one encoded request.
type listScan struct {
	json   jsonScanner
	totals []fieldCount // elements so far of every list field, in the whole request
	// scopes[d] counts the lists of the message instance being walked at
	// depth d: list elements at one depth are walked one after another, so
	// each reuses its depth's scope.
	scopes [maxScanDepth + 2]scope
}

// elem returns the scope of a new message instance at depth d.
func (s *listScan) elem(d int) *scope {
	sc := &s.scopes[d]
	*sc = scope{}
	return sc
}

// scanBinary walks an encoded protobuf message of type md.
func (s *listScan) scanBinary(b []byte, md protoreflect.MessageDescriptor) error {
	return s.binary(b, md, s.elem(0), 0)
}

// scanJSON walks s.json as a message of type md.
func (s *listScan) scanJSON(md protoreflect.MessageDescriptor) error {
	return s.jsonMessage(md, s.elem(0), 0)
}

// fieldCount is a repeated field and its element count.
type fieldCount struct {
	fd protoreflect.FieldDescriptor
	n  int
}

// scope counts the elements of the lists of one message instance: the
// request, or one element of a list of messages. A singular message field
// that occurs more than once in binary is merged by the decoder, so its
// lists count in the scope of the message holding it.
type scope struct {
	counts [4]fieldCount
	n      int
	more   []fieldCount // beyond the first four fields
}

// add counts k elements of list fd and refuses the request if fd's bound
// (per list or per request) is exceeded.
func (s *listScan) add(sc *scope, md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, k int) error {
	c := capOf(fd)
	if sc.add(fd, k) > c.each {
		return fmt.Errorf("%s has more than %d %s (the limit)", md.Name(), c.each, fd.JSONName())
	}
	i := 0
	for i < len(s.totals) && s.totals[i].fd != fd {
		i++
	}
	if i == len(s.totals) {
		s.totals = append(s.totals, fieldCount{fd: fd})
	}
	if s.totals[i].n += k; c.total > 0 && s.totals[i].n > c.total {
		return fmt.Errorf("request has more than %d %s in all (the limit)", c.total, fd.JSONName())
	}
	return nil
}

// count returns how many elements of list fd the request has.
func (s *listScan) count(fd protoreflect.FieldDescriptor) int {
	for _, t := range s.totals {
		if t.fd == fd {
			return t.n
		}
	}
	return 0
}

// add counts k elements of fd in the scope and returns its count.
func (sc *scope) add(fd protoreflect.FieldDescriptor, k int) int {
	for i := range sc.n {
		if sc.counts[i].fd == fd {
			sc.counts[i].n += k
			return sc.counts[i].n
		}
	}
	if sc.n < len(sc.counts) {
		sc.counts[sc.n] = fieldCount{fd, k}
		sc.n++
		return k
	}
	for i := range sc.more {
		if sc.more[i].fd == fd {
			sc.more[i].n += k
			return sc.more[i].n
		}
	}
	sc.more = append(sc.more, fieldCount{fd, k})
	return k
}

// binary walks an encoded protobuf message of type md. Malformed input is
// refused with the decoder's own words where the walk cannot go on.
func (s *listScan) binary(b []byte, md protoreflect.MessageDescriptor, sc *scope, depth int) error {
	if depth > maxScanDepth {
		return errTooDeep
	}
	fields := md.Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("malformed %s: %w", md.Name(), protowire.ParseError(n))
		}
		b = b[n:]
		var val []byte
		if typ == protowire.BytesType {
			val, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("malformed %s: %w", md.Name(), protowire.ParseError(n))
		}
		b = b[n:]
		fd := fields.ByNumber(num)
		if fd == nil || fd.IsMap() {
			continue // unknown: kept as raw bytes by the decoder
		}
		if err := s.binaryField(fd, md, typ, val, sc, depth); err != nil {
			return err
		}
	}
	return nil
}

// binaryField accounts for one occurrence of field fd (wire type typ,
// bytes val when length-delimited). A field whose wire type does not match
// its kind is kept as an unknown field by the decoder, allocating nothing
// per element.
func (s *listScan) binaryField(fd protoreflect.FieldDescriptor, md protoreflect.MessageDescriptor, typ protowire.Type, val []byte, sc *scope, depth int) error {
	msg := fd.Message() != nil
	switch {
	case msg && typ != protowire.BytesType:
		return nil
	case msg && fd.IsList():
		if err := s.add(sc, md, fd, 1); err != nil {
			return err
		}
		return s.binary(val, fd.Message(), s.elem(depth+1), depth+1)
	case msg:
		return s.binary(val, fd.Message(), sc, depth+1)
	case !fd.IsList():
		return nil
	}
	k := fd.Kind()
	switch {
	case k == protoreflect.StringKind || k == protoreflect.BytesKind:
		if typ == protowire.BytesType {
			return s.add(sc, md, fd, 1)
		}
	case typ != protowire.BytesType:
		return s.add(sc, md, fd, 1) // one unpacked element
	case k == protoreflect.Fixed32Kind || k == protoreflect.Sfixed32Kind || k == protoreflect.FloatKind:
		return s.add(sc, md, fd, len(val)/4)
	case k == protoreflect.Fixed64Kind || k == protoreflect.Sfixed64Kind || k == protoreflect.DoubleKind:
		return s.add(sc, md, fd, len(val)/8)
	default: // packed varints: one per byte without the continuation bit
		n := 0
		for _, c := range val {
			if c < 0x80 {
				n++
			}
		}
		return s.add(sc, md, fd, n)
	}
	return nil
}

package sproto

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// maxDense is the highest field number looked up by index rather than in
// a map; most messages number their fields well below it.
const maxDense = 256

// msgInfo is what Validate needs to know about a message type, laid out
// for lookups by field number.
type msgInfo struct {
	fullName string
	desc     protoreflect.MessageDescriptor
	dense    []*fieldInfo // by field number, below maxDense
	sparse   map[protowire.Number]*fieldInfo
	// required lists the required fields by their bit in a walker's mask;
	// only the first 64 get a bit (see manyRequired).
	required []*fieldInfo
	// manyRequired is set when there are more required fields than bits;
	// such messages are confirmed by a full decode.
	manyRequired bool
	// mapEntry marks a map's entry, which does not count as a level of
	// nesting (protobuf-go's decoder does not count it either).
	mapEntry bool
}

// fieldInfo is one field of a msgInfo.
type fieldInfo struct {
	name   string
	num    protowire.Number
	kind   protoreflect.Kind
	wire   protowire.Type // the wire type of one value, unpacked
	packed bool           // a repeated scalar, so it may also come packed
	utf8   bool           // a string field whose UTF-8 the decoder checks
	msg    *msgInfo       // the type of a message, group or map field
	bit    int            // its bit among the required fields, or -1
}

func (m *msgInfo) field(n protowire.Number) *fieldInfo {
	if int(n) < len(m.dense) {
		return m.dense[n]
	}
	return m.sparse[n]
}

// tables builds msgInfos, one per message type, sharing them between the
// fields that refer to a type (recursive types refer to themselves).
type tables struct {
	infos map[protoreflect.FullName]*msgInfo
}

func (t *tables) info(md protoreflect.MessageDescriptor) (*msgInfo, error) {
	if m, ok := t.infos[md.FullName()]; ok {
		return m, nil
	}
	m := &msgInfo{fullName: string(md.FullName()), desc: md, mapEntry: md.IsMapEntry()}
	t.infos[md.FullName()] = m
	fields := md.Fields()
	maxNum := protowire.Number(0)
	for i := 0; i < fields.Len(); i++ {
		maxNum = max(maxNum, fields.Get(i).Number())
	}
	m.dense = make([]*fieldInfo, min(int(maxNum)+1, maxDense))
	for i := 0; i < fields.Len(); i++ {
		f, err := t.field(m, fields.Get(i))
		if err != nil {
			return nil, err
		}
		if int(f.num) < len(m.dense) {
			m.dense[f.num] = f
			continue
		}
		if m.sparse == nil {
			m.sparse = map[protowire.Number]*fieldInfo{}
		}
		m.sparse[f.num] = f
	}
	return m, nil
}

func (t *tables) field(m *msgInfo, fd protoreflect.FieldDescriptor) (*fieldInfo, error) {
	f := &fieldInfo{name: string(fd.Name()), num: fd.Number(), kind: fd.Kind(), bit: -1}
	f.wire = wireType(fd.Kind())
	f.packed = fd.IsList() && f.wire != protowire.BytesType && f.wire != protowire.StartGroupType
	if fd.Cardinality() == protoreflect.Required {
		if len(m.required) < 64 {
			f.bit = len(m.required)
			m.required = append(m.required, f)
		} else {
			m.manyRequired = true
		}
	}
	if fd.Message() != nil {
		sub, err := t.info(fd.Message())
		if err != nil {
			return nil, err
		}
		f.msg = sub
	}
	if fd.Kind() == protoreflect.StringKind {
		v, err := checksUTF8(m.desc, fd)
		if err != nil {
			return nil, err
		}
		f.utf8 = v
	}
	return f, nil
}

// wireType is the wire type a value of kind k is encoded with.
func wireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return protowire.BytesType
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.VarintType
}

// checksUTF8 reports whether the decoder rejects invalid UTF-8 in string
// field fd of message md. That depends on the syntax and, in editions, on
// the utf8_validation feature resolved through the field's parents, which
// protobuf-go does not export; so the decoder itself is asked, with a
// one-field payload holding an invalid byte.
func checksUTF8(md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor) (bool, error) {
	payload := protowire.AppendTag(nil, fd.Number(), protowire.BytesType)
	payload = protowire.AppendBytes(payload, []byte{0xff})
	err := proto.UnmarshalOptions{AllowPartial: true}.Unmarshal(payload, dynamicpb.NewMessage(md))
	if err == nil {
		return false, nil
	}
	// The probe's only possible failure is the invalid UTF-8; anything
	// else means the type cannot be decoded at all.
	probe := protowire.AppendTag(nil, fd.Number(), protowire.BytesType)
	probe = protowire.AppendBytes(probe, []byte("a"))
	if err2 := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(probe, dynamicpb.NewMessage(md)); err2 != nil {
		return false, fmt.Errorf("message %s cannot be decoded: %w", md.FullName(), err2)
	}
	return true, nil
}

package schemaserde

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// NewProtobuf returns a Serde of Protobuf messages of msg's type for
// subject. schemaText is the .proto source of the file that declares the
// message type (the file compiled into msg's Go package: the registry
// keeps .proto text, which cannot be generated from a compiled
// descriptor); its imports other than the google/protobuf/ well-known
// files are given with WithReferences. The message indexes written into
// messages are the path of msg's type in its file, which must be the
// file's order of declarations in schemaText.
//
// Encode takes and Decode fills messages of msg's type (msg itself is
// not used). Decode accepts only messages whose indexes are msg's type's.
func NewProtobuf(r *Registry, subject, schemaText string, msg proto.Message, opts ...Option) (*Serde, error) {
	if msg == nil {
		return nil, errors.New("schemaserde: nil message")
	}
	if strings.TrimSpace(schemaText) == "" {
		return nil, errors.New("schemaserde: empty .proto schema")
	}
	s, err := newSerde(r, subject, Protobuf, schemaText, opts)
	if err != nil {
		return nil, err
	}
	d := msg.ProtoReflect().Descriptor()
	s.f = &protoFormat{name: d.FullName(), indexes: MessageIndexes(d)}
	return s, nil
}

// MessageIndexes returns the message indexes of a message type, as the
// wire format writes them: the index of the top-level message that is or
// contains it among its file's messages, then the index of each nested
// message among its parent's.
func MessageIndexes(d protoreflect.MessageDescriptor) []int {
	var idx []int
	for {
		idx = append(idx, d.Index())
		p, ok := d.Parent().(protoreflect.MessageDescriptor)
		if !ok {
			break
		}
		d = p
	}
	slices.Reverse(idx)
	return idx
}

type protoFormat struct {
	name    protoreflect.FullName
	indexes []int
}

func (f *protoFormat) message(v any) (proto.Message, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("schemaserde: %T is not a Protobuf message", v)
	}
	if got := m.ProtoReflect().Descriptor().FullName(); got != f.name {
		return nil, fmt.Errorf("schemaserde: a %s, not a %s", got, f.name)
	}
	return m, nil
}

func (f *protoFormat) encoder(context.Context, *Registry, Schema) (encodeFunc, error) {
	return func(dst []byte, v any) ([]byte, error) {
		m, err := f.message(v)
		if err != nil {
			return nil, err
		}
		out, err := proto.MarshalOptions{}.MarshalAppend(dst, m)
		if err != nil {
			return nil, fmt.Errorf("schemaserde: Protobuf encoding: %w", err)
		}
		return out, nil
	}, nil
}

func (f *protoFormat) decoder(context.Context, *Registry, Schema) (decodeFunc, error) {
	return func(payload []byte, v any) error {
		m, err := f.message(v)
		if err != nil {
			return err
		}
		if err := proto.Unmarshal(payload, m); err != nil {
			return fmt.Errorf("schemaserde: Protobuf decoding: %w", err)
		}
		return nil
	}, nil
}

func (f *protoFormat) appendHeader(dst []byte, id int) []byte {
	return AppendProtobufHeader(dst, id, f.indexes)
}

func (f *protoFormat) parseHeader(b []byte) (int, []byte, error) {
	id, idx, payload, err := ParseProtobufHeader(b)
	if err != nil {
		return 0, nil, err
	}
	if !slices.Equal(idx, f.indexes) {
		return 0, nil, fmt.Errorf("schemaserde: message indexes %v, not %v: the message is not a %s", idx, f.indexes, f.name)
	}
	return id, payload, nil
}

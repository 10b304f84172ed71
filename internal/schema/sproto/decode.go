package sproto

import (
	"errors"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/spoolmq/spool/internal/schema"
)

var _ schema.Decoder = (*protoSchema)(nil)

// DecodeJSON renders a Protobuf payload of the message indexes select in
// Protobuf's JSON mapping (field names as in the .proto file), after
// checking it as Validate does.
func (s *protoSchema) DecodeJSON(payload []byte, indexes []int) (out []byte, err error) {
	if err := s.Validate(payload, indexes); err != nil {
		return nil, err
	}
	m, err := s.message(indexes)
	if err != nil {
		return nil, err
	}
	defer func() {
		// protobuf-go's dynamic decoder has panicked on malformed input
		// (see confirmRequired): an undecodable payload, not a crash.
		if recover() != nil {
			out, err = nil, errors.New("protobuf decode failed")
		}
	}()
	msg := dynamicpb.NewMessage(m.desc)
	if err := (proto.UnmarshalOptions{RecursionLimit: schema.MaxDepth}).Unmarshal(payload, msg); err != nil {
		return nil, err
	}
	return protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
}

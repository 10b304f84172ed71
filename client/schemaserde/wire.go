package schemaserde

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The Confluent wire format: a message's value starts with the magic byte
// 0 and the schema id as 4 bytes big-endian; a Protobuf message's then
// has the message indexes, the path of the message type in its .proto
// file; then comes the encoded value.
const (
	magicByte = 0
	// HeaderSize is the size of the header of an Avro or JSON Schema
	// message: the magic byte and the schema id.
	HeaderSize = 5
	// MaxIndexes bounds the message indexes of a Protobuf header: how
	// deep a message type may be nested.
	MaxIndexes = 64
)

// ErrInvalidHeader is the error (wrapped, with details) of a message that
// does not start with a valid wire-format header: too short, a magic byte
// other than 0, or malformed Protobuf message indexes.
var ErrInvalidHeader = errors.New("schemaserde: invalid wire-format header")

// AppendHeader appends the header of an Avro or JSON Schema message, the
// magic byte and schema id, to dst. It panics if id is not a schema id
// (from 0 to 2^32-1).
func AppendHeader(dst []byte, id int) []byte {
	if id < 0 || id > math.MaxUint32 {
		panic(fmt.Sprintf("schemaserde: schema id %d out of range", id))
	}
	return binary.BigEndian.AppendUint32(append(dst, magicByte), uint32(id))
}

// AppendProtobufHeader appends the header of a Protobuf message to dst:
// the magic byte, the schema id, and the message indexes of the message
// type (nil or [0] is the first message of the file, written as the
// single byte 0). It panics if id is not a schema id, if there are more
// than MaxIndexes indexes or an index is negative.
func AppendProtobufHeader(dst []byte, id int, indexes []int) []byte {
	if len(indexes) > MaxIndexes {
		panic(fmt.Sprintf("schemaserde: %d message indexes, more than %d", len(indexes), MaxIndexes))
	}
	dst = AppendHeader(dst, id)
	if len(indexes) == 0 || (len(indexes) == 1 && indexes[0] == 0) {
		return append(dst, 0)
	}
	dst = binary.AppendVarint(dst, int64(len(indexes)))
	for _, i := range indexes {
		if i < 0 || i > math.MaxInt32 {
			panic(fmt.Sprintf("schemaserde: message index %d out of range", i))
		}
		dst = binary.AppendVarint(dst, int64(i))
	}
	return dst
}

// ParseHeader reads the header of an Avro or JSON Schema message and
// returns the schema id and the encoded value after the header.
func ParseHeader(b []byte) (id int, payload []byte, err error) {
	if len(b) < HeaderSize {
		return 0, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrInvalidHeader, len(b), HeaderSize)
	}
	if b[0] != magicByte {
		return 0, nil, fmt.Errorf("%w: magic byte %d, not %d", ErrInvalidHeader, b[0], magicByte)
	}
	return int(binary.BigEndian.Uint32(b[1:5])), b[HeaderSize:], nil
}

// ParseProtobufHeader reads the header of a Protobuf message and returns
// the schema id, the message indexes (the single byte 0 is [0]) and the
// encoded message after the header.
func ParseProtobufHeader(b []byte) (id int, indexes []int, payload []byte, err error) {
	id, b, err = ParseHeader(b)
	if err != nil {
		return 0, nil, nil, err
	}
	n, k := binary.Varint(b)
	switch {
	case k == 0:
		return 0, nil, nil, fmt.Errorf("%w: no message indexes", ErrInvalidHeader)
	case k < 0:
		return 0, nil, nil, fmt.Errorf("%w: the count of message indexes overflows", ErrInvalidHeader)
	case n == 0:
		return id, []int{0}, b[k:], nil
	case n < 0 || n > MaxIndexes:
		return 0, nil, nil, fmt.Errorf("%w: %d message indexes, want 0 to %d", ErrInvalidHeader, n, MaxIndexes)
	}
	b = b[k:]
	// Each index takes a byte at least: a count beyond what is left is
	// reported below without allocating for it.
	indexes = make([]int, 0, min(int(n), len(b)))
	for i := range int(n) {
		x, k := binary.Varint(b)
		switch {
		case k == 0:
			return 0, nil, nil, fmt.Errorf("%w: truncated in message index %d of %d", ErrInvalidHeader, i+1, n)
		case k < 0 || x < 0 || x > math.MaxInt32:
			return 0, nil, nil, fmt.Errorf("%w: message index %d of %d out of range", ErrInvalidHeader, i+1, n)
		}
		indexes = append(indexes, int(x))
		b = b[k:]
	}
	return id, indexes, b, nil
}

package sproto

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/spoolmq/spool/internal/schema"
)

// Validate checks that payload is a well-formed encoding of the message
// that indexes select. It walks the wire format against the descriptor
// without building a message: every tag, length and value must be well
// formed and within the payload, known fields must have their type's wire
// type (packed or not for repeated scalars), strings the decoder checks
// must be UTF-8, nested messages and groups must be complete, nesting must
// not exceed schema.MaxDepth, and proto2 required fields must be set.
// Unknown fields are accepted as long as they are well formed.
func (s *protoSchema) Validate(payload []byte, indexes []int) error {
	m, err := s.message(indexes)
	if err != nil {
		return err
	}
	var w walker
	if _, err := w.message(payload, m, 1, 0); err != nil {
		var pe *payloadError
		if errors.As(err, &pe) {
			pe.path = append(pe.path, m.fullName)
		}
		return err
	}
	if w.missing != nil {
		return confirmRequired(payload, m, w.missing)
	}
	return nil
}

// message returns the message the Confluent message indexes select.
func (s *protoSchema) message(indexes []int) (*msgInfo, error) {
	nodes := s.roots
	if len(nodes) == 0 {
		return nil, errors.New("schema defines no message")
	}
	if len(indexes) == 0 {
		return nodes[0].info, nil
	}
	var n *node
	for depth, i := range indexes {
		if i < 0 || i >= len(nodes) {
			return nil, fmt.Errorf("message index %d at position %d of %v is out of range (%s)", i, depth, indexes, countMessages(len(nodes), n))
		}
		n = nodes[i]
		nodes = n.nested
	}
	return n.info, nil
}

func countMessages(count int, parent *node) string {
	where := "the file"
	if parent != nil {
		where = parent.info.fullName
	}
	return fmt.Sprintf("%s has %d messages", where, count)
}

// confirmRequired decodes the whole payload when the walk found a required
// field unset: a message that occurs more than once is merged, so fields
// missing from one occurrence may be set by another, which only a full
// decode sees. This is the error path only.
func confirmRequired(payload []byte, m *msgInfo, missing *payloadError) (err error) {
	defer func() {
		// protobuf-go's dynamic decoder has panicked on malformed map
		// entries (a key of the wrong wire type); such a payload is
		// invalid, never a reason to stop the server.
		if recover() != nil {
			missing.path = append(missing.path, m.fullName)
			err = missing
		}
	}()
	msg := dynamicpb.NewMessage(m.desc)
	if (proto.UnmarshalOptions{RecursionLimit: schema.MaxDepth}).Unmarshal(payload, msg) == nil {
		return nil
	}
	missing.path = append(missing.path, m.fullName)
	return missing
}

// payloadError says what is wrong with a payload and where.
type payloadError struct {
	// path holds the field names from the innermost out, the message's
	// full name last; Error reverses it.
	path []string
	// offset is the byte offset in the payload of the bad part.
	offset int
	msg    string
	// strict marks errors that protobuf-go's decoder does not raise (it
	// keeps the data as unknown fields); the fuzz test tells them apart.
	strict bool
}

func (e *payloadError) Error() string {
	p := slices.Clone(e.path)
	slices.Reverse(p)
	if e.offset < 0 {
		return fmt.Sprintf("invalid payload at %s: %s", strings.Join(p, "."), e.msg)
	}
	return fmt.Sprintf("invalid payload at %s (byte %d): %s", strings.Join(p, "."), e.offset, e.msg)
}

// within adds the enclosing field's name and the offset of the enclosing
// value to an error from a nested message.
func within(err error, f *fieldInfo, start int) error {
	if pe, ok := err.(*payloadError); ok {
		pe.path = append(pe.path, f.name)
		pe.offset += start
	}
	return err
}

func errAt(offset int, format string, args ...any) *payloadError {
	return &payloadError{offset: offset, msg: fmt.Sprintf(format, args...)}
}

// wireError describes a protowire parse failure (protowire's codes).
func wireError(n int, what string) string {
	switch n {
	case -1:
		return what + " runs past the end of its message"
	case -2:
		return what + " has an invalid field number (0 or above 2^29-1)"
	case -3:
		return what + " has a varint longer than 10 bytes"
	case -4:
		return what + " has a reserved wire type (6 or 7)"
	}
	return what + ": " + protowire.ParseError(n).Error()
}

// walker validates one payload.
type walker struct {
	// missing is the first required field found unset.
	missing *payloadError
	// names holds the field names leading to the message being walked,
	// by depth, for the path of an unset required field (which is
	// reported after the walk, not as the walk unwinds).
	names [schema.MaxDepth + 1]string
}

// message validates the fields of message m in b, at nesting depth depth.
// For a group (end != 0) it stops after the matching end-group tag and
// returns the bytes consumed; otherwise b must hold exactly the message.
func (w *walker) message(b []byte, m *msgInfo, depth int, end protowire.Number) (int, error) {
	var seen uint64
	i := 0
	for i < len(b) {
		num, typ, n := consumeTag(b[i:])
		if n < 0 {
			return 0, errAt(i, "%s", wireError(n, "field tag"))
		}
		start := i
		i += n
		if typ == protowire.EndGroupType {
			if end != 0 && num == end {
				w.checkRequired(m, seen, depth)
				return i, nil
			}
			return 0, errAt(start, "end of group %d without its start", num)
		}
		f := m.field(num)
		if f == nil {
			n, err := skipField(b[i:], num, typ, depth)
			if err != nil {
				return 0, within(err, &fieldInfo{name: fmt.Sprint(num)}, i)
			}
			i += n
			continue
		}
		n, err := w.field(b[i:], f, typ, depth)
		if err != nil {
			return 0, within(err, f, i)
		}
		i += n
		if f.bit >= 0 {
			seen |= 1 << f.bit
		}
	}
	if end != 0 {
		return 0, errAt(len(b), "group %d has no end", end)
	}
	w.checkRequired(m, seen, depth)
	return i, nil
}

func (w *walker) checkRequired(m *msgInfo, seen uint64, depth int) {
	if w.missing != nil || (len(m.required) == 0 && !m.manyRequired) {
		return
	}
	if seen == 1<<len(m.required)-1 && !m.manyRequired {
		return
	}
	name := "one of its required fields"
	for bit, f := range m.required {
		if seen&(1<<bit) == 0 {
			name = "required field " + f.name
			break
		}
	}
	path := slices.Clone(w.names[2 : depth+1])
	slices.Reverse(path)
	w.missing = &payloadError{path: path, offset: -1, msg: name + " is not set"}
}

// field validates one value of field f, encoded with wire type typ, at
// the start of b, and returns its length.
func (w *walker) field(b []byte, f *fieldInfo, typ protowire.Type, depth int) (int, error) {
	if typ != f.wire {
		if typ == protowire.BytesType && f.packed {
			return packed(b, f)
		}
		if typ > protowire.Fixed32Type {
			return 0, errAt(0, "%s", wireError(-4, "field tag"))
		}
		return 0, &payloadError{strict: true, msg: fmt.Sprintf("wire type %s, but the field is %s (wire type %s)", wireName(typ), f.kind, wireName(f.wire))}
	}
	switch typ {
	case protowire.VarintType:
		return value(protowire.ConsumeVarint(b))
	case protowire.Fixed32Type:
		return value(protowire.ConsumeFixed32(b))
	case protowire.Fixed64Type:
		return value(protowire.ConsumeFixed64(b))
	case protowire.StartGroupType:
		if depth >= schema.MaxDepth {
			return 0, errAt(0, "messages nest more than %d deep", schema.MaxDepth)
		}
		w.names[depth+1] = f.name
		return w.message(b, f.msg, depth+1, f.num)
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, errAt(0, "%s", wireError(n, "length-delimited value"))
	}
	start := n - len(v)
	switch {
	case f.msg != nil:
		next := depth + 1
		if f.msg.mapEntry {
			next = depth
		}
		if next > schema.MaxDepth {
			return 0, errAt(start, "messages nest more than %d deep", schema.MaxDepth)
		}
		w.names[next] = f.name
		if _, err := w.message(v, f.msg, next, 0); err != nil {
			if pe, ok := err.(*payloadError); ok {
				pe.offset += start
			}
			return 0, err
		}
	case f.utf8 && !utf8.Valid(v):
		return 0, errAt(start, "string is not valid UTF-8")
	}
	return n, nil
}

func value[T any](_ T, n int) (int, error) {
	if n < 0 {
		return 0, errAt(0, "%s", wireError(n, "value"))
	}
	return n, nil
}

// packed validates a packed repeated scalar: a length-delimited run of
// values, each with the field's wire type.
func packed(b []byte, f *fieldInfo) (int, error) {
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return 0, errAt(0, "%s", wireError(n, "packed values"))
	}
	start := n - len(v)
	switch f.wire {
	case protowire.Fixed32Type:
		if len(v)%4 != 0 {
			return 0, errAt(start, "packed fixed32 values are %d bytes, not a multiple of 4", len(v))
		}
	case protowire.Fixed64Type:
		if len(v)%8 != 0 {
			return 0, errAt(start, "packed fixed64 values are %d bytes, not a multiple of 8", len(v))
		}
	default:
		for j := 0; j < len(v); {
			if v[j] < 0x80 {
				j++
				continue
			}
			_, k := protowire.ConsumeVarint(v[j:])
			if k < 0 {
				return 0, errAt(start+j, "%s", wireError(k, "packed varint"))
			}
			j += k
		}
	}
	return n, nil
}

// skipField checks and skips the value of an unknown field; groups count
// towards the nesting bound like messages do.
func skipField(b []byte, num protowire.Number, typ protowire.Type, depth int) (int, error) {
	if typ != protowire.StartGroupType {
		n := protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, errAt(0, "%s", wireError(n, "unknown field's value"))
		}
		return n, nil
	}
	if depth >= schema.MaxDepth {
		return 0, &payloadError{strict: true, msg: fmt.Sprintf("groups nest more than %d deep", schema.MaxDepth)}
	}
	i := 0
	for i < len(b) {
		n2, t2, n := consumeTag(b[i:])
		if n < 0 {
			return 0, errAt(i, "%s", wireError(n, "field tag"))
		}
		i += n
		if t2 == protowire.EndGroupType {
			if n2 != num {
				return 0, errAt(i-n, "group %d ends with the end of group %d", num, n2)
			}
			return i, nil
		}
		k, err := skipField(b[i:], n2, t2, depth+1)
		if err != nil {
			if pe, ok := err.(*payloadError); ok {
				pe.offset += i
			}
			return 0, err
		}
		i += k
	}
	return 0, errAt(len(b), "group %d has no end", num)
}

// consumeTag is protowire.ConsumeTag with a fast path for the one-byte
// tags of fields 1 to 15, and the upper bound on field numbers that
// ConsumeTag leaves to the decoder.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	const badNumber = -2 // protowire's code for an invalid field number
	if len(b) > 0 && b[0] < 0x80 {
		num, typ := protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
		if num == 0 {
			return 0, 0, badNumber
		}
		return num, typ, 1
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, badNumber
	}
	return num, typ, n
}

func wireName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "length-delimited"
	case protowire.StartGroupType:
		return "start-group"
	case protowire.EndGroupType:
		return "end-group"
	}
	return fmt.Sprintf("%d (reserved)", t)
}

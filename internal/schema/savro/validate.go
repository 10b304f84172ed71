package savro

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Validate checks that payload is one value of the schema in Avro's binary
// encoding, exactly: truncated values, trailing bytes, lengths and counts
// beyond what is left of the payload, out-of-range enum symbols and union
// branches, booleans other than 0 and 1, integers that overflow their type,
// strings that are not UTF-8, nesting deeper than schema.MaxDepth and
// array or map blocks whose byte size disagrees with their items are
// errors. indexes are ignored (they are Protobuf's).
//
// It walks the bytes along the schema without decoding them into values,
// so a valid payload costs no allocation.
func (s *Schema) Validate(payload []byte, _ []int) error {
	pos, err := value(s.root, payload, 0, 1)
	if err != nil {
		return err
	}
	if pos != len(payload) {
		return &payloadError{offset: pos, problem: fmt.Sprintf("%d trailing bytes after the value", len(payload)-pos)}
	}
	return nil
}

// payloadError is a payload that does not match the schema. Its path is
// collected while the walk unwinds, innermost segment first, so that a
// valid payload pays nothing for it.
type payloadError struct {
	segments []string // reversed
	offset   int
	problem  string
}

func (e *payloadError) Error() string {
	var path strings.Builder
	for i := len(e.segments) - 1; i >= 0; i-- {
		path.WriteByte('/')
		path.WriteString(e.segments[i])
	}
	if path.Len() == 0 {
		path.WriteByte('/')
	}
	return fmt.Sprintf("avro payload: at %s (byte %d): %s", path.String(), e.offset, e.problem)
}

func failf(pos int, format string, args ...any) error {
	return &payloadError{offset: pos, problem: fmt.Sprintf(format, args...)}
}

// within adds a path segment to an error coming out of a nested value.
func within(err error, segment string) error {
	if pe, ok := err.(*payloadError); ok {
		pe.segments = append(pe.segments, segment)
	}
	return err
}

// value checks the value of type n at b[pos:] and returns where it ends.
// depth is n's nesting depth, counted as the schema's is.
func value(n *node, b []byte, pos, depth int) (int, error) {
	switch n.kind {
	case kNull:
		return pos, nil
	case kBoolean:
		if pos >= len(b) {
			return pos, truncated(b, pos, "boolean")
		}
		if b[pos] > 1 {
			return pos, failf(pos, "boolean byte is %d, not 0 or 1", b[pos])
		}
		return pos + 1, nil
	case kInt:
		_, end, err := readInt(b, pos)
		return end, err
	case kLong:
		_, end, err := readLong(b, pos)
		return end, err
	case kFloat:
		return fixedBytes(b, pos, 4, "float")
	case kDouble:
		return fixedBytes(b, pos, 8, "double")
	case kFixed:
		return fixedBytes(b, pos, n.size, "fixed")
	case kBytes:
		_, end, err := lengthPrefixed(b, pos, "bytes")
		return end, err
	case kString:
		return stringValue(b, pos)
	case kEnum:
		i, end, err := readInt(b, pos)
		if err != nil {
			return end, err
		}
		if i < 0 || i >= int64(len(n.symbols)) {
			return pos, failf(pos, "enum symbol index %d is out of range (the enum %s has %d symbols)", i, truncate(n.name), len(n.symbols))
		}
		return end, nil
	}
	if depth > maxDepth {
		return pos, failf(pos, "values nest deeper than %d levels", maxDepth)
	}
	switch n.kind {
	case kRecord:
		return record(n, b, pos, depth)
	case kUnion:
		return union(n, b, pos, depth)
	case kArray:
		return blocks(n, b, pos, depth)
	}
	return blocks(n, b, pos, depth) // kMap
}

func record(n *node, b []byte, pos, depth int) (int, error) {
	for i := range n.fields {
		f := &n.fields[i]
		var err error
		if pos, err = value(f.typ, b, pos, depth+1); err != nil {
			return pos, within(err, f.name)
		}
	}
	return pos, nil
}

func union(n *node, b []byte, pos, depth int) (int, error) {
	i, end, err := readInt(b, pos)
	if err != nil {
		return end, err
	}
	if i < 0 || i >= int64(len(n.branches)) {
		return pos, failf(pos, "union branch index %d is out of range (the union has %d branches)", i, len(n.branches))
	}
	return value(n.branches[i], b, end, depth+1)
}

// blocks checks an array's or a map's blocks: each is a count, then (if
// the count is negative) its size in bytes, then the items; a zero count
// ends them.
func blocks(n *node, b []byte, pos, depth int) (int, error) {
	item := n.items
	if n.kind == kMap {
		item = n.values
	}
	index := 0
	for {
		countPos := pos
		count, end, err := readLong(b, pos)
		if err != nil {
			return end, err
		}
		pos = end
		if count == 0 {
			return pos, nil
		}
		blockStart, blockSize := -1, 0
		if count < 0 {
			if count == math.MinInt64 {
				return countPos, failf(countPos, "block count %d is out of range", count)
			}
			count = -count
			size, end, err := readLong(b, pos)
			if err != nil {
				return end, err
			}
			if size < 0 || size > int64(len(b)-end) {
				return pos, failf(pos, "block size %d is beyond the %d bytes left", size, len(b)-end)
			}
			pos, blockStart, blockSize = end, end, int(size)
		}
		if pos, err = blockItems(n, item, b, pos, countPos, count, index, depth); err != nil {
			return pos, err
		}
		if blockStart >= 0 && pos-blockStart != blockSize {
			return pos, failf(blockStart, "block announced %d bytes but its items take %d", blockSize, pos-blockStart)
		}
		index += int(count)
	}
}

// blockItems checks count items of one block; index is the first one's
// position in the whole array or map, for error paths.
func blockItems(n, item *node, b []byte, pos, countPos int, count int64, index, depth int) (int, error) {
	minSize := item.minSize
	if n.kind == kMap {
		minSize++ // the key's length
	}
	if minSize == 0 {
		// Items that always encode to nothing: any count is valid and
		// there is nothing to walk.
		return pos, nil
	}
	if count > int64((len(b)-pos)/minSize) {
		return countPos, failf(countPos, "block count %d is more than the %d bytes left can hold", count, len(b)-pos)
	}
	for i := range int(count) {
		var err error
		if n.kind == kMap {
			keyStart := pos
			if pos, err = stringValue(b, pos); err != nil {
				return pos, within(err, "<key "+strconv.Itoa(index+i)+">")
			}
			if pos, err = value(item, b, pos, depth+1); err != nil {
				return pos, within(err, mapKey(b, keyStart))
			}
			continue
		}
		if pos, err = value(item, b, pos, depth+1); err != nil {
			return pos, within(err, strconv.Itoa(index+i))
		}
	}
	return pos, nil
}

// mapKey renders the (already validated) key at b[pos:] as a path segment,
// shortened and with '/' and '~' escaped as in a JSON pointer.
func mapKey(b []byte, pos int) string {
	l, start, _ := readLong(b, pos)
	key := string(b[start : start+int(l)])
	key = strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
	return truncate(key)
}

func stringValue(b []byte, pos int) (int, error) {
	start, end, err := lengthPrefixed(b, pos, "string")
	if err != nil {
		return end, err
	}
	if !utf8.Valid(b[start:end]) {
		return start, failf(start, "string is not valid UTF-8")
	}
	return end, nil
}

// lengthPrefixed reads a length and checks that many bytes follow; it
// returns where they start and end.
func lengthPrefixed(b []byte, pos int, what string) (int, int, error) {
	l, start, err := readLong(b, pos)
	if err != nil {
		return pos, start, err
	}
	if l < 0 {
		return pos, pos, failf(pos, "%s length %d is negative", what, l)
	}
	if l > int64(len(b)-start) {
		return pos, pos, failf(pos, "%s length %d is beyond the %d bytes left", what, l, len(b)-start)
	}
	return start, start + int(l), nil
}

func fixedBytes(b []byte, pos, size int, what string) (int, error) {
	if size > len(b)-pos {
		return pos, truncated(b, pos, what)
	}
	return pos + size, nil
}

func truncated(b []byte, pos int, what string) error {
	return failf(pos, "payload ends inside a %s (%d bytes left)", what, len(b)-pos)
}

// readLong reads a zig-zag varint of at most 64 bits.
func readLong(b []byte, pos int) (int64, int, error) {
	if pos < len(b) && b[pos] < 0x80 {
		u := uint64(b[pos])
		return int64(u>>1) ^ -int64(u&1), pos + 1, nil
	}
	var u uint64
	for i := range 10 {
		if pos+i >= len(b) {
			return 0, pos, truncated(b, pos, "long")
		}
		c := b[pos+i]
		if i == 9 && c > 1 {
			return 0, pos, failf(pos, "long varint overflows 64 bits")
		}
		u |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), pos + i + 1, nil
		}
	}
	return 0, pos, failf(pos, "long varint is longer than 10 bytes")
}

// readInt reads a zig-zag varint of at most 32 bits.
func readInt(b []byte, pos int) (int64, int, error) {
	if pos < len(b) && b[pos] < 0x80 {
		u := uint32(b[pos])
		return int64(int32(u>>1) ^ -int32(u&1)), pos + 1, nil
	}
	var u uint32
	for i := range 5 {
		if pos+i >= len(b) {
			return 0, pos, truncated(b, pos, "int")
		}
		c := b[pos+i]
		if i == 4 && c > 0x0f {
			return 0, pos, failf(pos, "int varint overflows 32 bits")
		}
		u |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int64(int32(u>>1) ^ -int32(u&1)), pos + i + 1, nil
		}
	}
	return 0, pos, failf(pos, "int varint is longer than 5 bytes")
}

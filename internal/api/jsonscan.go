package api

import (
	"errors"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The JSON half of the list walk (see codec.go). It follows the encoded
// request as protojson will decode it — fields by JSON or proto name,
// lists as arrays, well-known types by their JSON forms — counting list
// elements, and skips everything else without building values. It stops at
// anything that is not well-formed: the decoder would refuse the request
// there anyway, having decoded only what the walk has already counted.

// errMalformedJSON refuses a request the walk cannot follow.
var errMalformedJSON = errors.New("malformed JSON request")

// jsonScanner reads JSON from data without allocating.
type jsonScanner struct {
	data []byte
	pos  int
}

// ws skips white space.
func (j *jsonScanner) ws() {
	for j.pos < len(j.data) {
		switch j.data[j.pos] {
		case ' ', '\t', '\n', '\r':
			j.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (j *jsonScanner) peek() byte {
	j.ws()
	if j.pos < len(j.data) {
		return j.data[j.pos]
	}
	return 0
}

// next consumes and returns the next byte after white space, or 0 at the
// end.
func (j *jsonScanner) next() byte {
	c := j.peek()
	if c != 0 {
		j.pos++
	}
	return c
}

// str reads a string (the next byte must be its opening quote) and
// returns how many characters and commas its decoded text has; with k, the
// text is also collected in k.
func (j *jsonScanner) str(k *key) (chars, commas int, err error) {
	if j.next() != '"' {
		return 0, 0, errMalformedJSON
	}
	for j.pos < len(j.data) {
		c := j.data[j.pos]
		j.pos++
		r := rune(c) // bytes of a multi-byte character never match ASCII
		switch {
		case c == '"':
			return chars, commas, nil
		case c == '\\':
			if r, err = j.escape(); err != nil {
				return 0, 0, err
			}
		}
		chars++
		if r == ',' {
			commas++
		}
		if k != nil {
			k.add(r)
		}
	}
	return 0, 0, errMalformedJSON
}

// escape reads the rest of an escape sequence (after the backslash).
func (j *jsonScanner) escape() (rune, error) {
	if j.pos >= len(j.data) {
		return 0, errMalformedJSON
	}
	e := j.data[j.pos]
	j.pos++
	switch e {
	case '"', '\\', '/':
		return rune(e), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, errMalformedJSON
	}
	if j.pos+4 > len(j.data) {
		return 0, errMalformedJSON
	}
	var r rune
	for _, h := range j.data[j.pos : j.pos+4] {
		var v byte
		switch {
		case h >= '0' && h <= '9':
			v = h - '0'
		case h >= 'a' && h <= 'f':
			v = h - 'a' + 10
		case h >= 'A' && h <= 'F':
			v = h - 'A' + 10
		default:
			return 0, errMalformedJSON
		}
		r = r<<4 | rune(v)
	}
	j.pos += 4
	return r, nil
}

// skip reads one value of any kind. Containers are skipped by counting
// brackets (strings skipped whole), without recursion.
func (j *jsonScanner) skip() error {
	switch c := j.peek(); c {
	case 0:
		return errMalformedJSON
	case '"':
		_, _, err := j.str(nil)
		return err
	case '{', '[':
	case '}', ']', ',', ':':
		return errMalformedJSON
	default: // a number, true, false or null
		for j.pos < len(j.data) {
			switch j.data[j.pos] {
			case ',', '}', ']', ':', '"', '{', '[', ' ', '\t', '\n', '\r':
				return nil
			}
			j.pos++
		}
		return nil
	}
	depth := 0
	for {
		switch c := j.peek(); c {
		case 0:
			return errMalformedJSON
		case '"':
			if _, _, err := j.str(nil); err != nil {
				return err
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		j.pos++
		if depth == 0 {
			return nil
		}
	}
}

// uint reads an unsigned integer written as digits, quoted or not, as
// protojson writes 64-bit integers; anything else is skipped and reads as
// 0 (the decoder judges it).
func (j *jsonScanner) uint() (uint64, error) {
	start := j.pos
	quoted := j.peek() == '"'
	if quoted {
		j.pos++
	}
	var v uint64
	digits := 0
	for ; j.pos < len(j.data) && j.data[j.pos] >= '0' && j.data[j.pos] <= '9'; j.pos++ {
		v = v*10 + uint64(j.data[j.pos]-'0')
		digits++
	}
	if quoted && j.pos < len(j.data) && j.data[j.pos] == '"' {
		j.pos++
		quoted = false
	}
	end := j.pos == len(j.data)
	if !end {
		switch j.data[j.pos] {
		case ',', '}', ' ', '\t', '\n', '\r':
			end = true
		}
	}
	if digits > 0 && digits <= 19 && !quoted && end {
		return v, nil
	}
	j.pos = start
	return 0, j.skip()
}

// key is a field name being read: long names cannot name a field.
type key struct {
	buf [64]byte
	n   int
	bad bool // too long, or not ASCII
}

func (k *key) add(r rune) {
	if r >= 0x80 || k.n == len(k.buf) {
		k.bad = true
		return
	}
	k.buf[k.n] = byte(r)
	k.n++
}

// field returns the field of md a JSON name stands for, as protojson finds
// it: by JSON name, then by proto name.
func (k *key) field(md protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	if k.bad {
		return nil
	}
	name := k.buf[:k.n]
	fields := md.Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.JSONName() == string(name) {
			return fd
		}
	}
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.TextName() == string(name) {
			return fd
		}
	}
	return nil
}

// jsonMessage walks a JSON object that decodes as message type md (or
// null).
func (s *listScan) jsonMessage(md protoreflect.MessageDescriptor, sc *scope, depth int) error {
	if depth > maxScanDepth {
		return errTooDeep
	}
	j := &s.json
	switch j.peek() {
	case 'n':
		return j.skip()
	case '{':
		j.pos++
	default:
		return errMalformedJSON
	}
	if j.peek() == '}' {
		j.pos++
		return nil
	}
	for {
		var k key
		if _, _, err := j.str(&k); err != nil {
			return err
		}
		if j.next() != ':' {
			return errMalformedJSON
		}
		if err := s.jsonValue(k.field(md), md, sc, depth); err != nil {
			return err
		}
		switch j.next() {
		case ',':
		case '}':
			return nil
		default:
			return errMalformedJSON
		}
	}
}

// jsonValue walks the value of field fd of md (nil: unknown, skipped).
func (s *listScan) jsonValue(fd protoreflect.FieldDescriptor, md protoreflect.MessageDescriptor, sc *scope, depth int) error {
	j := &s.json
	if fd == nil || fd.IsMap() {
		return j.skip()
	}
	m := fd.Message()
	if !fd.IsList() {
		switch {
		case m == nil:
			return j.skip()
		case m.FullName() == "google.protobuf.FieldMask":
			n, err := j.maskPaths()
			if err != nil || n == 0 {
				return err
			}
			paths := m.Fields().ByName("paths")
			return s.add(sc, m, paths, n)
		case wellKnown(m):
			return j.skip() // a string or a scalar in JSON
		}
		return s.jsonMessage(m, sc, depth+1)
	}
	switch j.peek() {
	case 'n':
		return j.skip() // null: an empty list
	case '[':
		j.pos++
	default:
		return errMalformedJSON
	}
	if j.peek() == ']' {
		j.pos++
		return nil
	}
	for {
		if err := s.add(sc, md, fd, 1); err != nil {
			return err
		}
		var err error
		if m != nil && !wellKnown(m) {
			err = s.jsonMessage(m, s.elem(depth+1), depth+1)
		} else {
			err = j.skip()
		}
		if err != nil {
			return err
		}
		switch j.next() {
		case ',':
		case ']':
			return nil
		default:
			return errMalformedJSON
		}
	}
}

// maskPaths reads a field mask, which JSON writes as one string of
// comma-separated paths, and returns how many paths it has.
func (j *jsonScanner) maskPaths() (int, error) {
	if j.peek() != '"' {
		return 0, j.skip() // null, or refused by the decoder
	}
	chars, commas, err := j.str(nil)
	if err != nil || chars == 0 {
		return 0, err
	}
	return commas + 1, nil
}

// wellKnown reports whether md is a well-known type with its own JSON form
// (a string or a scalar, never a list Spool's requests use).
func wellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile() != nil && md.ParentFile().Package() == "google.protobuf"
}

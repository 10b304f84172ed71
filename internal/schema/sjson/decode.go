package sjson

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Bounds on JSON values read from schemas and payloads, beyond the nesting
// depth the caller gives.
const (
	// maxNumberLen bounds a number's text: the validator converts numbers
	// to exact rationals, whose cost grows with their digits.
	maxNumberLen = 1024
	// maxExponent bounds a number's exponent for the same reason: 1e999999
	// is short text but a huge rational.
	maxExponent = 1000
)

// decoder reads one JSON value into the representation the validator
// takes: map[string]any, []any, string, json.Number, bool and nil.
// It recurses at most maxDepth levels, so no input can exhaust the stack,
// and it never sizes an allocation from the input: slices and maps grow
// with the elements actually read.
type decoder struct {
	s        string
	i        int
	depth    int
	maxDepth int
}

// decodeJSON reads exactly one JSON value from s, with arrays and objects
// nested at most maxDepth deep, and rejects anything after it but
// whitespace. Objects with a repeated key are rejected: readers disagree on
// which occurrence wins, so accepting them would let a payload mean
// different things to the validator and to a consumer.
func decodeJSON(s string, maxDepth int) (any, error) {
	d := decoder{s: s, maxDepth: maxDepth}
	d.skipSpace()
	if d.i == len(d.s) {
		return nil, fmt.Errorf("empty JSON document")
	}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.i < len(d.s) {
		return nil, d.errorf("data after the JSON value")
	}
	return v, nil
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON at offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) skipSpace() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	if d.i >= len(d.s) {
		return nil, d.errorf("unexpected end of input, expected a value")
	}
	switch c := d.s[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	default:
		return nil, d.errorf("unexpected character %q, expected a value", c)
	}
}

func (d *decoder) literal(word string) error {
	if len(d.s)-d.i < len(word) || d.s[d.i:d.i+len(word)] != word {
		return d.errorf("invalid literal, expected %s", word)
	}
	d.i += len(word)
	return nil
}

// enter accounts for one more level of nesting.
func (d *decoder) enter() error {
	d.depth++
	if d.depth > d.maxDepth {
		return d.errorf("nested deeper than %d arrays and objects", d.maxDepth)
	}
	return nil
}

func (d *decoder) object() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.i++ // '{'
	m := map[string]any{}
	d.skipSpace()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		d.depth--
		return m, nil
	}
	for {
		d.skipSpace()
		if d.i >= len(d.s) || d.s[d.i] != '"' {
			return nil, d.errorf("expected a string as object key")
		}
		at := d.i
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			d.i = at
			return nil, d.errorf("object key %q repeated", k)
		}
		d.skipSpace()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return nil, d.errorf("expected ':' after object key")
		}
		d.i++
		d.skipSpace()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		d.skipSpace()
		if d.i >= len(d.s) {
			return nil, d.errorf("unexpected end of input in object")
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return m, nil
		default:
			return nil, d.errorf("expected ',' or '}' in object")
		}
	}
}

func (d *decoder) array() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.i++ // '['
	a := []any{}
	d.skipSpace()
	if d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
		d.depth--
		return a, nil
	}
	for {
		d.skipSpace()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.skipSpace()
		if d.i >= len(d.s) {
			return nil, d.errorf("unexpected end of input in array")
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			d.depth--
			return a, nil
		default:
			return nil, d.errorf("expected ',' or ']' in array")
		}
	}
}

// str reads a string. One without escapes is a substring of the input, so
// it costs no allocation when the input is already a string.
func (d *decoder) str() (string, error) {
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.s); j++ {
		switch c := d.s[j]; {
		case c == '"':
			s := d.s[start:j]
			if !ascii && !utf8.ValidString(s) {
				return "", d.errorf("string is not valid UTF-8")
			}
			d.i = j + 1
			return s, nil
		case c == '\\':
			return d.escapedStr(start, j)
		case c < 0x20:
			d.i = j
			return "", d.errorf("control character %#x in string", c)
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	d.i = len(d.s)
	return "", d.errorf("unexpected end of input in string")
}

// escapedStr reads the rest of a string from its first escape at j.
func (d *decoder) escapedStr(start, j int) (string, error) {
	b := make([]byte, 0, j-start+16)
	b = append(b, d.s[start:j]...)
	for j < len(d.s) {
		c := d.s[j]
		switch {
		case c == '"':
			if !utf8.Valid(b) {
				return "", d.errorf("string is not valid UTF-8")
			}
			d.i = j + 1
			return string(b), nil
		case c < 0x20:
			d.i = j
			return "", d.errorf("control character %#x in string", c)
		case c != '\\':
			b = append(b, c)
			j++
			continue
		}
		if j+1 >= len(d.s) {
			break
		}
		switch e := d.s[j+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, n, err := d.unicodeEscape(j)
			if err != nil {
				return "", err
			}
			b = utf8.AppendRune(b, r)
			j += n
			continue
		default:
			d.i = j
			return "", d.errorf("invalid escape \\%c in string", e)
		}
		j += 2
	}
	d.i = len(d.s)
	return "", d.errorf("unexpected end of input in string")
}

// unicodeEscape reads \uXXXX at j, with the low half of a surrogate pair
// when one follows. A lone surrogate becomes U+FFFD, as encoding/json does.
func (d *decoder) unicodeEscape(j int) (rune, int, error) {
	r, ok := hex4(d.s, j+2)
	if !ok {
		d.i = j
		return 0, 0, d.errorf("invalid \\u escape in string")
	}
	if !utf16.IsSurrogate(r) {
		return r, 6, nil
	}
	if j+12 <= len(d.s) && d.s[j+6] == '\\' && d.s[j+7] == 'u' {
		if r2, ok := hex4(d.s, j+8); ok {
			if p := utf16.DecodeRune(r, r2); p != utf8.RuneError {
				return p, 12, nil
			}
		}
	}
	return utf8.RuneError, 6, nil
}

func hex4(s string, at int) (rune, bool) {
	if at+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[at : at+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number as json.Number, keeping its exact text.
func (d *decoder) number() (any, error) {
	start := d.i
	end, err := scanNumber(d.s, start)
	if err != nil {
		d.i = start
		return nil, d.errorf("%v", err)
	}
	d.i = end
	return json.Number(d.s[start:end]), nil
}

// scanNumber checks the JSON number grammar and the bounds on a number's
// length and exponent, returning where the number ends.
func scanNumber(s string, i int) (int, error) {
	start := i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digits(s, i)
	default:
		return 0, fmt.Errorf("invalid number")
	}
	if i < len(s) && s[i] == '.' {
		j := digits(s, i+1)
		if j == i+1 {
			return 0, fmt.Errorf("invalid number: no digits after '.'")
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return 0, fmt.Errorf("invalid number: no digits in exponent")
		}
		if e, err := strconv.Atoi(s[i:j]); err != nil || e > maxExponent {
			return 0, fmt.Errorf("number's exponent is beyond ±%d", maxExponent)
		}
		i = j
	}
	if i-start > maxNumberLen {
		return 0, fmt.Errorf("number longer than %d characters", maxNumberLen)
	}
	return i, nil
}

func digits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

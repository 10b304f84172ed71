package savro

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Canonical returns the schema's canonical form: compact JSON with every
// name in full, attributes in a fixed order, aliases sorted and redundant
// spellings ("string" for {"type":"string"}, an explicit ascending order,
// a zero decimal scale) reduced to one. Unlike Avro's Parsing Canonical
// Form it keeps what tells two schemas apart: defaults, aliases, field
// order, logical types, doc and custom properties. Types that a reference
// defines are named, not defined again, so the form depends on the
// references only by name.
func (s *Schema) Canonical() string { return s.canonical }

// emitter writes the canonical form; defined holds the named types
// already written, which later occurrences name instead.
type emitter struct {
	buf     []byte
	defined map[*node]bool
}

func canonical(root *node) string {
	e := &emitter{defined: map[*node]bool{}}
	e.node(root, "")
	return string(e.buf)
}

// node writes n in a scope whose namespace is ns.
func (e *emitter) node(n *node, ns string) {
	switch n.kind {
	case kRecord, kEnum, kFixed:
		if e.defined[n] || n.fromDep {
			e.str(n.name)
			return
		}
		e.defined[n] = true
		e.named(n, ns)
	case kUnion:
		e.buf = append(e.buf, '[')
		for i, b := range n.branches {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.node(b, ns)
		}
		e.buf = append(e.buf, ']')
	case kArray:
		e.open(n.kind.String())
		e.key("items")
		e.node(n.items, ns)
		e.attrs(n)
	case kMap:
		e.open(n.kind.String())
		e.key("values")
		e.node(n.values, ns)
		e.attrs(n)
	default:
		if n.logical == "" && n.doc == "" && len(n.props) == 0 {
			e.str(n.kind.String())
			return
		}
		e.open(n.kind.String())
		e.attrs(n)
	}
}

// named writes the definition of a record, enum or fixed.
func (e *emitter) named(n *node, ns string) {
	typ := n.kind.String()
	if n.isError {
		typ = "error"
	}
	e.open(typ)
	e.key("name")
	e.str(n.name)
	own := namespaceOf(n.name)
	if own == "" && ns != "" {
		// Without it the name would read as one in the enclosing
		// namespace.
		e.key("namespace")
		e.str("")
	}
	e.strs("aliases", sorted(n.aliases))
	switch n.kind {
	case kRecord:
		e.key("fields")
		e.buf = append(e.buf, '[')
		for i := range n.fields {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.field(&n.fields[i], own)
		}
		e.buf = append(e.buf, ']')
	case kEnum:
		e.strs("symbols", n.symbols)
		if n.symbols == nil {
			e.key("symbols")
			e.buf = append(e.buf, "[]"...)
		}
		if n.hasDef {
			e.key("default")
			e.str(n.enumDef)
		}
	case kFixed:
		e.key("size")
		e.buf = strconv.AppendInt(e.buf, int64(n.size), 10)
	}
	e.attrs(n)
}

func (e *emitter) field(f *field, ns string) {
	e.buf = append(e.buf, `{"name":`...)
	e.str(f.name)
	e.strs("aliases", sorted(f.aliases))
	e.key("type")
	e.node(f.typ, ns)
	if f.hasDef {
		e.key("default")
		e.buf = appendValue(e.buf, f.def)
	}
	if f.order != "" && f.order != "ascending" {
		e.key("order")
		e.str(f.order)
	}
	e.doc(f.doc)
	e.props(f.props)
	e.buf = append(e.buf, '}')
}

// open starts an object with its type.
func (e *emitter) open(typ string) {
	e.buf = append(e.buf, `{"type":`...)
	e.str(typ)
}

// attrs writes the attributes that follow a type's own and closes it.
func (e *emitter) attrs(n *node) {
	if n.logical != "" {
		e.key("logicalType")
		e.str(n.logical)
		if n.logical == "decimal" && (n.kind == kBytes || n.kind == kFixed) {
			e.key("precision")
			e.buf = strconv.AppendInt(e.buf, int64(n.precision), 10)
			if n.scale != 0 {
				e.key("scale")
				e.buf = strconv.AppendInt(e.buf, int64(n.scale), 10)
			}
		}
	}
	e.doc(n.doc)
	e.props(n.props)
	e.buf = append(e.buf, '}')
}

func (e *emitter) doc(doc string) {
	if doc != "" {
		e.key("doc")
		e.str(doc)
	}
}

// props writes custom properties in key order.
func (e *emitter) props(props map[string]any) {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.key(k)
		e.buf = appendValue(e.buf, props[k])
	}
}

func (e *emitter) key(k string) {
	e.buf = append(e.buf, ',')
	e.str(k)
	e.buf = append(e.buf, ':')
}

func (e *emitter) str(s string) { e.buf = appendString(e.buf, s) }

// strs writes a list attribute, if not empty.
func (e *emitter) strs(key string, list []string) {
	if len(list) == 0 {
		return
	}
	e.key(key)
	e.buf = append(e.buf, '[')
	for i, s := range list {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.str(s)
	}
	e.buf = append(e.buf, ']')
}

func sorted(list []string) []string {
	if len(list) < 2 {
		return list
	}
	return slices.Sorted(slices.Values(list))
}

// appendValue writes a default or property value as JSON. Numbers are
// written from their parsed values, so 1, 1.0 and 1e0 are written alike
// for a double; objects are written in key order.
func appendValue(buf []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(buf, "null"...)
	case bool:
		return strconv.AppendBool(buf, v)
	case int32:
		return strconv.AppendInt(buf, int64(v), 10)
	case int64:
		return strconv.AppendInt(buf, v, 10)
	case int:
		return strconv.AppendInt(buf, int64(v), 10)
	case float32:
		return appendFloat(buf, float64(v), 32)
	case float64:
		return appendFloat(buf, v, 64)
	case json.Number:
		return append(buf, v...)
	case string:
		return appendString(buf, v)
	case []byte:
		// Avro's JSON form of bytes: one code point per byte.
		rs := make([]rune, len(v))
		for i, b := range v {
			rs[i] = rune(b)
		}
		return appendString(buf, string(rs))
	case []any:
		buf = append(buf, '[')
		for i, x := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendValue(buf, x)
		}
		return append(buf, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, k)
			buf = append(buf, ':')
			buf = appendValue(buf, v[k])
		}
		return append(buf, '}')
	}
	return appendString(buf, fmt.Sprint(v))
}

// appendFloat writes a float as JSON, and the non-finite values as the
// strings Avro's JSON encoding uses for them.
func appendFloat(buf []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(buf, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(buf, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(buf, `"-Infinity"`...)
	}
	return strconv.AppendFloat(buf, f, 'g', -1, bits)
}

// appendString writes s as a JSON string, escaping only what JSON
// requires, so that the form is the same whatever escapes the input used.
func appendString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c < 0x20:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			buf = append(buf, c)
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, `\ufffd`...)
			} else {
				buf = append(buf, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return append(buf, '"')
}

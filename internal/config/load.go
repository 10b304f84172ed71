package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load decodes the YAML document data into dst, a non-nil pointer to a
// config struct, strictly. name is the file name used in messages.
//
// Keys absent from data leave dst's fields as they were, so callers fill
// dst with defaults first. A key whose value is null (written "key:" or
// "key: ~") counts as absent, which lets a section have all its keys
// commented out. An empty document, or one of only comments or null, is
// valid and changes nothing. A list replaces the field's whole list; an
// empty list ([]) sets it to nil.
//
// Unknown keys, duplicate keys, values of the wrong type (a string field
// must be given a string: quote 8080 to use it as one), out-of-range
// numbers, bad durations and sizes, a document that is not a mapping,
// more than one document, YAML merge keys (<<) and unknown tags are
// errors. Load reports all of them at once, as an *Errors in line order,
// each with its line, column and key path; on any error dst is left
// unchanged. A YAML syntax error stops parsing, so it comes alone, with a
// line but no column (and no line at all for a few parser messages). Anchors
// and aliases are followed.
//
// Load returns a plain error beginning "config: " when dst is not a
// pointer to a struct or has a field of an unsupported type.
func Load(name string, data []byte, dst any) error {
	v, si, err := structTarget("Load", dst)
	if err != nil {
		return err
	}
	d := &decoder{file: name, root: si}
	root := d.parse(data)
	// Decode into a copy, so that dst is untouched unless all is well.
	// Lists are built anew, never appended to, so the shallow copy
	// shares nothing that decoding writes to.
	tmp := reflect.New(v.Type()).Elem()
	tmp.Set(v)
	if root != nil {
		d.document(root, tmp, si)
	}
	if len(d.errs) > 0 {
		// The walk checks a second document first and follows aliases
		// back to their anchors; list the errors in line order.
		slices.SortStableFunc(d.errs, func(a, b *Error) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
		})
		return &Errors{List: d.errs}
	}
	v.Set(tmp)
	return nil
}

// decoder walks a parsed document, collecting every problem.
type decoder struct {
	file string
	root *structInfo // the keys of the whole document
	errs []*Error
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Column: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the messages of the YAML library's parser stage,
// whose line numbers it reports counting from 0; those of its scanner
// stage count from 1.
var yamlParserProblems = []string{
	"did not find expected",
	"found duplicate %",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// syntaxError records an error from the YAML parser, which gives a line
// (that of the problem, or of the start of the construct it is in) but no
// column, and for a few problems no line either.
func (d *decoder) syntaxError(err error) {
	msg := err.Error()
	e := &Error{File: d.file}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
		for _, p := range yamlParserProblems {
			if strings.HasPrefix(msg, p) {
				e.Line++
				break
			}
		}
	}
	e.Msg = "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")
	d.errs = append(d.errs, e)
}

// parse returns the top node of data's one document, or nil if there is
// none or it does not parse.
func (d *decoder) parse(data []byte) (root *yaml.Node) {
	defer func() {
		// The parser is not ours; a panic in it must not take Spool
		// down with a bad config file.
		if r := recover(); r != nil {
			d.errs = append(d.errs, &Error{File: d.file, Msg: fmt.Sprintf("invalid YAML: parser failed: %v", r)})
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntaxError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(err)
		return nil
	default:
		if n := docContent(&extra); n != nil && !isNull(n) {
			d.errorf(n, "", "a config file holds one YAML document, and this is a second")
		}
	}
	return docContent(&doc)
}

// docContent returns the content of a document node, or nil.
func docContent(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		return doc.Content[0]
	}
	return nil
}

// isMapping reports whether n is a mapping with no tag but the default.
func isMapping(n *yaml.Node) bool {
	return n.Kind == yaml.MappingNode && n.ShortTag() == "!!map"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == tagNull
}

// deref follows aliases to the node they name. It returns nil, after
// recording an error, for an alias that names nothing.
func (d *decoder) deref(n *yaml.Node, path string) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode; i++ {
		if n.Alias == nil || i > 100 {
			d.errorf(n, path, "alias %s names no value", quoteShort(n.Value))
			return nil
		}
		n = n.Alias
	}
	return n
}

func (d *decoder) document(root *yaml.Node, v reflect.Value, si *structInfo) {
	root = d.deref(root, "")
	switch {
	case root == nil, isNull(root):
	case isMapping(root):
		d.mapping(root, v, si, "")
	default:
		d.errorf(root, "", "the top level must be a mapping of keys to values, not %s", describe(root))
	}
}

// mapping decodes mapping node n into struct v.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, si *structInfo, path string) {
	seen := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.deref(n.Content[i], path)
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be strings, not %s", describe(k))
			continue
		}
		if k.ShortTag() == tagMerge {
			d.errorf(k, path, "YAML merge keys (<<) are not supported: write the keys out")
			continue
		}
		name := k.Value
		p := joinPath(path, name)
		if first, dup := seen[name]; dup {
			d.errorf(k, p, "duplicate key (first set on line %d)", first.Line)
			continue
		}
		seen[name] = k
		f := si.byName[name]
		if f == nil {
			d.errorf(k, p, "unknown key%s", d.hint(si, path, name))
			continue
		}
		d.value(n.Content[i+1], v.Field(f.index), f, p)
	}
}

// hint suggests a known key for an unknown one: a sibling that differs by a
// typo, or else, when the name is that of a key in exactly one other
// section, that key.
func (d *decoder) hint(si *structInfo, path, name string) string {
	if s := suggest(name, si.names()); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", joinPath(path, s))
	}
	var found []string
	d.root.walk("", func(p string, f *field) {
		if f.name == name {
			found = append(found, p)
		}
	})
	if len(found) == 1 {
		return fmt.Sprintf(" (did you mean %q?)", found[0])
	}
	return ""
}

// value decodes node n into field v, whose key path is path. A problem
// with the value as a whole is reported where it is used, which for an
// alias is the alias rather than its anchor.
func (d *decoder) value(n *yaml.Node, v reflect.Value, f *field, path string) {
	at := n
	n = d.deref(n, path)
	if n == nil || isNull(n) {
		return
	}
	switch f.kind {
	case kindStruct:
		if !isMapping(n) {
			d.errorf(at, path, "expected a mapping of keys, got %s", describe(n))
			return
		}
		d.mapping(n, v, f.sub, path)
	case kindStrings:
		if n.Kind != yaml.SequenceNode || n.ShortTag() != "!!seq" {
			d.errorf(at, path, "expected a list of strings, got %s", describe(n))
			return
		}
		list := reflect.MakeSlice(f.typ, len(n.Content), len(n.Content))
		ok := true
		for i, itemAt := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			item := d.deref(itemAt, p)
			switch {
			case item == nil:
				ok = false
			case item.Kind != yaml.ScalarNode || valueTag(item) != tagStr:
				d.errorf(itemAt, p, "expected a string, got %s", describe(item))
				ok = false
			default:
				list.Index(i).SetString(item.Value)
			}
		}
		if ok {
			if list.Len() == 0 {
				list = reflect.Zero(f.typ)
			}
			v.Set(list)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			d.errorf(at, path, "expected %s, got %s", expected(f.kind), describe(n))
			return
		}
		if err := setText(v, f.kind, n.Value, valueTag(n)); err != nil {
			d.errorf(at, path, "%v", err)
		}
	}
}

// valueTag returns the tag of scalar n, a value rather than a key. The
// YAML library tags a plain << as a merge key wherever it is, but only a
// key can be one: a value << is a string.
func valueTag(n *yaml.Node) string {
	if t := n.ShortTag(); t != tagMerge {
		return t
	}
	return tagStr
}

// expected names what a scalar field wants, for messages.
func expected(k kind) string {
	switch k {
	case kindString:
		return "a string"
	case kindBool:
		return "true or false"
	case kindInt, kindUint:
		return "an integer"
	case kindFloat:
		return "a number"
	case kindDuration:
		return "a duration such as \"30s\""
	case kindSize:
		return "a size such as \"64MiB\""
	}
	return "a single value"
}

// describe names a node for messages: `a list`, `integer 8080`.
func describe(n *yaml.Node) string {
	var what, tag string
	switch n.Kind {
	case yaml.MappingNode:
		what, tag = "a mapping", "!!map"
	case yaml.SequenceNode:
		what, tag = "a list", "!!seq"
	case yaml.ScalarNode:
		return describeScalar(n.ShortTag(), n.Value)
	default:
		return "an unexpected YAML node"
	}
	if t := n.ShortTag(); t != tag {
		what += " tagged " + plainShort(t)
	}
	return what
}

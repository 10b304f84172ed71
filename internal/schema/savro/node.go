package savro

import (
	"fmt"
	"strings"

	"github.com/twmb/avro"
)

// kind is an Avro type, as a small integer so that the payload walk
// switches on it cheaply.
type kind uint8

const (
	kNull kind = iota
	kBoolean
	kInt
	kLong
	kFloat
	kDouble
	kBytes
	kString
	kRecord
	kEnum
	kArray
	kMap
	kUnion
	kFixed
)

var kindNames = [...]string{
	kNull: "null", kBoolean: "boolean", kInt: "int", kLong: "long",
	kFloat: "float", kDouble: "double", kBytes: "bytes", kString: "string",
	kRecord: "record", kEnum: "enum", kArray: "array", kMap: "map",
	kUnion: "union", kFixed: "fixed",
}

func (k kind) String() string { return kindNames[k] }

var primitiveKinds = map[string]kind{
	"null": kNull, "boolean": kBoolean, "int": kInt, "long": kLong,
	"float": kFloat, "double": kDouble, "bytes": kBytes, "string": kString,
}

// node is one type of a parsed schema. Named types appear once and every
// reference to them points at that one node, so the graph of a recursive
// schema has cycles.
type node struct {
	kind kind

	// Named types (record, enum, fixed).
	name        string   // full name
	aliases     []string // full names
	bareAliases []string // aliases written without a namespace
	isError     bool     // a record declared as "error"

	fields   []field
	items    *node // array
	values   *node // map
	branches []*node
	symbols  []string
	enumDef  string
	hasDef   bool // enum default present
	size     int  // fixed

	logical   string
	precision int
	scale     int
	doc       string
	props     map[string]any

	// minSize is the fewest bytes a value of this type encodes to. A type
	// with minSize 0 always encodes to nothing (null, fixed(0), records of
	// such), which bounds array and map counts by the bytes left.
	minSize int
	// fromDep is set on types that a reference (a dep) defines: the
	// canonical form names them rather than defining them again.
	fromDep bool
}

// field is a record field.
type field struct {
	name    string
	aliases []string
	typ     *node
	def     any
	hasDef  bool
	order   string
	doc     string
	props   map[string]any
}

// builder turns the library's schema tree into nodes, resolving names.
type builder struct {
	named    map[string]*node
	depNames map[string]bool // full names that the deps define
}

// fullName joins a name and namespace as Avro does: a dotted name is
// already full.
func fullName(name, namespace string) string {
	if strings.Contains(name, ".") || namespace == "" {
		return name
	}
	return namespace + "." + name
}

func namespaceOf(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i]
	}
	return ""
}

func shortName(full string) string {
	return full[strings.LastIndexByte(full, '.')+1:]
}

// build converts n, found at path in a scope with namespace ns, at
// nesting depth d.
func (b *builder) build(n *avro.SchemaNode, ns, path string, d int) (*node, error) {
	if d > maxDepth {
		return nil, fmt.Errorf("at %s: types nest deeper than %d levels", pathOrRoot(path), maxDepth)
	}
	if k, ok := primitiveKinds[n.Type]; ok {
		return &node{kind: k, logical: n.LogicalType, precision: n.Precision,
			scale: n.Scale, doc: n.Doc, props: n.Props, minSize: primitiveMinSize(k)}, nil
	}
	switch n.Type {
	case "record", "error", "enum", "fixed":
		return b.buildNamed(n, path, d)
	case "array":
		if n.Items == nil {
			return nil, fmt.Errorf("at %s: array without items", pathOrRoot(path))
		}
		items, err := b.build(n.Items, ns, path+"/items", d+1)
		if err != nil {
			return nil, err
		}
		return &node{kind: kArray, items: items, logical: n.LogicalType, doc: n.Doc, props: n.Props, minSize: 1}, nil
	case "map":
		if n.Values == nil {
			return nil, fmt.Errorf("at %s: map without values", pathOrRoot(path))
		}
		values, err := b.build(n.Values, ns, path+"/values", d+1)
		if err != nil {
			return nil, err
		}
		return &node{kind: kMap, values: values, logical: n.LogicalType, doc: n.Doc, props: n.Props, minSize: 1}, nil
	case "union":
		u := &node{kind: kUnion, minSize: 1}
		for i := range n.Branches {
			br, err := b.build(&n.Branches[i], ns, fmt.Sprintf("%s/branches/%d", path, i), d+1)
			if err != nil {
				return nil, err
			}
			u.branches = append(u.branches, br)
		}
		return u, nil
	}
	return b.reference(n.Type, ns, path)
}

// reference resolves a named type's reference the way Avro does: a short
// name is first looked up in the enclosing namespace.
func (b *builder) reference(name, ns, path string) (*node, error) {
	if t, ok := b.named[fullName(name, ns)]; ok {
		return t, nil
	}
	if t, ok := b.named[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("at %s: unknown type %q", pathOrRoot(path), name)
}

func (b *builder) buildNamed(n *avro.SchemaNode, path string, d int) (*node, error) {
	full := fullName(n.Name, n.Namespace)
	ns := namespaceOf(full)
	t := &node{name: full, logical: n.LogicalType, precision: n.Precision,
		scale: n.Scale, doc: n.Doc, props: n.Props, fromDep: b.depNames[full]}
	for _, a := range n.Aliases {
		t.aliases = append(t.aliases, fullName(a, ns))
		if !strings.Contains(a, ".") {
			t.bareAliases = append(t.bareAliases, a)
		}
	}
	// Registered before the fields are built, so that a record may refer
	// to itself.
	b.named[full] = t
	switch n.Type {
	case "enum":
		t.kind, t.symbols, t.minSize = kEnum, n.Symbols, 1
		t.enumDef, t.hasDef = n.EnumDefault, n.HasEnumDefault
		return t, nil
	case "fixed":
		t.kind, t.size, t.minSize = kFixed, n.Size, n.Size
		return t, nil
	}
	t.kind, t.isError = kRecord, n.Type == "error"
	t.fields = make([]field, len(n.Fields))
	for i := range n.Fields {
		f := &n.Fields[i]
		ft, err := b.build(&f.Type, ns, path+"/fields/"+f.Name, d+1)
		if err != nil {
			return nil, err
		}
		t.fields[i] = field{name: f.Name, aliases: f.Aliases, typ: ft, def: f.Default,
			hasDef: f.HasDefault, order: f.Order, doc: f.Doc, props: f.Props}
		t.minSize = addSize(t.minSize, ft.minSize)
	}
	return t, nil
}

// addSize adds encoded sizes, saturating far above any payload length so
// that a schema of huge fixed types cannot overflow it.
func addSize(a, b int) int {
	const ceiling = 1 << 40
	return min(a+min(b, ceiling), ceiling)
}

func primitiveMinSize(k kind) int {
	switch k {
	case kNull:
		return 0
	case kFloat:
		return 4
	case kDouble:
		return 8
	}
	return 1
}

func pathOrRoot(path string) string {
	if path == "" {
		return "/"
	}
	return path
}

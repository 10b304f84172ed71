package sjson

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spoolmq/spool/internal/schema"
)

// Bounds on one Check, so that schemas whose combinators multiply the
// cases to compare still give an answer, if a conservative one.
const (
	// maxCheckDepth bounds the nesting of comparisons: subschemas,
	// followed references and writer branches.
	maxCheckDepth = 4 * schema.MaxDepth
	// maxCheckSteps bounds the comparisons one Check makes.
	maxCheckSteps = 20_000
)

const limitRule = "CHECK_LIMIT_EXCEEDED"

// node is a subschema within its document. ptr is its JSON pointer in the
// document, which with the document's URL identifies it.
type node struct {
	v   any
	doc *document
	ptr string
}

func (n node) obj() map[string]any {
	m, _ := n.v.(map[string]any)
	return m
}

func (n node) loc() string { return n.doc.url + "#" + n.ptr }

func (n node) child(keys ...string) node {
	c := n
	for _, k := range keys {
		switch v := c.v.(type) {
		case map[string]any:
			c.v = v[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(v) {
				c.v = nil
			} else {
				c.v = v[i]
			}
		default:
			c.v = nil
		}
		c.ptr += "/" + escapePointer(k)
	}
	return c
}

// has reports whether the node has keyword k.
func (n node) has(k string) bool {
	_, ok := n.obj()[k]
	return ok
}

// isFalse reports whether the node accepts nothing.
func (n node) isFalse() bool { return n.v == false }

// isOpen reports whether the node accepts everything: true, or an object
// with no keyword that validates.
func (n node) isOpen() bool {
	if n.v == true {
		return true
	}
	m, ok := n.v.(map[string]any)
	if !ok {
		return false
	}
	for k := range m {
		if validating[k] {
			return false
		}
	}
	return true
}

// validating lists the keywords that constrain instances; every other
// keyword is an annotation, an identifier or unknown, and the validator
// ignores it.
var validating = map[string]bool{
	"type": true, "enum": true, "const": true, "format": true, "$ref": true,
	"$recursiveRef": true, "$dynamicRef": true,
	"maxLength": true, "minLength": true, "pattern": true,
	"maximum": true, "minimum": true, "exclusiveMaximum": true, "exclusiveMinimum": true, "multipleOf": true,
	"items": true, "additionalItems": true, "prefixItems": true, "maxItems": true, "minItems": true,
	"uniqueItems": true, "contains": true, "minContains": true, "maxContains": true, "unevaluatedItems": true,
	"properties": true, "patternProperties": true, "additionalProperties": true, "required": true,
	"maxProperties": true, "minProperties": true, "propertyNames": true, "dependencies": true,
	"dependentRequired": true, "dependentSchemas": true, "unevaluatedProperties": true,
	"allOf": true, "anyOf": true, "oneOf": true, "not": true, "if": true, "then": true, "else": true,
}

// view is the writer's schema as a conjunction of nodes: a node and the
// subschemas its allOf, $ref and chosen oneOf/anyOf branches add. Its
// keywords are looked up in the first node that has their group: taking
// some of the conjuncts' constraints describes a superset of what the
// writer writes, which keeps the checks sound.
type view []node

// groups ties keywords that only mean something together, so that a view
// never mixes them from different nodes ("additionalProperties": false
// means something else without its "properties").
var groups = map[string]string{
	"properties": "object", "patternProperties": "object", "additionalProperties": "object",
	"items": "array", "additionalItems": "array", "prefixItems": "array",
	"maximum": "max", "exclusiveMaximum": "max",
	"minimum": "min", "exclusiveMinimum": "min",
	"contains": "contains", "minContains": "contains", "maxContains": "contains",
	"if": "if", "then": "if", "else": "if",
	"enum": "enum", "const": "enum",
}

// part returns the node of v that holds keyword k's group, or a node
// without it.
func (v view) part(k string) node {
	g, grouped := groups[k]
	for _, n := range v {
		m := n.obj()
		if !grouped {
			if _, ok := m[k]; ok {
				return n
			}
			continue
		}
		for kk := range m {
			if groups[kk] == g {
				return n
			}
		}
	}
	return node{v: map[string]any{}, doc: v[0].doc, ptr: v[0].ptr}
}

func (v view) key() string {
	var b strings.Builder
	for _, n := range v {
		b.WriteString(n.loc())
		b.WriteByte('&')
	}
	return b.String()
}

// checker compares a reader schema with a writer schema.
type checker struct {
	issues []schema.Issue
	active map[string]bool // comparisons under way, for recursive schemas
	steps  int
	capped bool // the limits were reached
}

// Check returns the issues that stop a reader using s from reading data
// written with writer, sorted by path, rule and message.
func (s *jsonSchema) Check(writer schema.Schema) []schema.Issue {
	w, ok := writer.(*jsonSchema)
	if !ok {
		return []schema.Issue{{Rule: "TYPE_CHANGED", Path: "#", Message: "the writer's schema is not a JSON Schema"}}
	}
	c := &checker{active: map[string]bool{}}
	r0, w0 := s.set.docs[0], w.set.docs[0]
	c.check("#", node{v: r0.norm, doc: r0}, view{{v: w0.norm, doc: w0}}, 0)
	if c.capped {
		c.issues = slices.DeleteFunc(c.issues, func(is schema.Issue) bool { return is.Rule == limitRule })
		c.add(limitRule, "#", "the schemas are too deep or combine too many alternatives to compare (more than %d levels or %d comparisons); treated as incompatible", maxCheckDepth, maxCheckSteps)
	}
	return sortIssues(c.issues)
}

func sortIssues(issues []schema.Issue) []schema.Issue {
	slices.SortFunc(issues, func(a, b schema.Issue) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Rule, b.Rule), strings.Compare(a.Message, b.Message))
	})
	return slices.Compact(issues)
}

func (c *checker) add(rule, path, format string, args ...any) {
	c.issues = append(c.issues, schema.Issue{Rule: rule, Path: path, Message: fmt.Sprintf(format, args...)})
}

// try runs f and returns the issues it found instead of keeping them.
func (c *checker) try(f func()) []schema.Issue {
	n := len(c.issues)
	f()
	got := slices.Clone(c.issues[n:])
	c.issues = c.issues[:n]
	return got
}

// check compares reader r with writer w at path p, the reader's path.
func (c *checker) check(p string, r node, w view, depth int) {
	c.steps++
	if depth > maxCheckDepth || c.steps > maxCheckSteps {
		// Every comparison past the limit fails, so that no alternative
		// tried after it passes for compatible.
		c.capped = true
		c.add(limitRule, p, "limit reached")
		return
	}
	r, ok := c.deref(r)
	if !ok {
		c.unresolved(p, r, w)
		return
	}
	w, done := c.derefView(w)
	if done {
		return
	}
	key := r.loc() + "|" + w.key()
	if c.active[key] {
		return // a recursive schema: this comparison is already being made
	}
	c.active[key] = true
	defer delete(c.active, key)

	if i, alt, ok := splitSum(w); ok {
		// The writer writes any one of its branches: the reader must read
		// each of them.
		for j := range alt {
			branch := slices.Clone(w)
			branch[i] = alt[j][0]
			c.check(p, r, append(branch, alt[j][1:]...), depth+1)
		}
		return
	}
	if r.isOpen() {
		return
	}
	if r.isFalse() {
		c.add("TYPE_NARROWED", p, "the reader accepts nothing (schema false)")
		return
	}
	c.checkConjuncts(p, r, w, depth)
	wt := c.checkType(p, r, w)
	if wt == 0 {
		return
	}
	c.checkEnum(p, r, w)
	c.checkString(p, r, w, wt)
	c.checkNumber(p, r, w, wt)
	c.checkArray(p, r, w, wt, depth)
	c.checkObject(p, r, w, wt, depth)
	c.checkNot(p, r, w, depth)
	c.checkOther(p, r, w, wt)
}

// deref follows a node's "$ref" while the reference is all the node says:
// always before draft 2019-09 (where "$ref" makes the other keywords
// ignored), and from then on when it has no other validating keyword. ok
// is false when a reference does not resolve.
func (c *checker) deref(n node) (node, bool) {
	for range schema.MaxDepth {
		m := n.obj()
		ref, isRef := m["$ref"].(string)
		if !isRef {
			return n, true
		}
		if n.doc.draft >= 2019 && !onlyRef(m) {
			return n, true
		}
		t, ok := resolveRef(n, ref)
		if !ok {
			return n, false
		}
		n = t
	}
	return n, false // a chain of references that never reaches a schema
}

func onlyRef(m map[string]any) bool {
	for k := range m {
		if k != "$ref" && validating[k] {
			return false
		}
	}
	return true
}

// derefView dereferences the writer's nodes and expands their allOf and
// sibling $ref. done is true when the writer writes nothing (a false
// conjunct), so the reader has nothing to read.
func (c *checker) derefView(w view) (view, bool) {
	out := make(view, 0, len(w))
	for _, n := range w {
		d, ok := c.deref(n)
		if !ok {
			// A reference Check cannot follow: assume the writer
			// writes anything, which is sound.
			d = node{v: true, doc: n.doc, ptr: n.ptr}
		}
		if d.isFalse() {
			return nil, true
		}
		out = append(out, d)
	}
	return c.flatten(out), false
}

// flatten expands each node's allOf members and (from draft 2019-09) its
// "$ref" beside other keywords into further conjuncts of the view. The
// expanded node loses those keywords, so flattening again adds nothing.
func (c *checker) flatten(w view) view {
	out := slices.Clone(w)
	for i := 0; i < len(out) && i < 4*schema.MaxDepth; i++ {
		n := out[i]
		m := n.obj()
		list, hasAll := m["allOf"].([]any)
		ref, hasRef := m["$ref"].(string)
		hasRef = hasRef && n.doc.draft >= 2019
		if !hasAll && !hasRef {
			continue
		}
		for j := range list {
			if d, ok := c.deref(n.child("allOf", strconv.Itoa(j))); ok {
				out = append(out, d)
			}
		}
		if hasRef {
			if t, ok := resolveRef(n, ref); ok {
				if d, ok := c.deref(t); ok {
					out = append(out, d)
				}
			}
		}
		out[i] = without(n, "allOf", "$ref")
	}
	return out
}

// without returns a copy of n without keywords kws, with a location of
// its own.
func without(n node, kws ...string) node {
	m := n.obj()
	rest := make(map[string]any, len(m))
	for k, v := range m {
		if !slices.Contains(kws, k) {
			rest[k] = v
		}
	}
	return node{v: rest, doc: n.doc, ptr: n.ptr + "!" + strings.Join(kws, "!")}
}

// splitSum finds the first writer node with oneOf or anyOf and returns
// its index and, for each branch, that node without the keyword followed
// by the branch.
func splitSum(w view) (int, [][]node, bool) {
	for i, n := range w {
		m := n.obj()
		for _, kw := range []string{"oneOf", "anyOf"} {
			list, ok := m[kw].([]any)
			if !ok || len(list) == 0 {
				continue
			}
			base := without(n, kw)
			alt := make([][]node, len(list))
			for j := range list {
				alt[j] = []node{base, n.child(kw, strconv.Itoa(j))}
			}
			return i, alt, true
		}
	}
	return 0, nil, false
}

// checkConjuncts checks the reader's allOf members, "$ref" beside other
// keywords, and anyOf/oneOf, each of which the writer must satisfy.
func (c *checker) checkConjuncts(p string, r node, w view, depth int) {
	m := r.obj()
	if list, ok := m["allOf"].([]any); ok {
		for i := range list {
			ip := p + "/allOf/" + strconv.Itoa(i)
			got := c.try(func() { c.check(ip, r.child("allOf", strconv.Itoa(i)), w, depth+1) })
			if len(got) > 0 {
				c.add("PRODUCT_TYPE_EXTENDED", ip, "the reader's allOf subschema %d is not implied by the writer: %s", i, got[0])
			}
		}
	}
	if ref, ok := m["$ref"].(string); ok && r.doc.draft >= 2019 {
		if t, ok := resolveRef(r, ref); ok {
			c.check(p, t, w, depth+1)
		} else {
			c.unresolved(p, r, w)
		}
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if list, ok := m[kw].([]any); ok {
			c.checkSum(p+"/"+kw, r, kw, len(list), w, depth)
		}
	}
}

// checkSum requires one of the reader's branches to read all the writer
// writes. (oneOf's exclusivity is not checked: a value that two of the
// reader's branches accept is accepted by Check, as in Confluent.)
func (c *checker) checkSum(p string, r node, kw string, n int, w view, depth int) {
	var first []schema.Issue
	for i := range n {
		got := c.try(func() { c.check(p+"/"+strconv.Itoa(i), r.child(kw, strconv.Itoa(i)), w, depth+1) })
		if len(got) == 0 {
			return
		}
		if first == nil {
			first = got
		}
	}
	if first == nil {
		c.add("SUM_TYPE_NARROWED", p, "the reader's %s is empty", kw)
		return
	}
	c.add("SUM_TYPE_NARROWED", p, "none of the reader's %d %s subschemas reads all the writer writes (subschema 0: %s)", n, kw, first[0])
}

// unresolved handles a reader reference Check cannot follow ("$anchor"s,
// "$id"s within a document): unless the writer has the same reference in
// the same document, the change is reported, to stay conservative.
func (c *checker) unresolved(p string, r node, w view) {
	ref, _ := r.obj()["$ref"].(string)
	if len(w) == 1 && w[0].doc.url == r.doc.url && canonical(w[0].v) == canonical(r.v) {
		return
	}
	c.add("REFERENCE_NOT_CHECKED", p, "the reader's reference %q cannot be followed by the compatibility check, and the writer's schema differs here", ref)
}

// resolveRef resolves a reference from node n: a JSON pointer in n's
// document, or another document of the set (by URL or dep name) and a
// pointer in it. Anchors and "$id"s below a document's root are not
// followed.
func resolveRef(n node, ref string) (node, bool) {
	target, frag, _ := strings.Cut(ref, "#")
	doc := n.doc
	if target != "" {
		base, err := url.Parse(n.doc.url)
		if err != nil {
			return node{}, false
		}
		u, err := url.Parse(target)
		if err != nil {
			return node{}, false
		}
		if doc = n.doc.set.lookup(base.ResolveReference(u).String()); doc == nil {
			return node{}, false
		}
	}
	if frag != "" && !strings.HasPrefix(frag, "/") {
		return node{}, false
	}
	frag, err := url.PathUnescape(frag)
	if err != nil {
		return node{}, false
	}
	t := node{v: doc.norm, doc: doc}
	if frag == "" {
		return t, true
	}
	for _, tok := range strings.Split(frag[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		t = t.child(tok)
		if t.v == nil {
			return node{}, false
		}
	}
	return t, true
}

// Rules lists every rule Check reports, for documentation and tests.
var Rules = []string{
	"ADDITIONAL_ITEMS_NARROWED", "ADDITIONAL_ITEMS_REMOVED",
	"ADDITIONAL_PROPERTIES_NARROWED", "ADDITIONAL_PROPERTIES_REMOVED",
	"CHECK_LIMIT_EXCEEDED", "ENUM_ARRAY_NARROWED",
	"EXCLUSIVE_MAXIMUM_ADDED", "EXCLUSIVE_MAXIMUM_DECREASED",
	"EXCLUSIVE_MINIMUM_ADDED", "EXCLUSIVE_MINIMUM_INCREASED",
	"FORMAT_ADDED", "FORMAT_CHANGED",
	"ITEMS_ADDED", "ITEMS_REMOVED",
	"ITEM_ADDED_TO_OPEN_CONTENT_MODEL", "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL",
	"KEYWORD_ADDED", "KEYWORD_CHANGED",
	"MAXIMUM_ADDED", "MAXIMUM_DECREASED", "MAX_ITEMS_ADDED", "MAX_ITEMS_DECREASED",
	"MAX_LENGTH_ADDED", "MAX_LENGTH_DECREASED", "MAX_PROPERTIES_ADDED", "MAX_PROPERTIES_DECREASED",
	"MINIMUM_ADDED", "MINIMUM_INCREASED", "MIN_ITEMS_ADDED", "MIN_ITEMS_INCREASED",
	"MIN_LENGTH_ADDED", "MIN_LENGTH_INCREASED", "MIN_PROPERTIES_ADDED", "MIN_PROPERTIES_INCREASED",
	"MULTIPLE_OF_ADDED", "MULTIPLE_OF_CHANGED", "MULTIPLE_OF_EXPANDED",
	"NOT_TYPE_ADDED", "NOT_TYPE_EXTENDED",
	"PATTERN_ADDED", "PATTERN_CHANGED", "PRODUCT_TYPE_EXTENDED",
	"PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
	"PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
	"REFERENCE_NOT_CHECKED", "REQUIRED_ATTRIBUTE_ADDED", "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
	"SUM_TYPE_NARROWED", "TYPE_CHANGED", "TYPE_NARROWED", "UNIQUE_ITEMS_ADDED",
}

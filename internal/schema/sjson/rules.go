package sjson

import (
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// JSON types as bits; "number" is both bits, so intersecting and
// comparing sets treats integer as the subset of number it is.
const (
	tNull uint8 = 1 << iota
	tBoolean
	tObject
	tArray
	tString
	tInteger
	tFraction // numbers that are not integers
	tAll      = tNull | tBoolean | tObject | tArray | tString | tInteger | tFraction
	tNumber   = tInteger | tFraction
)

var typeBits = map[string]uint8{
	"null": tNull, "boolean": tBoolean, "object": tObject, "array": tArray,
	"string": tString, "integer": tInteger, "number": tNumber,
}

// typeNames spells a set of types, a number being one name.
func typeNames(t uint8) string {
	var names []string
	for _, n := range []string{"null", "boolean", "object", "array", "string"} {
		if t&typeBits[n] != 0 {
			names = append(names, n)
		}
	}
	switch {
	case t&tNumber == tNumber:
		names = append(names, "number")
	case t&tInteger != 0:
		names = append(names, "integer")
	case t&tFraction != 0:
		names = append(names, "non-integer number")
	}
	return strings.Join(names, ", ")
}

// typesOf reads a node's "type"; without it every type.
func typesOf(n node) uint8 {
	switch t := n.obj()["type"].(type) {
	case string:
		return typeBits[t]
	case []any:
		var bits uint8
		for _, e := range t {
			s, _ := e.(string)
			bits |= typeBits[s]
		}
		return bits
	}
	return tAll
}

// valueType is the type of a JSON value.
func valueType(v any) uint8 {
	switch v := v.(type) {
	case nil:
		return tNull
	case bool:
		return tBoolean
	case map[string]any:
		return tObject
	case []any:
		return tArray
	case string:
		return tString
	case json.Number:
		if r, ok := new(big.Rat).SetString(string(v)); ok && r.IsInt() {
			return tInteger
		}
		return tFraction
	}
	return 0
}

// enumOf reads a node's "enum", or its "const" as a one-value enum.
func enumOf(n node) ([]any, bool) {
	m := n.obj()
	if v, ok := m["const"]; ok {
		return []any{v}, true
	}
	list, ok := m["enum"].([]any)
	return list, ok
}

// writerTypes is the set of types the writer may write: the intersection
// of its conjuncts' "type"s, narrowed by its enum.
func writerTypes(w view) uint8 {
	t := tAll
	for _, n := range w {
		t &= typesOf(n)
	}
	if vals, ok := enumOf(w.part("enum")); ok {
		var et uint8
		for _, v := range vals {
			et |= valueType(v)
		}
		t &= et
	}
	return t
}

// checkType compares the types, returning the ones the writer writes, or
// 0 when nothing more is worth comparing.
func (c *checker) checkType(p string, r node, w view) uint8 {
	wt := writerTypes(w)
	rt := typesOf(r)
	if wt == 0 {
		return 0
	}
	missing := wt &^ rt
	switch {
	case missing == 0:
	case wt&rt == 0:
		c.add("TYPE_CHANGED", p+"/type", "the writer writes %s, the reader accepts only %s", typeNames(wt), typeNames(rt))
		return 0
	default:
		c.add("TYPE_NARROWED", p+"/type", "the writer may write %s, which the reader does not accept", typeNames(missing))
	}
	return wt & rt
}

func (c *checker) checkEnum(p string, r node, w view) {
	rv, ok := enumOf(r)
	if !ok {
		return
	}
	at := p + "/enum"
	if r.has("const") {
		at = p + "/const"
	}
	wv, ok := enumOf(w.part("enum"))
	if !ok {
		c.add("ENUM_ARRAY_NARROWED", at, "the reader accepts only %d listed values, the writer any", len(rv))
		return
	}
	have := make(map[string]bool, len(rv))
	for _, v := range rv {
		have[canonical(v)] = true
	}
	var missing []string
	for _, v := range wv {
		if k := canonical(v); !have[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		c.add("ENUM_ARRAY_NARROWED", at, "the writer may write %s, which the reader does not list", strings.Join(missing, ", "))
	}
}

// num reads keyword k of n as an exact number.
func num(n node, k string) (*big.Rat, bool) {
	s, ok := n.obj()[k].(json.Number)
	if !ok {
		return nil, false
	}
	return new(big.Rat).SetString(string(s))
}

// limit compares a one-sided bound such as maxLength (atMost: values must
// be at most the bound) or minLength: the reader's bound must be no
// tighter than the writer's.
func (c *checker) limit(p string, r node, w view, kw string, atMost bool, added, tightened string) {
	rv, ok := num(r, kw)
	if !ok {
		return
	}
	wv, ok := num(w.part(kw), kw)
	if !ok {
		c.add(added, p+"/"+kw, "the reader requires %s %s, the writer has no such bound", kw, rv.RatString())
		return
	}
	if cmp := rv.Cmp(wv); (atMost && cmp < 0) || (!atMost && cmp > 0) {
		c.add(tightened, p+"/"+kw, "%s is %s in the reader, %s in the writer", kw, rv.RatString(), wv.RatString())
	}
}

func (c *checker) checkString(p string, r node, w view, wt uint8) {
	if wt&tString == 0 {
		return
	}
	c.limit(p, r, w, "maxLength", true, "MAX_LENGTH_ADDED", "MAX_LENGTH_DECREASED")
	c.limit(p, r, w, "minLength", false, "MIN_LENGTH_ADDED", "MIN_LENGTH_INCREASED")
	c.sameString(p, r, w, "pattern", "PATTERN_ADDED", "PATTERN_CHANGED")
	c.sameString(p, r, w, "format", "FORMAT_ADDED", "FORMAT_CHANGED")
}

// sameString compares a keyword whose values Check cannot order (two
// regular expressions, two formats): any difference is reported.
func (c *checker) sameString(p string, r node, w view, kw, added, changed string) {
	rv, ok := r.obj()[kw].(string)
	if !ok {
		return
	}
	wv, ok := w.part(kw).obj()[kw].(string)
	switch {
	case !ok:
		c.add(added, p+"/"+kw, "the reader requires %s %q, the writer does not", kw, rv)
	case wv != rv:
		c.add(changed, p+"/"+kw, "%s is %q in the reader, %q in the writer", kw, rv, wv)
	}
}

// bound is one side of a number's range.
type bound struct {
	v    *big.Rat
	excl bool
}

// numBound reads a node's upper (or lower) bound: "maximum" and
// "exclusiveMaximum" (a number from draft 6, a flag on "maximum" in
// draft 4), the tighter one when both are numbers.
func numBound(n node, upper bool) (bound, bool) {
	incl, excl := "maximum", "exclusiveMaximum"
	if !upper {
		incl, excl = "minimum", "exclusiveMinimum"
	}
	iv, iok := num(n, incl)
	if n.doc.draft == 4 {
		return bound{iv, n.obj()[excl] == true}, iok
	}
	ev, eok := num(n, excl)
	switch {
	case iok && eok:
		if c := ev.Cmp(iv); (upper && c <= 0) || (!upper && c >= 0) {
			return bound{ev, true}, true
		}
		return bound{iv, false}, true
	case eok:
		return bound{ev, true}, true
	}
	return bound{iv, false}, iok
}

// covers reports whether reader bound rb admits every value writer bound
// wb does.
func covers(rb, wb bound, upper bool) bool {
	c := wb.v.Cmp(rb.v)
	if !upper {
		c = -c
	}
	return c < 0 || (c == 0 && (!rb.excl || wb.excl))
}

// boundRules name the rules for each side of a number's range.
var boundRules = []struct {
	upper                       bool
	incl, excl, rule, tightened string
}{
	{true, "maximum", "exclusiveMaximum", "MAXIMUM", "DECREASED"},
	{false, "minimum", "exclusiveMinimum", "MINIMUM", "INCREASED"},
}

func (c *checker) checkNumber(p string, r node, w view, wt uint8) {
	if wt&tNumber == 0 {
		return
	}
	for _, b := range boundRules {
		rb, ok := numBound(r, b.upper)
		if !ok {
			continue
		}
		rule, at := b.rule, p+"/"+b.incl
		if rb.excl {
			rule = "EXCLUSIVE_" + rule
			if r.doc.draft > 4 {
				at = p + "/" + b.excl
			}
		}
		wb, ok := numBound(w.part(b.incl), b.upper)
		switch {
		case !ok:
			c.add(rule+"_ADDED", at, "the reader bounds the value by %s, the writer does not", rb.v.RatString())
		case !covers(rb, wb, b.upper):
			c.add(rule+"_"+b.tightened, at, "the reader's bound %s is tighter than the writer's %s", rb.v.RatString(), wb.v.RatString())
		}
	}
	c.checkMultipleOf(p, r, w, wt)
}

func (c *checker) checkMultipleOf(p string, r node, w view, wt uint8) {
	rm, ok := num(r, "multipleOf")
	if !ok || rm.Sign() <= 0 {
		return
	}
	one := new(big.Rat).SetInt64(1)
	if wt&tFraction == 0 && new(big.Rat).Quo(one, rm).IsInt() {
		return // the writer writes integers, all multiples of 1/k
	}
	wm, ok := num(w.part("multipleOf"), "multipleOf")
	switch {
	case !ok:
		c.add("MULTIPLE_OF_ADDED", p+"/multipleOf", "the reader requires multiples of %s, the writer does not", rm.RatString())
	case new(big.Rat).Quo(wm, rm).IsInt():
	case new(big.Rat).Quo(rm, wm).IsInt():
		c.add("MULTIPLE_OF_EXPANDED", p+"/multipleOf", "the reader requires multiples of %s, the writer only of %s", rm.RatString(), wm.RatString())
	default:
		c.add("MULTIPLE_OF_CHANGED", p+"/multipleOf", "the reader requires multiples of %s, the writer of %s", rm.RatString(), wm.RatString())
	}
}

// items is an array schema's items: a tuple's positions then the schema
// of the rest.
type items struct {
	prefix   []node
	prefixKw string
	rest     node
	restKw   string
}

func itemsOf(n node) items {
	m := n.obj()
	it := items{rest: node{v: true, doc: n.doc, ptr: n.ptr + "/items"}, restKw: "items", prefixKw: "items"}
	if n.doc.draft >= 2020 {
		it.prefixKw = "prefixItems"
		if list, ok := m["prefixItems"].([]any); ok {
			for i := range list {
				it.prefix = append(it.prefix, n.child("prefixItems", strconv.Itoa(i)))
			}
		}
		if _, ok := m["items"]; ok {
			it.rest = n.child("items")
		}
		return it
	}
	switch v := m["items"].(type) {
	case []any:
		for i := range v {
			it.prefix = append(it.prefix, n.child("items", strconv.Itoa(i)))
		}
		it.restKw = "additionalItems"
		if _, ok := m["additionalItems"]; ok {
			it.rest = n.child("additionalItems")
		}
	case nil:
	default:
		it.rest = n.child("items")
	}
	return it
}

func (it items) at(i int) node {
	if i < len(it.prefix) {
		return it.prefix[i]
	}
	return it.rest
}

func (c *checker) checkArray(p string, r node, w view, wt uint8, depth int) {
	if wt&tArray == 0 {
		return
	}
	c.limit(p, r, w, "maxItems", true, "MAX_ITEMS_ADDED", "MAX_ITEMS_DECREASED")
	c.limit(p, r, w, "minItems", false, "MIN_ITEMS_ADDED", "MIN_ITEMS_INCREASED")
	if r.obj()["uniqueItems"] == true && w.part("uniqueItems").obj()["uniqueItems"] != true {
		c.add("UNIQUE_ITEMS_ADDED", p+"/uniqueItems", "the reader requires unique items, the writer does not")
	}
	ri, wi := itemsOf(r), itemsOf(w.part("items"))
	for i := range max(len(ri.prefix), len(wi.prefix)) {
		wn := wi.at(i)
		if wn.isFalse() {
			return // the writer's arrays end before position i
		}
		c.checkItem(p, i, ri, wi, depth)
	}
	c.checkRestItems(p, ri, wi, depth)
}

// checkItem compares tuple position i, which at least one side has.
func (c *checker) checkItem(p string, i int, ri, wi items, depth int) {
	rn, wn := ri.at(i), wi.at(i)
	at := p + "/" + ri.prefixKw + "/" + strconv.Itoa(i)
	switch {
	case i < len(ri.prefix) && i >= len(wi.prefix) && wn.isOpen():
		if !rn.isOpen() {
			c.add("ITEM_ADDED_TO_OPEN_CONTENT_MODEL", at, "the reader constrains array position %d, which the writer leaves open", i)
		}
	case i >= len(ri.prefix) && rn.isFalse():
		c.add("ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", p+"/"+ri.restKw, "the writer may write array position %d, which the reader's closed tuple does not have", i)
	default:
		if i >= len(ri.prefix) {
			at = p + "/" + ri.restKw
		}
		c.check(at, rn, view{wn}, depth+1)
	}
}

// checkRestItems compares the items after both tuples.
func (c *checker) checkRestItems(p string, ri, wi items, depth int) {
	rn, wn := ri.rest, wi.rest
	at := p + "/" + ri.restKw
	tuple := len(ri.prefix) > 0
	switch {
	case wn.isFalse() || rn.isOpen():
	case rn.isFalse() && tuple:
		c.add("ADDITIONAL_ITEMS_REMOVED", at, "the reader allows no items after its tuple's %d, the writer does", len(ri.prefix))
	case rn.isFalse():
		c.add("ITEMS_REMOVED", at, "the reader allows only empty arrays, the writer does not")
	case wn.isOpen() && tuple:
		c.add("ADDITIONAL_ITEMS_NARROWED", at, "the reader constrains the items after its tuple, the writer does not")
	case wn.isOpen():
		c.add("ITEMS_ADDED", at, "the reader constrains the array's items, the writer does not")
	default:
		c.check(at, rn, view{wn}, depth+1)
	}
}

// content is how an object schema treats properties it does not list.
type content int

const (
	open    content = iota // anything
	closed                 // nothing: "additionalProperties": false
	partial                // what a schema allows
)

func contentOf(n node) (content, node) {
	ap := n.child("additionalProperties")
	switch {
	case ap.v == nil || ap.isOpen():
		return open, ap
	case ap.isFalse():
		return closed, ap
	}
	return partial, ap
}

func (c *checker) checkObject(p string, r node, w view, wt uint8, depth int) {
	if wt&tObject == 0 {
		return
	}
	c.limit(p, r, w, "maxProperties", true, "MAX_PROPERTIES_ADDED", "MAX_PROPERTIES_DECREASED")
	c.limit(p, r, w, "minProperties", false, "MIN_PROPERTIES_ADDED", "MIN_PROPERTIES_INCREASED")
	wo := w.part("properties")
	rc, rap := contentOf(r)
	wc, wap := contentOf(wo)
	if wp, ok := wo.obj()["patternProperties"]; ok && !sameValue(wo, wp, r, r.obj()["patternProperties"]) {
		// The writer writes properties its patterns allow, which Check
		// does not match against names: take it as open.
		wc, wap = open, node{v: true, doc: wo.doc, ptr: wo.ptr}
	}
	rprops, _ := r.obj()["properties"].(map[string]any)
	wprops, _ := wo.obj()["properties"].(map[string]any)
	for _, name := range unionKeys(rprops, wprops) {
		at := p + "/properties/" + escapePointer(name)
		_, inR := rprops[name]
		_, inW := wprops[name]
		rn, wn := r.child("properties", name), wo.child("properties", name)
		switch {
		case inR && inW:
			c.check(at, rn, view{wn}, depth+1)
		case inW:
			c.propertyRemoved(at, name, rc, rap, wn, depth)
		default:
			c.propertyAdded(at, name, rn, wc, wap, depth)
		}
	}
	c.checkRequired(p, r, w, wo, wc)
	c.checkAdditional(p, rc, rap, wc, wap, depth)
}

// propertyRemoved: the writer lists a property the reader does not, so the
// reader's additionalProperties decides.
func (c *checker) propertyRemoved(at, name string, rc content, rap, wn node, depth int) {
	switch rc {
	case closed:
		if !wn.isFalse() {
			c.add("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", at, "the writer may write property %q, which the reader's closed object does not allow", name)
		}
	case partial:
		if got := c.try(func() { c.check(at, rap, view{wn}, depth+1) }); len(got) > 0 {
			c.add("PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", at, "the writer's property %q does not fit the reader's additionalProperties: %s", name, got[0])
		}
	}
}

// propertyAdded: the reader lists a property the writer does not, so what
// the writer may write under that name is its additionalProperties.
func (c *checker) propertyAdded(at, name string, rn node, wc content, wap node, depth int) {
	switch wc {
	case open:
		if !rn.isOpen() {
			c.add("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", at, "the reader constrains property %q, which the writer's open object may hold with any value", name)
		}
	case partial:
		if got := c.try(func() { c.check(at, rn, view{wap}, depth+1) }); len(got) > 0 {
			c.add("PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", at, "the writer's additionalProperties may give property %q values the reader does not accept: %s", name, got[0])
		}
	}
}

func (c *checker) checkRequired(p string, r node, w view, wo node, wc content) {
	wreq := map[string]bool{}
	for _, n := range w {
		for _, v := range stringList(n.obj()["required"]) {
			wreq[v] = true
		}
	}
	wprops, _ := wo.obj()["properties"].(map[string]any)
	for _, name := range stringList(r.obj()["required"]) {
		if wreq[name] {
			continue
		}
		if _, listed := wprops[name]; !listed && wc != open {
			c.add("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", p+"/required", "the reader requires property %q, which the writer's object does not list and is not open to", name)
			continue
		}
		c.add("REQUIRED_ATTRIBUTE_ADDED", p+"/required", "the reader requires property %q, which the writer may omit", name)
	}
}

// checkAdditional compares the properties neither side lists.
func (c *checker) checkAdditional(p string, rc content, rap node, wc content, wap node, depth int) {
	at := p + "/additionalProperties"
	switch {
	case rc == open || wc == closed:
	case rc == closed:
		c.add("ADDITIONAL_PROPERTIES_REMOVED", at, "the reader allows no properties besides those it lists, the writer does")
	case wc == open:
		c.add("ADDITIONAL_PROPERTIES_NARROWED", at, "the reader constrains the properties it does not list, the writer does not")
	default:
		c.check(at, rap, view{wap}, depth+1)
	}
}

func (c *checker) checkNot(p string, r node, w view, depth int) {
	if !r.has("not") {
		return
	}
	at := p + "/not"
	wn := w.part("not")
	if !wn.has("not") {
		c.add("NOT_TYPE_ADDED", at, "the reader rejects values matching its \"not\", the writer has no \"not\"")
		return
	}
	// The reader rejects what its "not" accepts; every such value must be
	// one the writer's "not" rejects, that is the writer's "not" must be
	// able to read the reader's.
	if got := c.try(func() { c.check(at, wn.child("not"), view{r.child("not")}, depth+1) }); len(got) > 0 {
		c.add("NOT_TYPE_EXTENDED", at, "the reader's \"not\" rejects values the writer's does not: %s", got[0])
	}
}

// otherKeywords are compared by value: where the reader has one and the
// writer's differs, the change is reported without deciding whether it
// narrows, to stay sound. The type limits where they matter.
var otherKeywords = []struct {
	kw string
	t  uint8
}{
	{"contains", tArray}, {"minContains", tArray}, {"maxContains", tArray},
	{"unevaluatedItems", tArray},
	{"propertyNames", tObject}, {"patternProperties", tObject}, {"dependencies", tObject},
	{"dependentRequired", tObject}, {"dependentSchemas", tObject}, {"unevaluatedProperties", tObject},
	{"if", tAll}, {"then", tAll}, {"else", tAll}, {"$recursiveRef", tAll}, {"$dynamicRef", tAll},
}

func (c *checker) checkOther(p string, r node, w view, wt uint8) {
	rm := r.obj()
	for _, o := range otherKeywords {
		rv, ok := rm[o.kw]
		if !ok || wt&o.t == 0 {
			continue
		}
		wn := w.part(o.kw)
		wv, ok := wn.obj()[o.kw]
		switch {
		case !ok:
			c.add("KEYWORD_ADDED", p+"/"+o.kw, "the reader has %q, the writer does not; it is compared by value", o.kw)
		case !sameValue(r, rv, wn, wv):
			c.add("KEYWORD_CHANGED", p+"/"+o.kw, "%q differs between reader and writer; it is compared by value", o.kw)
		}
	}
}

// sameValue compares two keywords' values by canonical text. Values that
// hold references are the same only within one document, where the
// references mean the same.
func sameValue(a node, av any, b node, bv any) bool {
	ca, cb := canonical(av), canonical(bv)
	if ca != cb {
		return false
	}
	return a.doc.url == b.doc.url || !strings.Contains(ca, `"$ref"`)
}

func unionKeys(a, b map[string]any) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

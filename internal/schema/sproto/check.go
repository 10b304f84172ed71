package sproto

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/spoolmq/spool/internal/schema"
)

// The compatibility rules. Names read as the change from the writer's
// schema to the reader's, as under BACKWARD (reader = new, writer = old);
// under FORWARD the same pair of schemas is checked the other way round.
const (
	RulePackageChanged             = "PACKAGE_CHANGED"
	RuleMessageRemoved             = "MESSAGE_REMOVED"
	RuleMessageMoved               = "MESSAGE_MOVED"
	RuleMessageRenamed             = "MESSAGE_RENAMED"
	RuleFieldKindChanged           = "FIELD_KIND_CHANGED"
	RuleFieldScalarKindChanged     = "FIELD_SCALAR_KIND_CHANGED"
	RuleFieldScalarNarrowed        = "FIELD_SCALAR_NARROWED"
	RuleFieldNamedTypeChanged      = "FIELD_NAMED_TYPE_CHANGED"
	RuleFieldNumberReused          = "FIELD_NUMBER_REUSED"
	RuleFieldCardinalityChanged    = "FIELD_CARDINALITY_CHANGED"
	RuleRequiredFieldAdded         = "REQUIRED_FIELD_ADDED"
	RuleRequiredFieldRemoved       = "REQUIRED_FIELD_REMOVED"
	RuleOneofFieldRemoved          = "ONEOF_FIELD_REMOVED"
	RuleMultipleFieldsMovedToOneof = "MULTIPLE_FIELDS_MOVED_TO_ONEOF"
	RuleFieldMovedToExistingOneof  = "FIELD_MOVED_TO_EXISTING_ONEOF"
	RuleEnumValueRemoved           = "ENUM_VALUE_REMOVED"
	RuleSchemaTypeChanged          = "SCHEMA_TYPE_CHANGED"
)

// Check returns the issues that stop a reader using s from reading data
// written with writer, in a fixed order: the package, then messages by
// position, each message's fields by number, its oneofs, then its nested
// messages.
func (s *protoSchema) Check(writer schema.Schema) []schema.Issue {
	w, ok := writer.(*protoSchema)
	if !ok {
		return []schema.Issue{{Rule: RuleSchemaTypeChanged, Message: "the writer's schema is not a PROTOBUF schema"}}
	}
	c := &checker{seen: map[[2]protoreflect.FullName]bool{}}
	if rp, wp := s.fd.Package(), w.fd.Package(); rp != wp {
		c.add(RulePackageChanged, string(rp), "package changed from %q to %q; every message's full name changes with it", wp, rp)
	}
	c.positions(s.fd.Messages(), w.fd.Messages())
	return c.issues
}

type checker struct {
	issues []schema.Issue
	// seen holds the (reader, writer) pairs of messages and enums already
	// compared; recursive types would otherwise loop.
	seen map[[2]protoreflect.FullName]bool
}

func (c *checker) add(rule, path, format string, args ...any) {
	c.issues = append(c.issues, schema.Issue{Rule: rule, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) once(r, w protoreflect.Descriptor) bool {
	k := [2]protoreflect.FullName{r.FullName(), w.FullName()}
	if c.seen[k] {
		return false
	}
	c.seen[k] = true
	return true
}

// key names a type for matching reader against writer: types of the
// schema's own file by their name within the package (so that a package
// change is reported once, as PACKAGE_CHANGED), imported types by their
// full name.
func key(d protoreflect.Descriptor) string {
	f := d.ParentFile()
	if f == nil || f.Path() != mainFile || f.Package() == "" {
		return string(d.FullName())
	}
	return strings.TrimPrefix(string(d.FullName()), string(f.Package())+".")
}

// positions compares the writer's messages with the reader's at the same
// positions: message indexes in the payload's header name a message by
// its position, so the reader decodes with whatever message sits there.
func (c *checker) positions(rs, ws protoreflect.MessageDescriptors) {
	rAt := map[string]int{}
	for i := 0; i < rs.Len(); i++ {
		if m := rs.Get(i); !m.IsMapEntry() {
			rAt[key(m)] = i
		}
	}
	wAt := map[string]int{}
	for i := 0; i < ws.Len(); i++ {
		wAt[key(ws.Get(i))] = i
	}
	for i := 0; i < ws.Len(); i++ {
		wm := ws.Get(i)
		if wm.IsMapEntry() {
			continue // never addressed by an index; its map field is compared
		}
		var rm protoreflect.MessageDescriptor
		if i < rs.Len() {
			rm = rs.Get(i)
		}
		k := key(wm)
		j, inReader := rAt[k]
		rmInWriter := false
		if rm != nil {
			_, rmInWriter = wAt[key(rm)]
		}
		switch {
		case inReader && j == i:
			c.message(rm, wm)
		case inReader:
			c.add(RuleMessageMoved, string(wm.FullName()), "message moved from index %d to %d; payloads naming index %d are read as %s", i, j, i, nameOr(rm, "nothing"))
			c.message(rs.Get(j), wm)
		case rm != nil && !rm.IsMapEntry() && !rmInWriter:
			c.add(RuleMessageRenamed, string(wm.FullName()), "message at index %d renamed to %s", i, rm.FullName())
			c.message(rm, wm)
		default:
			c.add(RuleMessageRemoved, string(wm.FullName()), "message removed; payloads naming index %d are read as %s", i, nameOr(rm, "nothing"))
		}
	}
}

func nameOr(m protoreflect.MessageDescriptor, none string) string {
	if m == nil {
		return none
	}
	return string(m.FullName())
}

// message compares two messages the reader takes to be the same.
func (c *checker) message(r, w protoreflect.MessageDescriptor) {
	if !c.once(r, w) {
		return
	}
	for _, n := range fieldNumbers(r, w) {
		rf, wf := r.Fields().ByNumber(n), w.Fields().ByNumber(n)
		switch {
		case rf == nil:
			if o := wf.ContainingOneof(); o != nil && !o.IsSynthetic() {
				c.add(RuleOneofFieldRemoved, string(wf.FullName()), "field %d of oneof %s removed; when the writer sets it the reader sees the oneof unset", n, o.Name())
			}
		case wf == nil:
			c.required(rf, nil, w)
		default:
			c.required(rf, wf, w)
			c.field(rf, wf)
		}
	}
	c.oneofs(r, w)
	if r.ParentFile().Path() == mainFile && w.ParentFile().Path() == mainFile {
		c.positions(r.Messages(), w.Messages())
	}
}

// fieldNumbers returns the numbers of both messages' fields, ascending.
func fieldNumbers(r, w protoreflect.MessageDescriptor) []protoreflect.FieldNumber {
	var ns []protoreflect.FieldNumber
	for _, m := range []protoreflect.MessageDescriptor{r, w} {
		for i := 0; i < m.Fields().Len(); i++ {
			ns = append(ns, m.Fields().Get(i).Number())
		}
	}
	slices.Sort(ns)
	return slices.Compact(ns)
}

// required reports a reader's required field the writer may leave unset.
func (c *checker) required(rf, wf protoreflect.FieldDescriptor, w protoreflect.MessageDescriptor) {
	if rf.Cardinality() != protoreflect.Required {
		return
	}
	path := string(rf.FullName())
	switch {
	case wf == nil && w.ReservedRanges().Has(rf.Number()):
		c.add(RuleRequiredFieldRemoved, path, "required field %d is reserved (removed) in the writer, so it is never set", rf.Number())
	case wf == nil:
		c.add(RuleRequiredFieldAdded, path, "required field %d is not in the writer, so it is never set", rf.Number())
	case wf.Cardinality() != protoreflect.Required:
		c.add(RuleRequiredFieldAdded, path, "field %d is required but the writer may leave it unset", rf.Number())
	}
}

// field compares two fields with the same number.
func (c *checker) field(rf, wf protoreflect.FieldDescriptor) {
	path := string(rf.FullName())
	if rf.IsMap() != wf.IsMap() {
		c.incompatible(RuleFieldKindChanged, rf, wf, "field %d changed from %s to %s", rf.Number(), describeField(wf), describeField(rf))
		return
	}
	if rf.IsMap() {
		c.value(rf.MapKey(), wf.MapKey(), path+".key", rf, wf)
		c.value(rf.MapValue(), wf.MapValue(), path+".value", rf, wf)
		return
	}
	if wf.IsList() && !rf.IsList() {
		c.add(RuleFieldCardinalityChanged, path, "field %d is singular but repeated in the writer; the reader keeps only the last value (merges messages) or loses packed values", rf.Number())
	}
	c.value(rf, wf, path, rf, wf)
}

// describeField names a field's type for messages, e.g. "repeated int32".
func describeField(f protoreflect.FieldDescriptor) string {
	switch {
	case f.IsMap():
		return fmt.Sprintf("map<%s, %s>", typeName(f.MapKey()), typeName(f.MapValue()))
	case f.IsList():
		return "repeated " + typeName(f)
	}
	return typeName(f)
}

func typeName(f protoreflect.FieldDescriptor) string {
	switch {
	case f.Message() != nil && f.Kind() == protoreflect.GroupKind:
		return "group " + string(f.Message().FullName())
	case f.Message() != nil:
		return string(f.Message().FullName())
	case f.Enum() != nil:
		return "enum " + string(f.Enum().FullName())
	}
	return f.Kind().String()
}

// incompatible reports an incompatible type change, as a reused number
// when the field's name changed too (a different field took the number).
func (c *checker) incompatible(rule string, rf, wf protoreflect.FieldDescriptor, format string, args ...any) {
	if rf.Name() != wf.Name() {
		c.add(RuleFieldNumberReused, string(rf.FullName()), "field %d is %s %s in the writer but %s %s in the reader", rf.Number(), wf.Name(), describeField(wf), rf.Name(), describeField(rf))
		return
	}
	c.add(rule, string(rf.FullName()), format, args...)
}

// value compares the types of values: a field's, or a map's key or value.
// rf and wf are the fields, for the names in reused-number issues.
func (c *checker) value(r, w protoreflect.FieldDescriptor, path string, rf, wf protoreflect.FieldDescriptor) {
	rc, wc := class(r.Kind()), class(w.Kind())
	switch {
	case rc == wc && (rc == classMessage || rc == classGroup):
		if key(r.Message()) != key(w.Message()) {
			c.incompatibleAt(RuleFieldNamedTypeChanged, path, rf, wf, "type changed from %s to %s", w.Message().FullName(), r.Message().FullName())
			return
		}
		c.message(r.Message(), w.Message())
	case rc == classEnum && wc == classEnum:
		if key(r.Enum()) != key(w.Enum()) {
			c.incompatibleAt(RuleFieldNamedTypeChanged, path, rf, wf, "type changed from enum %s to enum %s", w.Enum().FullName(), r.Enum().FullName())
			return
		}
		c.enum(r.Enum(), w.Enum())
	case rc == classMessage || rc == classGroup || wc == classMessage || wc == classGroup:
		c.incompatibleAt(RuleFieldKindChanged, path, rf, wf, "type changed from %s to %s", typeName(w), typeName(r))
	default:
		c.scalar(r, w, path, rf, wf)
	}
}

// incompatibleAt is incompatible with a path inside the field (a map's
// key or value) kept when the rule stays.
func (c *checker) incompatibleAt(rule, path string, rf, wf protoreflect.FieldDescriptor, format string, args ...any) {
	if rf.Name() != wf.Name() {
		c.incompatible(rule, rf, wf, format, args...)
		return
	}
	c.add(rule, path, format, args...)
}

// enum compares two enums the reader takes to be the same. A value the
// writer has and a closed reader enum lacks is not read as the field's
// value (it lands among the unknown fields); an open enum keeps it.
func (c *checker) enum(r, w protoreflect.EnumDescriptor) {
	if !c.once(r, w) || !r.IsClosed() {
		return
	}
	vals := w.Values()
	for i := 0; i < vals.Len(); i++ {
		v := vals.Get(i)
		if r.Values().ByNumber(v.Number()) == nil {
			c.add(RuleEnumValueRemoved, string(v.FullName()), "value %s = %d of closed enum %s removed; the reader drops the field when it has this value", v.Name(), v.Number(), r.FullName())
		}
	}
}

// oneofs reports reader oneofs holding fields the writer may set together.
func (c *checker) oneofs(r, w protoreflect.MessageDescriptor) {
	for i := 0; i < r.Oneofs().Len(); i++ {
		o := r.Oneofs().Get(i)
		if o.IsSynthetic() {
			continue
		}
		var moved []string
		var from []string // the writer's oneofs the fields were in
		for j := 0; j < o.Fields().Len(); j++ {
			wf := w.Fields().ByNumber(o.Fields().Get(j).Number())
			if wf == nil {
				continue
			}
			if wo := wf.ContainingOneof(); wo != nil && !wo.IsSynthetic() {
				if !slices.Contains(from, string(wo.Name())) {
					from = append(from, string(wo.Name()))
				}
				continue
			}
			moved = append(moved, string(wf.Name()))
		}
		path := string(o.FullName())
		if len(moved) > 1 {
			c.add(RuleMultipleFieldsMovedToOneof, path, "fields %s moved into oneof %s; the writer may set more than one, the reader keeps only the last", strings.Join(moved, ", "), o.Name())
		}
		if len(moved) > 0 && len(from) > 0 || len(from) > 1 {
			c.add(RuleFieldMovedToExistingOneof, path, "oneof %s gathers fields the writer may set together (fields %s, from oneofs %s); the reader keeps only the last", o.Name(), orNone(moved), orNone(from))
		}
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

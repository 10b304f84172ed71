package sproto

import (
	"math"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// kindClass groups kinds by what a change between them can mean.
type kindClass int

const (
	classScalar kindClass = iota
	classEnum
	classMessage
	classGroup
)

func class(k protoreflect.Kind) kindClass {
	switch k {
	case protoreflect.EnumKind:
		return classEnum
	case protoreflect.MessageKind:
		return classMessage
	case protoreflect.GroupKind:
		return classGroup
	}
	return classScalar
}

// encoding groups the scalar kinds (and enums) that share an encoding on
// the wire: a value of one decodes as a value of another in its group,
// though possibly not as the same number.
type encoding int

const (
	encVarint  encoding = iota // int32, int64, uint32, uint64, bool, enum
	encZigzag                  // sint32, sint64
	encFixed32                 // fixed32, sfixed32
	encFixed64                 // fixed64, sfixed64
	encFloat
	encDouble
	encBytes // string, bytes
)

func encodingOf(k protoreflect.Kind) encoding {
	switch k {
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return encZigzag
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
		return encFixed32
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		return encFixed64
	case protoreflect.FloatKind:
		return encFloat
	case protoreflect.DoubleKind:
		return encDouble
	case protoreflect.StringKind, protoreflect.BytesKind:
		return encBytes
	}
	return encVarint
}

// valueRange is the span of numbers a kind holds: lo is never above 0 and
// hi never below, so an int64 and a uint64 hold them.
type valueRange struct {
	lo int64
	hi uint64
}

func (r valueRange) within(o valueRange) bool { return r.lo >= o.lo && r.hi <= o.hi }

// rangeOf returns the numbers field f's kind holds; ok is false for kinds
// that are not integers.
func rangeOf(f protoreflect.FieldDescriptor) (r valueRange, ok bool) {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return valueRange{0, 1}, true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return valueRange{math.MinInt32, math.MaxInt32}, true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return valueRange{0, math.MaxUint32}, true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return valueRange{math.MinInt64, math.MaxInt64}, true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return valueRange{0, math.MaxUint64}, true
	case protoreflect.EnumKind:
		return enumRange(f.Enum()), true
	}
	return valueRange{}, false
}

// enumRange spans an enum's declared values (and 0, the default).
func enumRange(e protoreflect.EnumDescriptor) valueRange {
	var r valueRange
	vals := e.Values()
	for i := 0; i < vals.Len(); i++ {
		n := vals.Get(i).Number()
		r.lo = min(r.lo, int64(n))
		r.hi = max(r.hi, uint64(max(n, 0)))
	}
	return r
}

// scalar compares two scalar (or enum and scalar) value types.
func (c *checker) scalar(r, w protoreflect.FieldDescriptor, path string, rf, wf protoreflect.FieldDescriptor) {
	rk, wk := r.Kind(), w.Kind()
	if rk == wk {
		return
	}
	if encodingOf(rk) != encodingOf(wk) {
		rule := RuleFieldScalarKindChanged
		if rk == protoreflect.EnumKind || wk == protoreflect.EnumKind {
			rule = RuleFieldKindChanged
		}
		c.incompatibleAt(rule, path, rf, wf, "type changed from %s to %s, which are encoded differently", typeName(w), typeName(r))
		return
	}
	if !lossless(r, w) {
		c.add(RuleFieldScalarNarrowed, path, "type changed from %s to %s; they share an encoding but the reader cannot hold every value the writer can write", typeName(w), typeName(r))
	}
}

// lossless reports whether every value of writer type w, read as reader
// type r (of the same encoding), keeps its meaning.
func lossless(r, w protoreflect.FieldDescriptor) bool {
	switch {
	case r.Kind() == protoreflect.BytesKind:
		return true // from string: text is bytes
	case r.Kind() == protoreflect.StringKind:
		return false // from bytes: not all bytes are text
	case r.Kind() == protoreflect.EnumKind && r.Enum().IsClosed():
		return false // a closed enum drops numbers it does not declare
	}
	wr, ok1 := rangeOf(w)
	rr, ok2 := rangeOf(r)
	if r.Kind() == protoreflect.EnumKind {
		rr = valueRange{math.MinInt32, math.MaxInt32} // an open enum keeps any int32
	}
	if !ok1 || !ok2 {
		return false
	}
	// The fixed-width kinds reinterpret the same bits (fixed32 as
	// sfixed32), so only equal ranges would be safe and none are.
	if e := encodingOf(r.Kind()); e == encFixed32 || e == encFixed64 {
		return false
	}
	return wr.within(rr)
}

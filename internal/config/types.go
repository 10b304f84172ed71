package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/spoolmq/spool/bytesize"
)

// kind is how a field's value is read and printed.
type kind uint8

const (
	kindString   kind = iota + 1 // any string kind
	kindBool                     // any bool kind
	kindInt                      // any signed integer kind but time.Duration
	kindUint                     // any unsigned integer kind but uintptr
	kindFloat                    // float32 or float64
	kindDuration                 // time.Duration
	kindSize                     // bytesize.Size
	kindStrings                  // a slice of a string kind
	kindText                     // implements encoding.TextUnmarshaler
	kindStruct                   // a section of nested keys
)

var (
	durationType        = reflect.TypeFor[time.Duration]()
	sizeType            = reflect.TypeFor[bytesize.Size]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// field is one key of a config struct.
type field struct {
	name  string // the YAML key
	index int    // the Go field's index in its struct
	kind  kind
	typ   reflect.Type
	sub   *structInfo // the section's keys, for kindStruct
}

// structInfo is the set of keys of one config struct, in field order.
type structInfo struct {
	fields []*field
	byName map[string]*field
}

// names returns the keys in field order.
func (si *structInfo) names() []string {
	out := make([]string, len(si.fields))
	for i, f := range si.fields {
		out[i] = f.name
	}
	return out
}

// walk calls fn for every key, sections before their keys, with its
// dotted path.
func (si *structInfo) walk(prefix string, fn func(path string, f *field)) {
	for _, f := range si.fields {
		p := joinPath(prefix, f.name)
		fn(p, f)
		if f.kind == kindStruct {
			f.sub.walk(p, fn)
		}
	}
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

type infoResult struct {
	si  *structInfo
	err error
}

var infoCache sync.Map // reflect.Type -> infoResult

// infoFor returns the keys of struct type t, or an error naming a field
// whose type the package does not support.
func infoFor(t reflect.Type) (*structInfo, error) {
	if r, ok := infoCache.Load(t); ok {
		r := r.(infoResult)
		return r.si, r.err
	}
	si, err := buildInfo(t, "")
	infoCache.Store(t, infoResult{si, err})
	return si, err
}

// buildInfo analyses struct type t. Go types cannot nest a struct in itself
// without a pointer, slice or map, none of which is followed here, so the
// recursion ends.
func buildInfo(t reflect.Type, prefix string) (*structInfo, error) {
	si := &structInfo{byName: make(map[string]*field)}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		path := joinPath(prefix, name)
		for _, o := range strings.Split(opts, ",") {
			if o == "inline" {
				return nil, fmt.Errorf("config: %s.%s (key %s): the inline tag option is not supported", t, sf.Name, path)
			}
		}
		if _, dup := si.byName[name]; dup {
			return nil, fmt.Errorf("config: %s: two fields have the key %q", t, name)
		}
		k, ok := classify(sf.Type)
		if !ok {
			return nil, fmt.Errorf("config: %s.%s (key %s): unsupported type %s", t, sf.Name, path, sf.Type)
		}
		f := &field{name: name, index: i, kind: k, typ: sf.Type}
		if k == kindStruct {
			sub, err := buildInfo(sf.Type, path)
			if err != nil {
				return nil, err
			}
			f.sub = sub
		}
		si.fields = append(si.fields, f)
		si.byName[name] = f
	}
	return si, nil
}

// classify says how values of type t are read, or false if they cannot be.
func classify(t reflect.Type) (kind, bool) {
	switch {
	case t == durationType:
		return kindDuration, true
	case t == sizeType:
		return kindSize, true
	case t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface &&
		reflect.PointerTo(t).Implements(textUnmarshalerType):
		return kindText, true
	}
	switch t.Kind() {
	case reflect.String:
		return kindString, true
	case reflect.Bool:
		return kindBool, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return kindInt, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return kindUint, true
	case reflect.Float32, reflect.Float64:
		return kindFloat, true
	case reflect.Slice:
		e := t.Elem()
		if e.Kind() == reflect.String && !reflect.PointerTo(e).Implements(textUnmarshalerType) {
			return kindStrings, true
		}
	case reflect.Struct:
		return kindStruct, true
	}
	return 0, false
}

// structTarget checks that dst is a non-nil pointer to a supported struct
// and returns the struct and its keys.
func structTarget(fn string, dst any) (reflect.Value, *structInfo, error) {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, nil, fmt.Errorf("config: %s needs a non-nil pointer to a struct, not %T", fn, dst)
	}
	si, err := infoFor(v.Elem().Type())
	if err != nil {
		return reflect.Value{}, nil, err
	}
	return v.Elem(), si, nil
}

// structSource is structTarget for functions that only read: src may be a
// struct or a non-nil pointer to one.
func structSource(fn string, src any) (reflect.Value, *structInfo, error) {
	v := reflect.ValueOf(src)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return reflect.Value{}, nil, fmt.Errorf("config: %s needs a struct or a non-nil pointer to one, not %T", fn, src)
	}
	si, err := infoFor(v.Type())
	if err != nil {
		return reflect.Value{}, nil, err
	}
	return v, si, nil
}

// Keys lists every key that holds a value in the config struct src (a
// struct or a pointer to one) as its dotted path, a space and its Go type,
// such as "http.addr string" or "log.segment-size bytesize.Size", in
// field order. Sections are not listed themselves, only their keys. It is
// meant for documentation and tests, and panics if src is not a struct or
// has a field of an unsupported type, which Load, ApplyEnv and Marshal
// report as an error instead.
func Keys(src any) []string {
	_, si, err := structSource("Keys", src)
	if err != nil {
		panic(err)
	}
	var out []string
	si.walk("", func(path string, f *field) {
		if f.kind != kindStruct {
			out = append(out, path+" "+f.typ.String())
		}
	})
	return out
}

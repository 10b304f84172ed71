package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Record framing (docs/format/state.md). Each record family is encoded by
// the package that writes it; those with a version start with one version
// byte, 1 or more, followed by that version's payload. Records written
// before versions existed are JSON objects, so their first byte is '{':
// they are version 0, which families that used to be JSON keep reading.
// '{' (0x7b) is therefore never used as a version byte. Records of a fixed
// layout have no version byte and count as version 0 (Fixed).

// LegacyJSON is the first byte of a version-0 (JSON) record.
const LegacyJSON = '{'

// VersionError is a record whose version byte this server does not know:
// written by a newer server, or damaged.
type VersionError struct {
	Version byte // the record's first byte
	Max     byte // the newest version this server reads
}

func (e *VersionError) Error() string {
	if e.Version > e.Max && e.Version != LegacyJSON {
		return fmt.Sprintf("record of an unknown future version %d; this server reads up to version %d", e.Version, e.Max)
	}
	return fmt.Sprintf("record of unknown version byte 0x%02x", e.Version)
}

// RecordError is a record that cannot be decoded: which kind of record,
// its key, and why.
type RecordError struct {
	Kind string // "topic", "queue snapshot", …
	Key  []byte
	Err  error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("%s record %s: %v", e.Kind, KeyString(e.Key), e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Version returns a record's version and payload: version 0 with the whole
// record for a JSON record (first byte '{') when legacy is set, else the
// first byte, which must be between 1 and max, and the bytes after it.
func Version(v []byte, max byte, legacy bool) (byte, []byte, error) {
	switch {
	case len(v) == 0:
		return 0, nil, fmt.Errorf("empty record")
	case v[0] == LegacyJSON && legacy:
		return 0, v, nil
	case v[0] == 0 || v[0] > max:
		return 0, nil, &VersionError{Version: v[0], Max: max}
	}
	return v[0], v[1:], nil
}

// Fixed checks a record of a version-less fixed layout of size bytes
// (committed offsets, park index entries, redriven marks): such a layout
// counts as version 0, and a later version of the record is told apart by
// another length and a first byte of 1 or more, its version.
func Fixed(v []byte, size int) error {
	switch {
	case len(v) == size:
		return nil
	case len(v) > 0 && v[0] > 0:
		return fmt.Errorf("%d bytes, not %d: %w", len(v), size, &VersionError{Version: v[0], Max: 0})
	}
	return fmt.Errorf("%d bytes, not %d", len(v), size)
}

// CheckTime refuses a decoded time no record can hold again: encoders
// write times RFC 3339 in UTC with a four-digit year (json.Marshal of a
// time.Time fails otherwise), and a time stored with an offset may fall
// outside the years 0 to 9999 in UTC. No encoder ever wrote such a time,
// since none could.
func CheckTime(what string, t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%s %s is outside the years 0 to 9999 in UTC", what, t.Format(time.RFC3339Nano))
	}
	return nil
}

// DecodeJSON decodes one JSON object into the struct w points to, refusing
// unknown fields and anything after the object: what a record version
// does not define is an error, never ignored. With allFields, every field
// of w (and of the structs in it) without omitempty or omitzero in its tag
// must be present too.
func DecodeJSON(payload []byte, w any, allFields bool) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(w); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("bytes after the record's JSON object")
	}
	if allFields {
		return requireFields(payload, reflect.TypeOf(w).Elem(), "")
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// requireFields checks that the JSON object obj has every field of struct
// type t that is not optional, recursively (into structs, pointers to
// them, the elements of slices and arrays of them, and the fields of
// embedded structs, which JSON holds in the same object); path names the
// object.
func requireFields(obj []byte, t reflect.Type, path string) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(obj, &fields); err != nil {
		return err
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			if err := requireFields(obj, f.Type, path); err != nil {
				return err
			}
			continue
		}
		if !f.IsExported() || name == "-" || strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
			continue
		}
		if name == "" {
			name = f.Name
		}
		raw, ok := fields[name]
		if !ok {
			return fmt.Errorf("field %q missing", path+name)
		}
		if err := requireIn(raw, f.Type, path+name); err != nil {
			return err
		}
	}
	return nil
}

// requireIn checks the fields of the structs in the JSON value raw of type
// t, named path; null stands for an absent pointer, slice or map.
func requireIn(raw json.RawMessage, t reflect.Type, path string) error {
	if t.Kind() == reflect.Pointer {
		if string(raw) == "null" {
			return nil
		}
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return requireFields(raw, t, path+".")
	case reflect.Slice, reflect.Array:
		et := t.Elem()
		if et.Kind() == reflect.Pointer {
			et = et.Elem()
		}
		if et.Kind() != reflect.Struct || string(raw) == "null" {
			return nil
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return err
		}
		for i, e := range elems {
			if err := requireIn(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// KeyString renders a key for messages: Go-quoted, so the \x00 separators
// and binary fields show.
func KeyString(k []byte) string { return strconv.Quote(string(k)) }

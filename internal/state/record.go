package state

import (
	"fmt"
	"strconv"
)

// Record framing (docs/format/state.md). Each record family is encoded by
// the package that writes it; those with a version start with one version
// byte, 1 or more, followed by that version's payload. Records written
// before versions existed are JSON objects, so their first byte is '{':
// they are version 0, which families that used to be JSON keep reading.
// '{' (0x7b) is therefore never used as a version byte.

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
	return fmt.Sprintf("record of unknown version byte 0x%02x; this server reads versions 1 to %d and JSON records of version 0", e.Version, e.Max)
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

// KeyString renders a key for messages: Go-quoted, so the \x00 separators
// and binary fields show.
func KeyString(k []byte) string { return strconv.Quote(string(k)) }

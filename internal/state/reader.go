package state

import (
	"encoding/binary"
	"fmt"
)

// Reader reads the big-endian fields of a binary record payload. The first
// shortfall or failed check is kept in Err, and every later read returns
// zero, so a decoder reads every field and checks Err once (Done).
type Reader struct {
	b   []byte
	Err error
}

// NewReader returns a Reader of b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Take returns the next n bytes (aliasing the payload), or nil.
func (r *Reader) Take(n int) []byte {
	if r.Err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.Err = fmt.Errorf("truncated: %d bytes left where %d are needed", len(r.b), n)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// U8 reads one byte.
func (r *Reader) U8() uint8 {
	if b := r.Take(1); b != nil {
		return b[0]
	}
	return 0
}

// U16 reads two bytes.
func (r *Reader) U16() uint16 {
	if b := r.Take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

// U32 reads four bytes.
func (r *Reader) U32() uint32 {
	if b := r.Take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// U64 reads eight bytes.
func (r *Reader) U64() uint64 {
	if b := r.Take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// I64 reads eight bytes as a signed number.
func (r *Reader) I64() int64 { return int64(r.U64()) }

// Str reads a string prefixed by its four-byte length.
func (r *Reader) Str() string { return string(r.Take(int(r.U32()))) }

// Count reads a four-byte count of items of at least size bytes each and
// checks that the rest of the payload can hold them, before anything is
// allocated for them; 0 after an error.
func (r *Reader) Count(size int) int {
	n := r.U32()
	if r.Err == nil && uint64(n)*uint64(size) > uint64(len(r.b)) {
		r.Err = fmt.Errorf("%d items of at least %d bytes in %d bytes", n, size, len(r.b))
	}
	if r.Err != nil {
		return 0
	}
	return int(n)
}

// Left returns the bytes not read yet.
func (r *Reader) Left() int { return len(r.b) }

// Fail records a failed check unless an error is recorded already.
func (r *Reader) Fail(format string, args ...any) {
	if r.Err == nil {
		r.Err = fmt.Errorf(format, args...)
	}
}

// Done returns the first error, or an error if bytes are left over.
func (r *Reader) Done() error {
	if r.Err == nil && len(r.b) > 0 {
		return fmt.Errorf("%d bytes after the record", len(r.b))
	}
	return r.Err
}

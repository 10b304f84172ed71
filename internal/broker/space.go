package broker

import (
	"errors"
	"sync"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// Front-end spaces. A protocol front end (Kafka) keeps records of its own in
// the state store: its own records under its prefix, and records it keeps
// with a subscription (CommitStream, StreamState), which are deleted with
// the subscription and with its topic. The broker stores them as given and
// never reads them: their format, versions included, is the front end's
// (docs/format/state.md). Spaces are allocated in internal/state.

// Space is a front end's part of the state store.
type Space struct {
	b      *Broker
	sp     state.Space
	prefix []byte
}

// Record is a record of a space: Key is the front end's (without the
// space's prefix); a nil Value deletes it.
type Record struct {
	Key, Value []byte
}

// Space returns the space of the front end name; it panics if internal/state
// allocates none to that name (a programming error).
func (b *Broker) Space(name string) *Space {
	for _, sp := range state.Spaces {
		if sp.Name == name {
			return &Space{b: b, sp: sp, prefix: []byte(sp.Prefix)}
		}
	}
	panic("broker: no state-store space for front end " + name)
}

// key returns the store key of one of the space's own records.
func (sp *Space) key(k []byte) []byte {
	return append(append(make([]byte, 0, len(sp.prefix)+len(k)), sp.prefix...), k...)
}

// Key returns the state-store key of the space's record key, for error
// messages (state.RecordError).
func (sp *Space) Key(k []byte) []byte { return sp.key(k) }

// Get returns a record's value; ok is false if there is none.
func (sp *Space) Get(key []byte) (v []byte, ok bool, err error) {
	v, err = sp.b.cfg.State.Get(sp.key(key))
	switch {
	case errors.Is(err, state.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, errs.Wrap(errs.StorageFailed, err, "read %s", state.KeyString(sp.key(key)))
	}
	return v, true, nil
}

// Scan calls fn for every record whose key starts with prefix, in key order,
// with the key without the space's prefix. Key and value are valid only
// during the call; an error from fn stops the scan and is returned.
func (sp *Space) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return sp.scan(sp.key(prefix), len(sp.prefix), fn)
}

// scan calls fn for every store key starting with prefix, without its first
// n bytes.
func (sp *Space) scan(prefix []byte, n int, fn func(key, value []byte) error) error {
	err := sp.b.cfg.State.Scan(prefix, func(k, v []byte) error {
		if err := fn(k[n:], v); err != nil {
			return &scanError{err}
		}
		return nil
	})
	var fnErr *scanError
	if errors.As(err, &fnErr) {
		return fnErr.err
	}
	if err != nil {
		return errs.Wrap(errs.StorageFailed, err, "scan %s", state.KeyString(prefix))
	}
	return nil
}

// scanError carries an error of a scan's callback through the store
// unwrapped (the store's own errors are storage failures).
type scanError struct{ err error }

func (e *scanError) Error() string { return e.err.Error() }

// Write applies recs in one batch, atomically; with sync it returns once
// they are durable.
func (sp *Space) Write(recs []Record, sync bool) error {
	if len(recs) == 0 {
		return nil
	}
	batch := sp.b.cfg.State.NewBatch()
	for _, r := range recs {
		if r.Value == nil {
			batch.Delete(sp.key(r.Key))
		} else {
			batch.Set(sp.key(r.Key), r.Value)
		}
	}
	if err := batch.Commit(sync); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "write %d records of space %q", len(recs), sp.sp.Name)
	}
	return nil
}

// spaceUpdateMu serializes Space.Update calls (read, change, write), also
// across front ends over one store.
var spaceUpdateMu sync.Mutex

// Update replaces a record with what fn makes of it (old is nil and ok
// false if there is none; a nil result deletes it), serialized with every
// other Update: a read-modify-write no other Update interleaves with. With
// sync it returns once the new value is durable. An error from fn is
// returned and nothing is written.
func (sp *Space) Update(key []byte, sync bool, fn func(old []byte, ok bool) ([]byte, error)) error {
	spaceUpdateMu.Lock()
	defer spaceUpdateMu.Unlock()
	old, ok, err := sp.Get(key)
	if err != nil {
		return err
	}
	v, err := fn(old, ok)
	if err != nil {
		return err
	}
	return sp.Write([]Record{{Key: key, Value: v}}, sync)
}

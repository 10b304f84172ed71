package broker

import (
	"errors"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// Redriven marks (r/<dead-letter topic>\x00<offset:8>, docs/format/state.md)
// say that a dead letter was redriven. The key is the record: the value is
// empty, a version-less layout (version 0). A later version would give it
// a value starting with its version byte, which this server refuses.

// redrivenMark is the value of a redriven mark.
func redrivenMark() []byte { return nil }

// redriven reports whether the dead letter at offset of topic dlq was
// redriven.
func (b *Broker) redriven(dlq string, offset int64) (bool, error) {
	key := state.RedrivenKey(dlq, offset)
	v, err := b.cfg.State.Get(key)
	switch {
	case errors.Is(err, state.ErrNotFound):
		return false, nil
	case err != nil:
		return false, errs.Wrap(errs.StorageFailed, err, "read redriven mark")
	}
	if err := state.Fixed(v, 0); err != nil {
		return false, errs.Wrap(errs.CorruptData, &state.RecordError{Kind: "redriven mark", Key: key, Err: err}, "read redriven mark")
	}
	return true, nil
}

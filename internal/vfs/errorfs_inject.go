package vfs

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
)

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(op Op) error

// MaybeError returns f(op).
func (f InjectorFunc) MaybeError(op Op) error { return f(op) }

// IndexInjector fails exactly one operation: the n-th (counting from 0) of
// those it is asked about, once. It also counts operations, which drives an
// operation-index sweep: run a workload with OnIndex(0), OnIndex(1), … on a
// fresh file system each time, until a run ends with Fired() false; that run
// saw every operation without a failure. It is safe for concurrent use, but
// which operation is the n-th is then up to scheduling.
type IndexInjector struct {
	index int64
	seen  atomic.Int64
	fired atomic.Pointer[Op]
}

// OnIndex returns an IndexInjector that fails operation n (0-based). A
// negative n never fires, which makes it a plain operation counter.
func OnIndex(n int64) *IndexInjector { return &IndexInjector{index: n} }

// MaybeError counts op and fails it if it is operation n.
func (i *IndexInjector) MaybeError(op Op) error {
	if i.seen.Add(1)-1 != i.index {
		return nil
	}
	i.fired.Store(&op)
	return &InjectedError{Op: op}
}

// Index returns n, the index of the operation to fail.
func (i *IndexInjector) Index() int64 { return i.index }

// Seen returns how many operations MaybeError was asked about, including
// the failed one.
func (i *IndexInjector) Seen() int64 { return i.seen.Load() }

// Fired reports whether the injector has failed its operation.
func (i *IndexInjector) Fired() bool { return i.fired.Load() != nil }

// FiredOp returns the operation that was failed, if any.
func (i *IndexInjector) FiredOp() (Op, bool) {
	if op := i.fired.Load(); op != nil {
		return *op, true
	}
	return Op{}, false
}

// OnOp returns an injector that fails every operation for which match
// returns true. On its own it is a filter that fails every matching
// operation; combine it with All to narrow another injector.
func OnOp(match func(Op) bool) Injector {
	return InjectorFunc(func(op Op) error {
		if match(op) {
			return &InjectedError{Op: op}
		}
		return nil
	})
}

// OnKinds returns an injector that fails every operation of the given
// kinds (and nothing if none are given).
func OnKinds(kinds ...OpKind) Injector {
	var set [numOpKinds]bool
	for _, k := range kinds {
		if k >= 0 && k < numOpKinds {
			set[k] = true
		}
	}
	return OnOp(func(op Op) bool { return op.Kind >= 0 && op.Kind < numOpKinds && set[op.Kind] })
}

// OnPath returns an injector that fails every operation whose Op.Path
// satisfies match.
func OnPath(match func(path string) bool) Injector {
	return OnOp(func(op Op) bool { return match(op.Path) })
}

// OnPathContains returns an injector that fails every operation whose
// Op.Path contains substr. An empty substr matches every operation.
func OnPathContains(substr string) Injector {
	return OnPath(func(p string) bool { return strings.Contains(p, substr) })
}

// All returns an injector that fails an operation only if every one of
// injs does. The injectors are asked in order and asking stops at the
// first that returns nil, so a stateful injector placed last (OnIndex,
// Randomly) only sees the operations that passed the filters before it:
// All(OnKinds(OpFileSync), OnIndex(2)) fails the third sync. The error is
// the last injector's. With no injectors it fails every operation.
func All(injs ...Injector) Injector {
	return InjectorFunc(func(op Op) error {
		var err error
		for _, inj := range injs {
			if err = inj.MaybeError(op); err == nil {
				return nil
			}
		}
		if len(injs) == 0 {
			return &InjectedError{Op: op}
		}
		return err
	})
}

// Any returns an injector that fails an operation if one of injs does,
// with the error of the first that does. Asking stops there: the
// injectors after it do not see the operation. With no injectors it never
// fails.
func Any(injs ...Injector) Injector {
	return InjectorFunc(func(op Op) error {
		for _, inj := range injs {
			if err := inj.MaybeError(op); err != nil {
				return err
			}
		}
		return nil
	})
}

// Randomly returns an injector that fails each operation with probability
// p, drawing from a generator seeded with seed: the same seed and the same
// sequence of operations give the same failures. p <= 0 never fails and
// p >= 1 always does. It is safe for concurrent use, though the sequence
// then depends on scheduling.
func Randomly(p float64, seed uint64) Injector {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return InjectorFunc(func(op Op) error {
		mu.Lock()
		hit := rng.Float64() < p
		mu.Unlock()
		if hit {
			return &InjectedError{Op: op}
		}
		return nil
	})
}

// ShortWrite wraps inj so that the errors it injects on OpFileWrite become
// short writes: ErrorFS first writes a random prefix of the buffer to the
// inner file (floor(f*len(p)) bytes for f drawn uniformly from [0, 1) with
// a generator seeded by seed, so possibly none) and then returns the
// number written and the error, a *ShortWriteError wrapping inj's error.
// Errors on other operations pass through unchanged.
func ShortWrite(inj Injector, seed uint64) Injector {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed^0x6a09e667f3bcc908))
	return InjectorFunc(func(op Op) error {
		err := inj.MaybeError(op)
		if err == nil || op.Kind != OpFileWrite {
			return err
		}
		var sw *ShortWriteError
		if errors.As(err, &sw) {
			return err
		}
		mu.Lock()
		frac := rng.Float64()
		mu.Unlock()
		return &ShortWriteError{Err: err, Frac: frac}
	})
}

// StickyInjector models a dead disk: once its inner injector fails an
// operation, it fails every later operation too, without asking the inner
// injector again. Build one with Sticky.
type StickyInjector struct {
	inj  Injector
	dead atomic.Bool
}

// Sticky returns a StickyInjector over inj. Without it, an injector fails
// only the operations it chooses.
func Sticky(inj Injector) *StickyInjector { return &StickyInjector{inj: inj} }

// MaybeError fails op if the disk is dead, otherwise asks the inner
// injector and dies if it fails op.
func (s *StickyInjector) MaybeError(op Op) error {
	if s.dead.Load() {
		return &InjectedError{Op: op}
	}
	err := s.inj.MaybeError(op)
	if err != nil {
		s.dead.Store(true)
	}
	return err
}

// Dead reports whether an error has fired.
func (s *StickyInjector) Dead() bool { return s.dead.Load() }

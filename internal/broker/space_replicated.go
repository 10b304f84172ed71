package broker

import (
	"encoding/binary"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// Replicated spaces. A front end whose records must be the same on every
// node of a cluster (the schema registry's) keeps them in a replicated
// space (state.Space.Replicated) and changes them only through Decide: the
// change is applied at once on a single node, and on a cluster ordered
// through the metadata group like every catalog change, which applies it
// on every node. The front end's SpaceApplier decides what each change
// writes from what the space holds, the same way on every node; its
// records go into the catalog's snapshots, and a node that restores one
// is told (SpaceRestored) so that it rereads them.

// SpaceApplier applies a replicated space's changes.
type SpaceApplier interface {
	// ApplySpace decides an encoded change: the records it writes (a nil
	// value deletes) or a refusal, which every node reaches alike. It
	// must depend only on the change and on the space's records, which
	// are as every earlier change left them. Once the records are durable
	// the broker calls done (when not nil), with no broker lock held;
	// when writing them failed, done is not called.
	ApplySpace(change []byte) (recs []Record, done func(), err error)
	// SpaceRestored is called after the space's records were replaced
	// by a metadata snapshot's.
	SpaceRestored() error
}

// SetApplier makes a the applier of the replicated space's changes. It
// must be set before the broker applies any (before a cluster node
// starts): a node that cannot apply a change would diverge.
func (sp *Space) SetApplier(a SpaceApplier) {
	if !sp.sp.Replicated {
		panic("broker: space " + sp.sp.Name + " is not replicated")
	}
	sp.b.appliersMu.Lock()
	defer sp.b.appliersMu.Unlock()
	if sp.b.appliers == nil {
		sp.b.appliers = map[string]SpaceApplier{}
	}
	sp.b.appliers[sp.sp.Name] = a
}

// Decide makes a change of the replicated space: applied at once on a
// single node, ordered through the metadata group on a cluster. It
// returns once this node applied it, with the applier's outcome.
func (sp *Space) Decide(change []byte) error {
	if !sp.sp.Replicated {
		return errs.New(errs.InvalidArgument, "space %q is not replicated", sp.sp.Name)
	}
	b := sp.b
	if b.cfg.Meta == nil {
		return b.applySpace(sp.sp.Name, change, nil)
	}
	return b.metaCommit(encodeSpaceChange(sp.sp.Name, change))
}

// encodeSpaceChange encodes a replicated space's change as an entry of
// the metadata group: the kind, the space's name (uint32 length ‖ bytes),
// then the change as the space encodes it.
func encodeSpaceChange(name string, change []byte) []byte {
	data := []byte{byte(changeSpace)}
	data = binary.BigEndian.AppendUint32(data, uint32(len(name)))
	data = append(data, name...)
	return append(data, change...)
}

func (b *Broker) spaceAppliers() []SpaceApplier {
	b.appliersMu.Lock()
	defer b.appliersMu.Unlock()
	out := make([]SpaceApplier, 0, len(b.appliers))
	for _, a := range b.appliers {
		out = append(out, a)
	}
	return out
}

// applySpace applies a change of the named replicated space, writing its
// records with stamps in one batch.
func (b *Broker) applySpace(name string, change []byte, stamps []catalog.Stamp) error {
	var sp state.Space
	for _, s := range state.Spaces {
		if s.Name == name && s.Replicated {
			sp = s
		}
	}
	if sp.Name == "" {
		return errs.New(errs.InvalidArgument, "space change for unknown space %q", name)
	}
	b.appliersMu.Lock()
	a := b.appliers[name]
	b.appliersMu.Unlock()
	if a == nil {
		return errs.New(errs.Unavailable, "space %q has no applier on this node", name)
	}
	// One change at a time: a cluster's metadata worker applies them in
	// order anyway; on a single node, concurrent Decides must not
	// interleave an applier's read, write and done.
	b.spaceApplyMu.Lock()
	defer b.spaceApplyMu.Unlock()
	recs, done, err := a.ApplySpace(change)
	if err != nil {
		return err
	}
	bt := b.cfg.State.NewBatch()
	for _, r := range recs {
		k := append([]byte(sp.Prefix), r.Key...)
		if r.Value == nil {
			bt.Delete(k)
		} else {
			bt.Set(k, r.Value)
		}
	}
	for _, st := range stamps {
		st(bt)
	}
	if err := bt.Commit(true); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "write %d records of space %q", len(recs), name)
	}
	if done != nil {
		done()
	}
	return nil
}

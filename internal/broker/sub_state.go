package broker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/group"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/state"
)

// Consumer state: what a subscription's consumers have done — committed
// offsets (with a front end's records kept beside them, such as Kafka's
// commit metadata), halts, queue snapshots and parked messages. A single
// node writes it to its state store directly. A cluster orders it through
// the metadata group like a catalog change, and every node applies it, so
// that the node that coordinates subscriptions after a failover holds the
// state its predecessor acknowledged.
//
// On a cluster one node coordinates every subscription: the metadata
// group's leader, once it applied everything committed before its term
// (SetCoordinator). It alone serves sessions, leases, commits and resets,
// and runs the queue machinery; the others refuse them with an Unavailable
// error naming it, as Kafka brokers answer NOT_COORDINATOR. Each write
// carries the metadata term its coordinator proposed it in, and applying
// refuses a write whose entry was appended in another term: a deposed
// coordinator that has not noticed yet cannot overwrite its successor's
// state (the same on every node, since every node sees the entry's term).

// subWrite is one write of a subscription's consumer state: records set or
// deleted, each under one of the subscription's own key prefixes (or the
// redriven marks of its dead-letter topic). Applying
// it also updates what memory keeps of those records (committed offsets,
// halts, queue floors).
type subWrite struct {
	topic, sub string
	created    time.Time // the subscription's incarnation
	term       uint64    // cluster: the coordinator's metadata term (set before writeSub: the term it must still be)
	ops        []subOp

	// s is the subscription written, when the write is made on this node
	// (not encoded): applied at once, it needs no lookup by name, which
	// a closing broker refuses — and Close persists queues' last progress.
	s *subscription
}

type subOp struct {
	key, value []byte // value nil: delete
}

func (s *subscription) newWrite() *subWrite {
	return &subWrite{topic: s.meta.Topic, sub: s.meta.Name, created: s.meta.Created, s: s}
}

func (w *subWrite) set(k, v []byte) {
	if v == nil {
		v = []byte{} // an empty record, not a delete
	}
	w.ops = append(w.ops, subOp{key: k, value: v})
}

func (w *subWrite) del(k []byte) { w.ops = append(w.ops, subOp{key: k}) }
func (w *subWrite) empty() bool  { return len(w.ops) == 0 }

// writeSub stores w durably: at once on a single node, through the
// metadata group on a cluster (only on the coordinator). When it returns
// nil, memory reflects w too. The caller must not hold s.mu.
func (b *Broker) writeSub(w *subWrite) error {
	if w.empty() {
		return nil
	}
	if b.cfg.Meta == nil {
		return b.applySubWrite(w, 0, nil)
	}
	term := b.coordTerm.Load()
	if term == 0 || (w.term != 0 && w.term != term) {
		return b.notCoordinator()
	}
	w.term = term
	return b.metaCommit(encodeSubWrite(w))
}

// applySubWrite applies a write: entryTerm is the metadata entry's term on
// a cluster (0 on a single node); stamps go in the same batch.
func (b *Broker) applySubWrite(w *subWrite, entryTerm uint64, stamps []catalog.Stamp) error {
	if entryTerm != 0 && w.term != entryTerm {
		return errs.New(errs.Unavailable, "the subscription coordinator changed (term %d, now %d); retry on the new one", w.term, entryTerm)
	}
	s := w.s
	if s == nil {
		var err error
		if _, s, err = b.sub(w.topic, w.sub); err != nil {
			return err
		}
	}
	if !s.meta.Created.Equal(w.created) {
		return errs.New(errs.SubNotFound, "subscription %q on topic %q not found", w.sub, w.topic)
	}
	prefixes := append(subStatePrefixes(w.topic, w.sub), state.RedrivenPrefix(s.deadLetterTopic()))
	bt := b.cfg.State.NewBatch()
	for _, op := range w.ops {
		if !hasAnyPrefix(op.key, prefixes) {
			return errs.New(errs.InvalidArgument, "consumer state write for %s/%s names a key outside the subscription", w.topic, w.sub)
		}
		if op.value == nil {
			bt.Delete(op.key)
		} else {
			bt.Set(op.key, op.value)
		}
	}
	for _, st := range stamps {
		st(bt)
	}
	// A cluster's metadata log is durable before an entry is applied, and a
	// restart applies again what the applied index does not cover.
	if err := bt.Commit(entryTerm == 0); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "store consumer state of %s/%s", w.topic, w.sub)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	offPrefix, haltPrefix, queuePrefix := state.OffsetPrefix(w.topic, w.sub), state.HaltPrefix(w.topic, w.sub), state.QueuePrefix(w.topic, w.sub)
	for _, op := range w.ops {
		switch {
		case bytes.HasPrefix(op.key, offPrefix) && op.value != nil:
			p := state.PartitionOfOffsetKey(op.key)
			if off, err := catalog.DecodeOffset(op.key, op.value); err == nil && p >= 0 && int(p) < len(s.committed) {
				s.committed[p] = off
			}
		case bytes.HasPrefix(op.key, haltPrefix) && len(op.key) == len(haltPrefix)+4:
			p := int32(binary.BigEndian.Uint32(op.key[len(haltPrefix):]))
			if op.value == nil {
				delete(s.halts, p)
			} else if h, err := decodeHalt(op.key, op.value); err == nil {
				if s.halts == nil {
					s.halts = map[int32]Halt{}
				}
				s.halts[p] = h
			}
		case bytes.HasPrefix(op.key, queuePrefix) && op.value != nil && len(op.key) == len(queuePrefix)+4:
			p := int32(binary.BigEndian.Uint32(op.key[len(queuePrefix):]))
			if snap, err := decodeSnapshot(op.key, op.value); err == nil && p >= 0 && int(p) < len(s.committed) {
				s.committed[p] = snap.Floor
				s.followQueueLocked(p, snap)
			}
		}
	}
	return nil
}

// subStatePrefixes are the key prefixes of a subscription's consumer
// state.
func subStatePrefixes(topic, sub string) [][]byte {
	out := [][]byte{state.OffsetPrefix(topic, sub), state.HaltPrefix(topic, sub), state.QueuePrefix(topic, sub),
		state.ParkPrefix(topic, sub), state.ParkIndexPrefix(topic, sub), state.LedgerPrefix(topic, sub), state.LedgerExpiryPrefix(topic, sub)}
	return append(out, state.SpaceSubPrefixes(topic, sub)...)
}

func hasAnyPrefix(k []byte, prefixes [][]byte) bool {
	for _, p := range prefixes {
		if bytes.HasPrefix(k, p) && len(k) > len(p) {
			return true
		}
	}
	return false
}

// The encoding of a subscription write (change kind sub-state, after the
// kind byte): topic, sub, created (unix ns, int64), term (uint64), count
// (uint32), then per op: key, a flag (1: set, 0: delete), value if set;
// strings as uint32 length ‖ bytes.
func encodeSubWrite(w *subWrite) []byte {
	out := []byte{byte(changeSubState)}
	str := func(s []byte) { out = append(binary.BigEndian.AppendUint32(out, uint32(len(s))), s...) }
	str([]byte(w.topic))
	str([]byte(w.sub))
	out = binary.BigEndian.AppendUint64(out, uint64(w.created.UnixNano()))
	out = binary.BigEndian.AppendUint64(out, w.term)
	out = binary.BigEndian.AppendUint32(out, uint32(len(w.ops)))
	for _, op := range w.ops {
		str(op.key)
		if op.value == nil {
			out = append(out, 0)
		} else {
			out = append(out, 1)
			str(op.value)
		}
	}
	return out
}

func decodeSubWrite(r *state.Reader) (*subWrite, error) {
	w := &subWrite{topic: r.Str(), sub: r.Str()}
	w.created = time.Unix(0, r.I64()).UTC()
	w.term = r.U64()
	n := r.Count(5)
	w.ops = make([]subOp, 0, n)
	for range n {
		op := subOp{key: r.Take(int(r.U32()))}
		switch r.U8() {
		case 0:
		case 1:
			op.value = r.Take(int(r.U32()))
			if op.value == nil {
				op.value = []byte{}
			}
		default:
			return nil, fmt.Errorf("consumer state op flag")
		}
		w.ops = append(w.ops, op)
	}
	return w, r.Done()
}

// notCoordinator is the refusal of a subscription operation on a node
// that does not coordinate subscriptions.
func (b *Broker) notCoordinator() error {
	id, addr := b.cfg.Meta.Coordinator()
	var e *errs.Error
	switch {
	case id == 0:
		e = errs.New(errs.Unavailable, "the cluster has no subscription coordinator right now (a metadata election); retry")
	case addr != "":
		e = errs.New(errs.Unavailable, "this node does not coordinate subscriptions: node %d does, at http://%s; connect there", id, addr)
	default:
		e = errs.New(errs.Unavailable, "this node does not coordinate subscriptions: node %d does", id)
	}
	e.NotCoordinator = &errs.NotCoordinator{Node: id, Addr: addr}
	return e
}

// checkCoordinator returns nil where subscriptions are served: a single
// node, or the cluster's coordinator.
func (b *Broker) checkCoordinator() error {
	if b.cfg.Meta == nil || b.coordTerm.Load() != 0 {
		return nil
	}
	return b.notCoordinator()
}

// Clustered reports whether the broker is a cluster node (its catalog and
// consumer state go through a metadata group).
func (b *Broker) Clustered() bool { return b.cfg.Meta != nil }

// CoordinatorTerm returns the metadata term in which this node coordinates
// subscriptions (0: it does not, or a single node).
func (b *Broker) CoordinatorTerm() uint64 { return b.coordTerm.Load() }

// SetCoordinator makes this node the cluster's subscription coordinator in
// metadata term term, having applied every entry before it, or (term 0)
// ends that. Either way every session ends (members join again, on the
// coordinator), leases are forgotten — their messages become deliverable
// again — and group memberships start over. A new coordinator rebuilds
// queue subscriptions' state from what the metadata group applied.
func (b *Broker) SetCoordinator(term uint64) {
	if b.cfg.Meta == nil || b.coordTerm.Load() == term {
		return
	}
	b.coordTerm.Store(0) // nothing is served while the state changes hands
	for _, t := range b.topicList() {
		t.subsMu.Lock()
		subs := make([]*subscription, 0, len(t.subs))
		for _, s := range t.subs {
			subs = append(subs, s)
		}
		t.subsMu.Unlock()
		for _, s := range subs {
			if err := s.handOver(term != 0); err != nil {
				b.logger.Error("cluster: rebuilding a subscription's state failed; it is not served until this node coordinates again",
					"topic", s.meta.Topic, "subscription", s.meta.Name, "err", err)
			}
		}
	}
	if term != 0 {
		b.coordTerm.Store(term)
		b.queueWake()
	}
	b.logger.Info("cluster: subscription coordination changed", "coordinating", term != 0, "term", term)
}

// handOver ends the subscription's sessions, leases and memberships; with
// load, it rebuilds its queue state from the store.
func (s *subscription) handOver(load bool) error {
	var nq *queueState
	if s.q != nil {
		s.q.ioMu.Lock()
		defer s.q.ioMu.Unlock()
		if load {
			s.mu.Lock()
			committed := slices.Clone(s.committed)
			s.mu.Unlock()
			var err error
			if nq, err = s.newQueueState(committed); err != nil {
				return err
			}
		}
	}
	nparts := len(s.t.logs())
	if s.q != nil {
		nparts = 0
	}
	coord, err := group.New(group.Config{IDNonce: s.t.b.nonce}, nparts)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		sess.closeLocked(errs.New(errs.Unavailable, "subscription coordination moved to another node; join again"))
	}
	s.coord = coord
	if q := s.q; q != nil && nq != nil {
		q.cfg, q.maxInFlight, q.limiter, q.dlq, q.ledger = nq.cfg, nq.maxInFlight, nq.limiter, nq.dlq, nq.ledger
		q.parts, q.inFlight, q.leasesBy = nq.parts, 0, map[string]int{}
		q.outbox, q.blocked, q.loadedDue = nil, nil, 0
		for _, qp := range q.parts {
			s.committed[qp.id] = qp.core.Stats(s.t.b.clock.Now()).Floor
		}
		q.pulls.notify()
	}
	return nil
}

// followQueueLocked keeps a queue partition's core in step with the
// coordinator's snapshots on a node that does not coordinate, so that it
// describes the queue as stored (a new coordinator rebuilds its cores from
// the store anyway).
func (s *subscription) followQueueLocked(p int32, snap queue.Snapshot) {
	b := s.t.b
	if b.cfg.Meta == nil || b.coordTerm.Load() != 0 || s.q == nil || int(p) >= len(s.q.parts) {
		return
	}
	core, err := queue.New(s.q.cfg, snap, rand.New(rand.NewPCG(uint64(b.clock.Now().UnixNano()), uint64(p))))
	if err != nil {
		return
	}
	s.q.parts[p].core = core
}

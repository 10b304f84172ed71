package broker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
)

// Replicated partitions (a cluster). A partition's log is then the log of
// its raft group: the leader proposes each record batch; the group's log
// stores it (numbering its offsets, as every replica's log does alike,
// since their logs are the same) and raft commits it once a quorum holds
// it durably; then the broker answers the publish and moves the log's
// read limit, so that readers see only committed records. A node that
// does not lead a partition refuses publishes to it (NotLeader).
//
// The leader matches its proposals to the committed entries by order:
// within one term every data entry of the log is one of the leader's
// proposals, in the order proposed (raft does not forward followers'
// proposals in these groups). A term change fails the waiting proposals
// (their outcome is unknown: they may still commit under the next leader;
// idempotent producers' retries are recognised by their sequences, and
// messages' ids by the de-duplication window).
//
// A new leader takes publishes only once every data entry its log holds
// is committed (ready): its predecessors' tail commits with its own first
// entry, a round trip after the election. Until then what is derived from
// the log — the idempotent producers' sequences, the ids of the
// de-duplication window — could miss a batch that is about to commit, and
// a retry of it would be stored twice.

// Replicator starts the raft groups of partitions (nil: a single node).
type Replicator interface {
	// Place checks a replication factor (0: the cluster's default) and
	// chooses the replicas of partitions [from, to) of the topic with this
	// id; it returns the factor and one assignment per partition. Called
	// by the node that builds the catalog change, which records them.
	Place(topicID string, replicas int32, from, to int32) (int32, []catalog.PartitionAssignment, error)
	// CheckReplicas checks that every node of a replica list is a node of
	// the cluster.
	CheckReplicas(voters []uint64) error
	// StartPartition starts the group of partition p of the topic with
	// this id over its log (opened replicated), with the replicas the
	// catalog assigns it (zero: a partition created before replication
	// factors). committed is called on the group's worker with every
	// committed record batch, in log order, and its term; with nil once
	// the group stopped on this node (its log failed: nothing more
	// commits here).
	StartPartition(topicID, topicName string, p int32, asg catalog.PartitionAssignment, log *seglog.Log, committed func(b []byte, term uint64)) (PartitionGroup, error)
}

// PartitionGroup is a partition's raft group on this node.
type PartitionGroup interface {
	// Propose queues one record batch for the group's leader (this node)
	// to propose, after those queued before; dropped is called if raft
	// refuses it. An error when the group stopped.
	Propose(b []byte, dropped func(error)) error
	// Leader returns the group's leader as this node last saw it (0:
	// none), the term, and whether that is this node.
	Leader() (lead, term uint64, self bool)
	// NodeAddr returns the native API address node id advertises ("":
	// unknown).
	NodeAddr(id uint64) string
	// SetAssignment tells the group the replicas the catalog assigns it
	// now (a reassignment, applied on every node).
	SetAssignment(asg catalog.PartitionAssignment)
	// Replicas returns the group's voters as this node knows them, those
	// of them in sync (what the leader sees; elsewhere the voters), and
	// its learners.
	Replicas() (voters, inSync, learners []uint64)
	// Stop stops the group on this node (before its log is closed).
	Stop()
}

// replica is a replicated partition's proposing side on this node.
type replica struct {
	g   PartitionGroup
	log *seglog.Log

	proposeMu sync.Mutex // orders proposals with their waiters

	mu      sync.Mutex
	term    uint64        // the term of the waiters (and of next)
	next    int64         // the offset the next proposal gets, in term
	waiters []*replWaiter // proposals of term, in order, not yet committed
	failed  error         // set when the group stopped
	broken  error         // set when the group stopped on its own (the log failed)

	readyTerm atomic.Uint64 // the latest term in which this node leads and is ready
	idsTerm   atomic.Uint64 // the term in which the de-duplication window last took in this partition's log
	idsMu     sync.Mutex    // one catch-up of the window at a time
}

type replWaiter struct {
	base, last int64
	done       chan struct{}
	err        error
}

// errNotLeader is the refusal of a publish on a node that does not lead
// the partition; it names the leader (errs.NotLeader) for clients to
// route to.
func errNotLeader(topic string, p int32, lead uint64, addr string) error {
	var e *errs.Error
	switch {
	case lead == 0:
		e = errs.New(errs.Unavailable, "partition %s/%d has no leader right now (an election); retry", topic, p)
	case addr != "":
		e = errs.New(errs.Unavailable, "this node does not lead partition %s/%d: node %d does, at http://%s; send it there", topic, p, lead, addr)
	default:
		e = errs.New(errs.Unavailable, "this node does not lead partition %s/%d (node %d does); send it there", topic, p, lead)
	}
	e.NotLeader = &errs.NotLeader{Topic: topic, Partition: p, Node: lead, Addr: addr}
	return e
}

// errNotReady is the refusal of a publish by a leader that is not ready.
func errNotReady(topic string, p int32) error {
	e := errs.New(errs.Unavailable, "partition %s/%d: this node has just become its leader and is committing its predecessor's entries; retry", topic, p)
	e.RetryAfter = 20 * time.Millisecond
	return e
}

// ready reports whether this node, leading the partition in term, takes
// publishes: every data entry of its log is committed (then, for the rest
// of the term, it stays ready).
func (r *replica) ready(term uint64) bool {
	got := r.readyTerm.Load()
	if got == term {
		return true
	}
	if got > term || r.log.EndOffset() < r.log.NextOffset() {
		return false
	}
	for !r.readyTerm.CompareAndSwap(got, term) {
		if got = r.readyTerm.Load(); got >= term {
			return got == term
		}
	}
	return true
}

// submit proposes the record batches of b (one or more) and returns what
// waits for all of them to commit.
// With ids (messages with ids among them) the de-duplication window must
// hold the partition's ids of this term (catchUpIDs).
func (r *replica) submit(topic string, p int32, b []byte, ids bool) (*replPending, error) {
	r.proposeMu.Lock()
	defer r.proposeMu.Unlock()
	r.mu.Lock()
	broken := r.broken
	r.mu.Unlock()
	if broken != nil {
		e := errs.Wrap(errs.Unavailable, broken, "partition %s/%d: this node's replica failed and takes no part in the partition; another node leads it", topic, p)
		e.NotLeader = &errs.NotLeader{Topic: topic, Partition: p}
		return nil, e
	}
	lead, term, self := r.g.Leader()
	if !self {
		return nil, errNotLeader(topic, p, lead, r.g.NodeAddr(lead))
	}
	if !r.ready(term) {
		return nil, errNotReady(topic, p)
	}
	if ids && r.idsTerm.Load() != term {
		// The leadership changed since the request's ids were looked up.
		return nil, errs.New(errs.Unavailable, "partition %s/%d changed leader while the publish was checked; retry", topic, p)
	}
	r.mu.Lock()
	if r.failed != nil {
		r.mu.Unlock()
		return nil, errs.Wrap(errs.Unavailable, r.failed, "partition %s/%d", topic, p)
	}
	if term != r.term {
		r.failWaitersLocked(errs.New(errs.Unavailable, "partition %s/%d changed leader; the publish may or may not be stored: retry", topic, p))
		r.term, r.next = term, -1
	}
	if r.next < 0 && len(r.waiters) == 0 {
		// Nothing queued: the log tells the next offset. (With proposals
		// queued after a refused one, predictions stay off until they
		// drain; the log numbers the batches anyway.)
		r.next = r.log.NextOffset()
	}
	r.mu.Unlock()
	pend := &replPending{}
	b = slices.Clone(b) // raft keeps the batches; one copy for all of them
	for bt, err := range batch.Batches(b) {
		if err != nil {
			return nil, errs.Wrap(errs.InvalidArgument, err, "record batch")
		}
		one := bt.Bytes[:len(bt.Bytes):len(bt.Bytes)]
		r.mu.Lock()
		w := &replWaiter{base: r.next, last: r.next + int64(bt.Header.LastOffsetDelta), done: make(chan struct{})}
		r.waiters = append(r.waiters, w)
		r.next = w.last + 1
		r.mu.Unlock()
		err := r.g.Propose(one, func(err error) {
			r.drop(w, errs.Wrap(errs.Unavailable, err, "partition %s/%d: proposal refused (a leader change); retry", topic, p))
		})
		if err != nil {
			r.drop(w, errs.Wrap(errs.Unavailable, err, "partition %s/%d", topic, p))
		}
		pend.ws = append(pend.ws, w)
	}
	return pend, nil
}

// drop fails a proposal raft refused, or that could not be queued.
func (r *replica) drop(w *replWaiter, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := slices.Index(r.waiters, w); i >= 0 {
		r.waiters = slices.Delete(r.waiters, i, i+1)
		w.err = err
		close(w.done)
		r.next = -1 // the offsets after it are not what was predicted
	}
}

// committed is the group's callback: a committed batch moves the read
// limit, and answers this node's proposal if it is one.
func (r *replica) committed(b []byte, term uint64) {
	if b == nil {
		r.groupStopped()
		return
	}
	h, err := batch.ParseHeader(b)
	if err != nil {
		return
	}
	r.log.SetReadLimit(h.LastOffset() + 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if term > r.term && len(r.waiters) > 0 {
		// A term this node's waiters were not proposed in: theirs may
		// still commit, or not.
		r.failWaitersLocked(errs.New(errs.Unavailable, "the partition changed leader; the publish may or may not be stored: retry"))
		return
	}
	if term != r.term || len(r.waiters) == 0 {
		return
	}
	w := r.waiters[0]
	r.waiters = r.waiters[1:]
	if w.base != h.BaseOffset {
		// Cannot happen while this node numbers its proposals as its log
		// does; answer with what the log holds.
		w.base, w.last = h.BaseOffset, h.LastOffset()
	}
	close(w.done)
}

// LeaderWait is how long the native API's topic creation waits, on a
// cluster, for the new partitions' first leaders (AwaitLeaders).
const LeaderWait = 5 * time.Second

// AwaitLeaders waits, on a cluster, until this node knows a leader of
// partitions [from, to) of a topic, until deadline or ctx's end: a front
// end that created them answers then, so that a client publishing at once
// finds them led instead of being refused during their first election.
// Past the deadline the partitions exist all the same; their leaders
// follow. A single node leads every partition: it returns at once.
func (b *Broker) AwaitLeaders(ctx context.Context, name string, from, to int32, deadline time.Time) {
	if b.cfg.Replicator == nil {
		return
	}
	for {
		t, err := b.topic(name)
		if err != nil {
			return
		}
		rs := t.replicas()
		missing := int(to) > len(rs)
		for p := from; p < to && !missing; p++ {
			lead, _, _ := rs[p].g.Leader()
			missing = lead == 0
		}
		if !missing || !time.Now().Before(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// checkLeader fails the proposals waiting on a replica whose node no
// longer leads the term they were proposed in (deposed, or stepped down by
// check-quorum when cut off from the partition's majority): they may still
// commit under another leader, or not, and nothing here would answer them
// until entries of a later term commit on this node — which, cut off,
// could take as long as the cut. A waiting publish holds its topic's life
// lock, which a catalog change of the topic needs (the metadata group's
// apply on this node would wait with it). Called by the maintenance loop.
func (r *replica) checkLeader() {
	r.mu.Lock()
	n, term := len(r.waiters), r.term
	r.mu.Unlock()
	if n == 0 {
		return
	}
	if _, lt, self := r.g.Leader(); self && lt == term {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.term == term {
		r.failWaitersLocked(errs.New(errs.Unavailable, "this node stopped leading the partition while the publish waited for a majority of its replicas; it may or may not be stored: retry"))
	}
}

// failWaitersLocked fails every waiting proposal.
func (r *replica) failWaitersLocked(err error) {
	for _, w := range r.waiters {
		w.err = err
		close(w.done)
	}
	r.waiters = nil
}

// groupStopped fails what waits once the group stopped on this node (its
// log failed; the other members go on without it): those proposals may
// still commit under another leader, from the copies it sent, or not.
func (r *replica) groupStopped() {
	cause := r.log.Err()
	if cause == nil {
		cause = errors.New("the partition's raft group stopped")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.broken = cause
	r.failWaitersLocked(errs.Wrap(errs.Unavailable, cause, "this node's replica of the partition failed; the publish may or may not be stored: retry"))
}

// stop stops the group and fails what waits.
func (r *replica) stop() {
	r.g.Stop()
	r.mu.Lock()
	r.failed = errors.New("partition closed")
	r.failWaitersLocked(errs.New(errs.Unavailable, "partition closed; the publish may or may not be stored: retry"))
	r.mu.Unlock()
}

// replPending waits for proposals to commit.
type replPending struct {
	ws []*replWaiter
}

func (rp *replPending) Wait() (seglog.AppendResult, error) {
	for _, w := range rp.ws {
		<-w.done
		if w.err != nil {
			return seglog.AppendResult{}, w.err
		}
	}
	return rp.Result(), nil
}

func (rp *replPending) Result() seglog.AppendResult {
	if len(rp.ws) == 0 {
		return seglog.AppendResult{}
	}
	return seglog.AppendResult{BaseOffset: rp.ws[0].base, LastOffset: rp.ws[len(rp.ws)-1].last}
}

func (rp *replPending) Done() <-chan struct{} {
	if len(rp.ws) == 0 {
		return closedCh
	}
	return rp.ws[len(rp.ws)-1].done
}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// pendingAppend is an append in flight: in the partition's log (a single
// node), or proposed to its group (a replicated partition).
type pendingAppend interface {
	Wait() (seglog.AppendResult, error)
	Result() seglog.AppendResult
	Done() <-chan struct{}
}

// submit queues b (whole record batches) for partition p: in its log, or
// proposed to its group. flush: the caller waits at once (a single node's
// log then writes it itself if no flush is in progress).
// ids: b holds messages with ids (see replica.submit). Every append's
// bytes, the broker's own included, are charged to the free-space gate's
// budget (disk.go).
func (t *topic) submit(p int32, b []byte, flush, ids bool) (pendingAppend, error) {
	t.b.disk.charge(len(b))
	if rs := t.replicas(); rs != nil {
		return rs[p].submit(t.meta.Name, p, b, ids)
	}
	l := t.logs()[p]
	submit := l.Submit
	if flush {
		submit = l.SubmitFlush
	}
	pend, err := submit(b)
	if err != nil {
		return nil, appendError(t.meta.Name, p, err)
	}
	return pend, nil
}

// replicas returns the partitions' replicas (nil: a single node's topic).
func (t *topic) replicas() []*replica {
	if rs := t.repl.Load(); rs != nil {
		return *rs
	}
	return nil
}

// startReplica starts partition p's group over its log, which readers see
// only up to what is committed.
func (t *topic) startReplica(p int32, l *seglog.Log, asg catalog.PartitionAssignment) (*replica, error) {
	l.SetReadLimit(0)
	r := &replica{log: l}
	g, err := t.b.cfg.Replicator.StartPartition(t.meta.ID, t.meta.Name, p, asg, l, r.committed)
	if err != nil {
		return nil, err
	}
	r.g = g
	return r, nil
}

// stopReplicas stops the partitions' groups (before their logs close).
func (t *topic) stopReplicas() {
	for _, r := range t.replicas() {
		r.stop()
	}
}

// PartitionTerm returns the raft term in which this node leads partition p
// of a topic and takes publishes (ready), or 0 (a single node, a follower,
// a leader not ready yet, no such partition). State kept per partition by
// a leader (the idempotent producers') is rebuilt from the log when it
// changes.
func (b *Broker) PartitionTerm(topicName string, p int32) uint64 {
	t, err := b.topic(topicName)
	if err != nil {
		return 0
	}
	rs := t.replicas()
	if p < 0 || int(p) >= len(rs) {
		return 0
	}
	_, term, self := rs[p].g.Leader()
	if !self || !rs[p].ready(term) {
		return 0
	}
	return term
}

// PartitionLeader is a partition's leader and replicas as this node sees
// them.
type PartitionLeader struct {
	Partition int32
	Node      uint64 // 0: none right now (an election)
	Addr      string // the leader's native API address (host:port); "": unknown
	// Replicas are the group's voters, InSync those of them the leader
	// sees caught up (on other nodes: the voters), Learners the nodes
	// that follow it without voting.
	Replicas, InSync, Learners []uint64
}

// PartitionLeaders returns the leaders of a topic's partitions, in
// partition order, or nil on a single node (every partition is here).
func (b *Broker) PartitionLeaders(topicName string) ([]PartitionLeader, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	rs := t.replicas()
	if rs == nil {
		return nil, nil
	}
	out := make([]PartitionLeader, len(rs))
	addrs := map[uint64]string{}
	for p, r := range rs {
		lead, _, _ := r.g.Leader()
		out[p] = PartitionLeader{Partition: int32(p), Node: lead}
		out[p].Replicas, out[p].InSync, out[p].Learners = r.g.Replicas()
		if lead == 0 {
			continue
		}
		addr, ok := addrs[lead]
		if !ok {
			addr = r.g.NodeAddr(lead)
			addrs[lead] = addr
		}
		out[p].Addr = addr
	}
	return out, nil
}

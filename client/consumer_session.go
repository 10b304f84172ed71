package client

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

type workerEventKind uint8

const (
	evProcessed workerEventKind = iota // the handler finished a message
	evExited                           // the worker returned (after all its evProcessed)
	evFatal                            // a handler error under ConsumerStopOnError
	evHalted                           // the partition stops at a failed message (halted, or the report failed)
)

type workerEvent struct {
	part   int32
	kind   workerEventKind
	offset int64      // evProcessed: the offset of the last message of the run
	epoch  uint64     // evProcessed: the partition epoch the run was pushed in
	n      int        // evProcessed: how many consecutive messages the run covers
	err    error      // evFatal
	p      *partition // evExited, evHalted: the partition object (a restarted partition has a new one)
}

// session is a stream-mode session: the core, the owned partitions (each
// with its worker), their progress, commits and revocations. The loop
// goroutine owns every field but sem and the failure handling's.
type session struct {
	sessionCore[workerEvent]
	sem chan struct{} // handler concurrency

	generation  int64
	parts       map[int32]*partition
	revocations []*revocation
	revTimer    *time.Timer
	commitTick  *time.Ticker
	sinceCommit int // messages processed since the last commit
	commitID    uint64
	commits     map[uint64]sentCommit // sent, unanswered

	// Stream failure handling, shared with the workers.
	policy   atomic.Pointer[failurePolicy] // from the latest assignment
	failSeq  atomic.Uint64                 // Failed request ids
	failMu   sync.Mutex
	failWait map[uint64]chan *spoolv1.FailedResult // guarded by failMu
}

func newSession(ctx context.Context, k *Consumer, st *memberState) *session {
	s := &session{
		sem:        make(chan struct{}, k.cfg.concurrency),
		parts:      map[int32]*partition{},
		commits:    map[uint64]sentCommit{},
		failWait:   map[uint64]chan *spoolv1.FailedResult{},
		revTimer:   time.NewTimer(time.Hour),
		commitTick: time.NewTicker(k.cfg.commitInterval),
	}
	s.revTimer.Stop()
	s.init(ctx, k, st, k.cfg.prefetch, s)
	return s
}

func (s *session) opened() {}

func (s *session) closing() {
	for _, p := range s.parts {
		p.cancel()
	}
	s.revTimer.Stop()
	s.commitTick.Stop()
}

// timers: commits and credit every commit interval, and revocation
// deadlines; neither while the workers are being waited for.
func (s *session) timers(waiting bool) (<-chan time.Time, <-chan time.Time) {
	if waiting {
		return nil, nil
	}
	return s.commitTick.C, s.revTimer.C
}

func (s *session) fired(i int) {
	if i == 0 {
		s.commit(nil)
		s.grant()
		return
	}
	s.forceRevocations(time.Now())
}

func (s *session) onResponse(resp *spoolv1.ConsumeResponse) {
	switch kind := resp.GetKind().(type) {
	case *spoolv1.ConsumeResponse_Assignment:
		s.onAssignment(kind.Assignment)
	case *spoolv1.ConsumeResponse_Deliveries:
		for _, m := range messagesFromDeliveries(s.k.topic, kind.Deliveries.GetMessages()) {
			p := s.parts[m.Partition]
			if p == nil || p.stopped || m.Offset < p.skipBelow {
				s.owe(1) // not ours (any more), or processed before a reconnect
				continue
			}
			m.epoch = p.epoch
			p.pending++
			p.push(m)
		}
		for _, n := range kind.Deliveries.GetNext() {
			if p := s.parts[n.GetPartition()]; p != nil && !p.stopped {
				p.cursor = max(p.cursor, n.GetOffset())
				p.catchUp()
			}
		}
	case *spoolv1.ConsumeResponse_CommitResult:
		s.onCommitResult(kind.CommitResult)
	case *spoolv1.ConsumeResponse_FailedResult:
		s.onFailedResult(kind.FailedResult)
	}
}

// onAssignment applies a new assignment: start workers for new partitions,
// stop lost ones, begin revoking the revoked ones. Offsets of partitions
// already owned are not acted on: delivery simply continues.
func (s *session) onAssignment(a *spoolv1.Assignment) {
	first := !s.joined
	s.assigned(a)
	s.generation = a.GetGeneration()
	if s.stopping {
		return // leaving: the stream closes soon and the server reassigns
	}
	s.heartbeatFor(a)
	s.policy.Store(failurePolicyFromProto(a.GetFailurePolicy()))
	resetOnly := map[int32]bool{}
	for _, id := range a.GetResetPartitions() {
		resetOnly[id] = true
	}
	wasReset := func(id int32) bool { return a.GetFromReset() && (len(resetOnly) == 0 || resetOnly[id]) }
	revoke := map[int32]bool{}
	for _, id := range a.GetRevoke() {
		revoke[id] = true
	}
	listed := map[int32]bool{}
	var added []*partition
	for _, po := range a.GetPartitions() {
		id := po.GetPartition()
		listed[id] = true
		if p := s.parts[id]; p != nil && wasReset(id) && !revoke[id] {
			switch {
			case p.halted && p.exited:
				// A halted partition was reset: start it afresh.
				s.restart(p)
			case p.halted:
				p.restart = true // once its worker has exited
			case !p.stopped:
				// The subscription was reset: forget queued messages and
				// progress; delivery restarts at the new offset.
				s.owe(p.reset())
			}
			continue
		}
		if revoke[id] || s.parts[id] != nil {
			continue
		}
		p := newPartition(s.work, id)
		if c, ok := s.st.carry[id]; ok && c > po.GetOffset() {
			p.processed, p.skipBelow = c, c // processed before the reconnect: commit, skip
		}
		added = append(added, p)
	}
	if first {
		clear(s.st.carry)
	}
	var lost []int32
	for id, p := range s.parts {
		if !listed[id] && !revoke[id] && !p.stopped {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		s.k.log.Warn("spool: partitions dropped without a revoke", "partitions", lost, "generation", s.generation)
		s.revoke(lost, true)
	}
	if len(a.GetRevoke()) > 0 {
		s.revoke(a.GetRevoke(), false)
	}
	if len(added) == 0 {
		return
	}
	slices.SortFunc(added, func(a, b *partition) int { return cmp.Compare(a.id, b.id) })
	ids := make([]int32, len(added))
	for i, p := range added {
		ids[i] = p.id
		s.parts[p.id] = p
	}
	s.k.log.Debug("spool: partitions assigned", "partitions", ids, "generation", s.generation)
	if s.cfg.onAssigned != nil {
		s.cfg.onAssigned(s.work, ids)
	}
	for _, p := range added {
		s.wg.Go(func() { s.worker(p) })
	}
	s.commit(nil) // progress carried over a reconnect
}

func (s *session) onWorker(ev workerEvent) {
	p := s.parts[ev.part]
	switch ev.kind {
	case evProcessed:
		s.owe(ev.n)
		if p == nil || ev.epoch != p.epoch {
			return // gone, or from before a reset
		}
		p.pending -= ev.n
		p.processed = ev.offset + 1
		p.catchUp()
		if s.sinceCommit += ev.n; s.sinceCommit >= s.cfg.commitEvery {
			s.commit(nil)
		}
	case evExited:
		if p != nil && p == ev.p {
			p.exited = true
			if p.restart {
				s.restart(p)
			}
		}
		s.checkRevocations()
	case evHalted:
		if p != nil && p == ev.p {
			p.halted = true
			s.stopPartition(p)
			s.commit([]int32{p.id}) // progress up to the failed message
		}
	case evFatal:
		if s.fatal == nil {
			s.fatal = ev.err
		}
	}
}

// commit sends the progress of the given partitions (nil: all) that moved
// since the last commit sent.
func (s *session) commit(only []int32) {
	var offs []*spoolv1.PartitionOffset
	add := func(p *partition) {
		if p != nil && p.processed >= 0 && p.processed != p.sent {
			offs = append(offs, &spoolv1.PartitionOffset{Partition: p.id, Offset: p.processed})
			p.sent = p.processed
		}
	}
	if only == nil {
		for _, p := range s.parts {
			add(p)
		}
	} else {
		for _, id := range only {
			add(s.parts[id])
		}
	}
	if len(offs) == 0 || s.failed() {
		return
	}
	slices.SortFunc(offs, func(a, b *spoolv1.PartitionOffset) int { return cmp.Compare(a.Partition, b.Partition) })
	s.commitID++
	s.commits[s.commitID] = sentCommit{generation: s.generation, offs: offs}
	s.sinceCommit = 0
	s.send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Commit{Commit: &spoolv1.Commit{
		Generation: s.generation,
		Offsets:    offs,
		CommitId:   s.commitID,
	}}})
}

// sentCommit is a commit waiting for its result.
type sentCommit struct {
	generation int64
	offs       []*spoolv1.PartitionOffset
}

// onCommitResult records a commit's result. A failed commit is sent again
// with the next one; one refused for a generation older than the member's
// by now (a rebalance completed meanwhile) is sent again at once, so that
// the last commit of a shutdown is not lost to a rebalance.
func (s *session) onCommitResult(r *spoolv1.CommitResult) {
	sc, ok := s.commits[r.GetCommitId()]
	if !ok {
		return
	}
	delete(s.commits, r.GetCommitId())
	offs := sc.offs
	if info := r.GetError(); info != nil {
		err := errorFromInfo(info, r.GetErrorMessage())
		if err.Code == CodeStaleGeneration {
			s.k.log.Debug("spool: commit with a stale generation (rebalance in progress)", "generation", s.generation)
		} else {
			s.k.log.Warn("spool: commit failed", "err", err)
		}
		var again []int32
		for _, o := range offs {
			if p := s.parts[o.GetPartition()]; p != nil && p.sent == o.GetOffset() {
				p.sent = -1 // send again at the next commit
				again = append(again, p.id)
			}
		}
		if err.Code == CodeStaleGeneration && sc.generation < s.generation && len(again) > 0 {
			s.commit(again)
		}
		return
	}
	for _, o := range offs {
		if p := s.parts[o.GetPartition()]; p != nil {
			p.acked = o.GetOffset()
		}
	}
}

package client

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

const (
	defaultSessionTimeout = 10 * time.Second // the server's, per consume.proto
	finalCommitWait       = 5 * time.Second  // bound on waiting for the last CommitResult
	closeStreamWait       = 2 * time.Second  // bound on waiting for the server to end the stream
	minHeartbeat          = 10 * time.Millisecond
)

// sessionOutcome is how a session ended.
type sessionOutcome struct {
	joined bool  // an Assignment arrived
	err    error // why the stream broke (reconnect)
	fatal  error // Run must return this
}

type recvEvent struct {
	resp *spoolv1.ConsumeResponse
	err  error // the stream ended
}

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

// conn is the plumbing of one Consume stream, shared by stream-mode and
// queue-mode sessions: the stream, the receiver and heartbeat goroutines
// (run by the session, through its wait group) and serialized sends.
type conn struct {
	stream       *connect.BidiStreamForClient[spoolv1.ConsumeRequest, spoolv1.ConsumeResponse]
	cancelStream context.CancelFunc
	done         chan struct{} // closed at teardown: stops the receiver and heartbeats
	recv         chan recvEvent
	hbEvery      atomic.Int64 // heartbeat interval, ns

	sendMu     sync.Mutex
	sendFailed bool // a Send failed: the receiver reports why
}

// initConn prepares c for a stream whose server reads up to prefetch
// messages ahead.
func (c *conn) initConn(prefetch int, sessionTimeout time.Duration) {
	c.done = make(chan struct{})
	c.recv = make(chan recvEvent, min(prefetch, 256)+16) // the server reads and writes independently
	if sessionTimeout == 0 {
		sessionTimeout = defaultSessionTimeout
	}
	c.hbEvery.Store(int64(max(sessionTimeout/3, minHeartbeat)))
}

// openStream opens the stream on base and sends start.
func (c *conn) openStream(k *Consumer, base context.Context, start *spoolv1.ConsumeStart) {
	ctx, cancel := context.WithCancel(base)
	c.stream, c.cancelStream = k.c.consume.Consume(ctx), cancel
	c.send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: start}})
}

// session is one Consume stream: one membership of the subscription. Its
// loop goroutine (the caller of run) owns every field below the mutex
// line; the receiver, the heartbeat goroutine and the partition workers
// talk to it only through channels. All of them are started through s.wg
// and have returned when run returns.
type session struct {
	conn
	k      *Consumer
	cfg    *consumerConfig
	runCtx context.Context // cancelled: shut down gracefully
	st     *memberState
	work   context.Context // handlers' and hooks' base: Run's values, not its cancellation

	wg     sync.WaitGroup
	events chan workerEvent
	sem    chan struct{} // handler concurrency

	joined      bool
	stopping    bool // shutting down or broken: take nothing new
	ended       bool // the receiver reported the stream's end
	generation  int64
	parts       map[int32]*partition
	revocations []*revocation
	revTimer    *time.Timer
	owed        int // credit not yet granted back
	sinceCommit int // messages processed since the last commit
	commitID    uint64
	commits     map[uint64][]*spoolv1.PartitionOffset // sent, unanswered
	fatal       error

	// Stream failure handling, shared with the workers.
	policy   atomic.Pointer[failurePolicy] // from the latest assignment
	failSeq  atomic.Uint64                 // Failed request ids
	failMu   sync.Mutex
	failWait map[uint64]chan *spoolv1.FailedResult // guarded by failMu
}

func newSession(ctx context.Context, k *Consumer, st *memberState) *session {
	s := &session{
		k:        k,
		cfg:      &k.cfg,
		runCtx:   ctx,
		st:       st,
		work:     context.WithoutCancel(ctx),
		events:   make(chan workerEvent, 256),
		sem:      make(chan struct{}, k.cfg.concurrency),
		parts:    map[int32]*partition{},
		commits:  map[uint64][]*spoolv1.PartitionOffset{},
		failWait: map[uint64]chan *spoolv1.FailedResult{},
		revTimer: time.NewTimer(time.Hour),
	}
	s.revTimer.Stop()
	s.initConn(k.cfg.prefetch, k.cfg.sessionTimeout)
	return s
}

// run opens the stream and serves it until shutdown or breakage.
func (s *session) run() sessionOutcome {
	s.open()
	defer s.teardown()
	commitTick := time.NewTicker(s.cfg.commitInterval)
	defer commitTick.Stop()
	for {
		select {
		case <-s.runCtx.Done():
			s.shutdown()
			return sessionOutcome{joined: s.joined}
		case ev := <-s.recv:
			if ev.err != nil {
				s.ended = true
				return s.broken(ev.err)
			}
			s.onResponse(ev.resp)
		case ev := <-s.events:
			s.onWorker(ev)
			if s.fatal != nil {
				s.shutdown()
				return sessionOutcome{joined: s.joined, fatal: s.fatal}
			}
		case <-commitTick.C:
			s.commit(nil)
			s.grant()
		case <-s.revTimer.C:
			s.forceRevocations(time.Now())
		}
	}
}

// open starts the stream with ConsumeStart, the receiver and heartbeats.
func (s *session) open() {
	s.openStream(s.k, s.work, &spoolv1.ConsumeStart{
		Topic:          s.k.topic,
		Subscription:   s.k.sub,
		ClientId:       s.k.c.cfg.clientID,
		MemberId:       s.st.memberID,
		InstanceId:     s.cfg.instanceID,
		SessionTimeout: durationOrNil(s.cfg.sessionTimeout),
		Credits:        int32(s.cfg.prefetch),
	})
	s.wg.Go(s.receive)
	s.wg.Go(s.heartbeat)
}

// teardown stops the stream and every goroutine of the session.
func (s *session) teardown() {
	close(s.done)
	s.cancelStream()
	s.wg.Wait()
	_ = s.stream.CloseResponse()
	for _, p := range s.parts {
		p.cancel()
	}
	s.revTimer.Stop()
}

func (c *conn) receive() {
	for {
		resp, err := c.stream.Receive()
		select {
		case c.recv <- recvEvent{resp: resp, err: convertError(err)}:
		case <-c.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (c *conn) heartbeat() {
	t := time.NewTimer(time.Duration(c.hbEvery.Load()))
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Heartbeat{Heartbeat: &spoolv1.Heartbeat{}}})
			t.Reset(time.Duration(c.hbEvery.Load()))
		}
	}
}

// send sends req unless an earlier Send failed; a failure is reported by
// the receiver, which sees the stream end.
func (c *conn) send(req *spoolv1.ConsumeRequest) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.sendFailed {
		return
	}
	if err := c.stream.Send(req); err != nil {
		c.sendFailed = true
	}
}

// failed reports whether a Send failed.
func (c *conn) failed() bool {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.sendFailed
}

// closeRequests ends the client's side of the stream.
func (c *conn) closeRequests() {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	_ = c.stream.CloseRequest()
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
	s.joined = true
	s.st.memberID = a.GetMemberId()
	s.generation = a.GetGeneration()
	if s.stopping {
		return // leaving: the stream closes soon and the server reassigns
	}
	if d := a.GetSessionTimeout().AsDuration(); d > 0 {
		s.hbEvery.Store(int64(max(d/3, minHeartbeat)))
	}
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

// owe records n messages' credit as grantable, granting it once a quarter
// of the prefetch has built up.
func (s *session) owe(n int) {
	s.owed += n
	if s.owed >= max(1, s.cfg.prefetch/4) {
		s.grant()
	}
}

// grant sends the credit owed.
func (s *session) grant() {
	if s.owed == 0 || s.stopping {
		return
	}
	s.send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Credits{Credits: &spoolv1.Credits{Messages: int32(s.owed)}}})
	s.owed = 0
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
	s.commits[s.commitID] = offs
	s.sinceCommit = 0
	s.send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Commit{Commit: &spoolv1.Commit{
		Generation: s.generation,
		Offsets:    offs,
		CommitId:   s.commitID,
	}}})
}

func (s *session) onCommitResult(r *spoolv1.CommitResult) {
	offs, ok := s.commits[r.GetCommitId()]
	if !ok {
		return
	}
	delete(s.commits, r.GetCommitId())
	if info := r.GetError(); info != nil {
		err := errorFromInfo(info, r.GetErrorMessage())
		if err.Code == CodeStaleGeneration {
			s.k.log.Debug("spool: commit with a stale generation (rebalance in progress)", "generation", s.generation)
		} else {
			s.k.log.Warn("spool: commit failed", "err", err)
		}
		for _, o := range offs {
			if p := s.parts[o.GetPartition()]; p != nil && p.sent == o.GetOffset() {
				p.sent = -1 // send again at the next commit
			}
		}
		return
	}
	for _, o := range offs {
		if p := s.parts[o.GetPartition()]; p != nil {
			p.acked = o.GetOffset()
		}
	}
}

package client

import (
	"context"
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

// conn is the plumbing of one Consume stream: the stream, the receiver and
// heartbeat goroutines (run by the session, through its wait group) and
// serialized sends.
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

// openStream opens the stream on base and sends start, to the
// subscription coordinator when the client knows it (a cluster), else to
// the home node; it returns the node's route.
func (c *conn) openStream(k *Consumer, base context.Context, start *spoolv1.ConsumeStart) string {
	route := k.c.coordinator()
	if route == "" {
		route = k.c.homeRoute()
	}
	ctx, cancel := context.WithCancel(base)
	c.stream, c.cancelStream = k.c.node(route).consume.Consume(ctx), cancel
	defer c.send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: start}})
	return route
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

// sessionMode is what a stream-mode or a queue-mode session adds to the
// core: how it handles what arrives, its workers and timers, and what it
// does with its progress when the session ends. Every method runs on the
// session loop's goroutine. E is the type of the workers' reports.
type sessionMode[E any] interface {
	// opened runs once the stream is open, before the receiver starts.
	opened()
	// closing runs at teardown, before the stream is cancelled and the
	// session's goroutines waited for: release what the workers block on.
	closing()
	onResponse(*spoolv1.ConsumeResponse)
	onWorker(E)
	// timers returns the mode's two timer channels (nil: none) the loop
	// serves; waiting: while it waits for the workers to exit.
	timers(waiting bool) (<-chan time.Time, <-chan time.Time)
	// fired handles the first (0) or second (1) timer.
	fired(i int)
	// exited reports whether every worker has exited.
	exited() bool
	// stopTaking makes the workers take nothing new and exit after their
	// running handlers; lost: the stream is gone.
	stopTaking(lost bool)
	// abandon gives up on the running handlers at the shutdown timeout.
	abandon()
	// flush sends the progress made (commits, acks) at shutdown.
	flush()
	// unanswered is how many progress requests await the server's answer.
	unanswered() int
	// drop forgets the workers' partitions at the end of a shutdown.
	drop()
	// keep saves what the workers did for the next session once the stream
	// broke and they exited.
	keep()
}

// sessionCore is one Consume stream, one membership of the subscription,
// as both modes run it: the loop, the credit granted back, waiting for the
// workers, and the ends of a session (a graceful shutdown; a broken
// stream). Its loop goroutine (the caller of run) owns every field below
// wg; the receiver, the heartbeat goroutine and the workers talk to it
// only through channels. All of them are started through wg and have
// returned when run returns.
type sessionCore[E any] struct {
	conn
	mode   sessionMode[E]
	k      *Consumer
	cfg    *consumerConfig
	runCtx context.Context // cancelled: shut down gracefully
	st     *memberState
	work   context.Context // the stream's and the hooks' base: Run's values, not its cancellation
	credit int             // the stream's credit
	events chan E          // the workers' reports

	maxInFlight int32 // queue mode: ConsumerMaxInFlight; 0 = none

	wg       sync.WaitGroup
	joined   bool
	stopping bool // shutting down or broken: take nothing new
	lost     bool // the stream broke: keep what is owed to the server for the next one
	ended    bool // the receiver reported the stream's end
	owed     int  // credit not yet granted back
	fatal    error
}

func (c *sessionCore[E]) init(ctx context.Context, k *Consumer, st *memberState, credit int, mode sessionMode[E]) {
	c.mode = mode
	c.k, c.cfg, c.runCtx, c.st = k, &k.cfg, ctx, st
	c.work = context.WithoutCancel(ctx)
	c.credit = credit
	c.events = make(chan E, 256)
	c.initConn(credit, k.cfg.sessionTimeout)
}

// run opens the stream and serves it until shutdown or breakage.
func (c *sessionCore[E]) run() sessionOutcome {
	c.open()
	defer c.teardown()
	t0, t1 := c.mode.timers(false)
	for {
		select {
		case <-c.runCtx.Done():
			c.shutdown()
			return sessionOutcome{joined: c.joined}
		case ev := <-c.recv:
			if ev.err != nil {
				c.ended = true
				return c.broken(ev.err)
			}
			c.mode.onResponse(ev.resp)
		case ev := <-c.events:
			c.mode.onWorker(ev)
			if c.fatal != nil {
				c.shutdown()
				return sessionOutcome{joined: c.joined, fatal: c.fatal}
			}
		case <-t0:
			c.mode.fired(0)
		case <-t1:
			c.mode.fired(1)
		}
	}
}

// open starts the stream with ConsumeStart, then the receiver and
// heartbeats.
func (c *sessionCore[E]) open() {
	c.st.route = c.openStream(c.k, c.work, &spoolv1.ConsumeStart{
		Topic:          c.k.topic,
		Subscription:   c.k.sub,
		ClientId:       c.k.c.cfg.clientID,
		MemberId:       c.st.memberID,
		InstanceId:     c.cfg.instanceID,
		SessionTimeout: durationOrNil(c.cfg.sessionTimeout),
		Credits:        int32(c.credit),
		MaxInFlight:    c.maxInFlight,
	})
	c.mode.opened()
	c.wg.Go(c.receive)
	c.wg.Go(c.heartbeat)
}

// teardown stops the stream and every goroutine of the session.
func (c *sessionCore[E]) teardown() {
	c.mode.closing()
	close(c.done)
	c.cancelStream()
	// HTTP/2's client abandons a stream on its context's end only once it
	// is not blocked reading the request body: close that too, or a
	// Receive blocked meanwhile would wait for ever.
	c.closeRequests()
	c.wg.Wait()
	_ = c.stream.CloseResponse()
}

// assigned records the membership an Assignment confirms.
func (c *sessionCore[E]) assigned(a *spoolv1.Assignment) {
	c.joined = true
	c.st.memberID = a.GetMemberId()
}

// heartbeatFor paces heartbeats by an Assignment's session timeout.
func (c *sessionCore[E]) heartbeatFor(a *spoolv1.Assignment) {
	if d := a.GetSessionTimeout().AsDuration(); d > 0 {
		c.hbEvery.Store(int64(max(d/3, minHeartbeat)))
	}
}

// owe records n messages' credit as grantable, granting it once a quarter
// of the credit has built up.
func (c *sessionCore[E]) owe(n int) {
	c.owed += n
	if c.owed >= max(1, c.credit/4) {
		c.grant()
	}
}

// grant sends the credit owed, unless the session is ending.
func (c *sessionCore[E]) grant() {
	if c.owed == 0 || c.stopping || c.runCtx.Err() != nil {
		return
	}
	c.send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Credits{Credits: &spoolv1.Credits{Messages: int32(c.owed)}}})
	c.owed = 0
}

// stopTaking marks the session as ending and tells the mode.
func (c *sessionCore[E]) stopTaking(lost bool) {
	c.stopping = true
	c.lost = c.lost || lost
	c.mode.stopTaking(lost)
}

// waitWorkers waits until every worker has exited, giving up on the
// running handlers at deadline. With recv it keeps serving the stream
// meanwhile (answers; what is delivered now is given back).
func (c *sessionCore[E]) waitWorkers(deadline time.Time, recv bool) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	t0, t1 := c.mode.timers(true)
	for !c.mode.exited() {
		var recvCh <-chan recvEvent
		if recv && !c.ended {
			recvCh = c.recv
		}
		select {
		case ev := <-c.events:
			c.mode.onWorker(ev)
		case ev := <-recvCh:
			if ev.err != nil {
				c.ended = true
				continue
			}
			c.mode.onResponse(ev.resp)
		case <-t0:
			c.mode.fired(0)
		case <-t1:
			c.mode.fired(1)
		case <-t.C:
			c.mode.abandon()
		}
	}
}

// shutdown is the graceful end of a session: take nothing new, let the
// running handlers finish, send their progress, wait (briefly) for the
// server to answer it, close the stream and wait for its end.
func (c *sessionCore[E]) shutdown() {
	deadline := time.Now().Add(c.cfg.shutdownTimeout)
	c.stopTaking(false)
	c.waitWorkers(deadline, true)
	c.mode.flush()
	t := time.NewTimer(min(finalCommitWait, max(time.Until(deadline), time.Second)))
	defer t.Stop()
	timedOut := false
	for !c.ended && !timedOut && c.mode.unanswered() > 0 {
		select {
		case ev := <-c.recv:
			if ev.err != nil {
				c.ended = true
				continue
			}
			c.mode.onResponse(ev.resp)
		case <-t.C:
			timedOut = true
		}
	}
	c.mode.drop()
	if c.ended || timedOut {
		return
	}
	c.closeRequests()
	t.Reset(closeStreamWait)
	for {
		select {
		case ev := <-c.recv:
			if ev.err != nil {
				return
			}
		case <-t.C:
			return
		}
	}
}

// broken handles a stream that ended under the session: let the handlers
// finish, keep what they did for the next stream, and decide whether
// reconnecting makes sense. What is kept is dropped when the next session
// will not be this member's.
func (c *sessionCore[E]) broken(err error) sessionOutcome {
	c.stopTaking(true)
	c.waitWorkers(time.Now().Add(c.cfg.shutdownTimeout), false)
	c.mode.keep()
	if gone(err) {
		c.st.queued = leaseCarry{}
		return sessionOutcome{joined: c.joined, fatal: err}
	}
	if !c.joined && !streamRetriable(err) {
		c.st.queued = leaseCarry{}
		if c.st.memberID != "" {
			c.st.memberID = "" // perhaps evicted: join afresh
			return sessionOutcome{err: err}
		}
		return sessionOutcome{fatal: err}
	}
	return sessionOutcome{joined: c.joined, err: err}
}

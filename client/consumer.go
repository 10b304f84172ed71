package client

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Handler processes one delivered message. m belongs to the handler. ctx
// is cancelled when the consumer gives up waiting for the handler
// (ConsumerShutdownTimeout after shutdown or revocation began); the handler
// must then return promptly.
//
// Stream mode: returning nil marks the message processed; an error is
// logged, passed to the ConsumerOnError hook, retried as
// ConsumerHandlerRetries says, and then either skipped (committed as
// processed: stream mode has no redelivery) or, with ConsumerStopOnError,
// fatal.
//
// Queue mode: returning nil acknowledges the message; an error nacks it, so
// the server redelivers it after the subscription's Backoff (after
// RetryAfter's delay if the error wraps a RetryError) and dead-letters it
// after MaxDeliveries; an error wrapping a RejectError (see Reject)
// dead-letters it at once. Errors are logged and passed to
// ConsumerOnError.
//
// Tracing: when m carries a trace context (a traceparent header, written
// by the SDK's publishes from a traced context), ctx holds it as the
// remote parent, so spans the handler starts continue the producer's
// trace. With WithTracerProvider, ctx holds instead the "process <topic>"
// span of this call, a child of that context, which records the handler's
// error and ends after the handler returns.
type Handler func(ctx context.Context, m *Message) error

// Consumer consumes a subscription: it joins the subscription as a member
// over a Consume stream, receives messages, calls the Handler for each, and
// records the outcome (commits in stream mode, acks in queue mode). Run
// asks the server for the subscription's mode when it starts.
//
// # Stream mode
//
// Processing: every owned partition has one worker that handles its
// messages one at a time, in offset order; ConsumerConcurrency caps how
// many handlers run at once across partitions. At most ConsumerPrefetch
// delivered messages wait in memory; credit is granted back as they are
// processed.
//
// Commits: after the handler returns, a partition's commit offset becomes
// that message's offset + 1, so only a contiguous processed prefix is ever
// committed (at-least-once: after a crash, messages processed since the
// last commit are delivered again). Commits are batched (ConsumerCommitInterval,
// ConsumerCommitEvery) and also made on revocation and at shutdown. The
// commit follows processing order: when a ResetSubscription rewinds a
// partition the consumer owns, messages already delivered are still
// processed, and commits then follow the replay.
//
// Rebalances: on a revoke the consumer stops taking that partition's
// messages, drops the ones waiting, waits for the running handler, commits,
// calls ConsumerOnRevoked and tells the server. When the stream breaks it
// lets running handlers finish, reconnects with backoff as the same member,
// and commits what was processed meanwhile if the partition comes back (it
// skips redelivered messages it already processed).
//
// # Queue mode
//
// Every delivery is a lease on one message. ConsumerConcurrency workers
// take messages in arrival order, from any partition (ConsumerKeyOrdered
// keeps one key's messages one at a time); the Handler's result becomes an
// ack, a nack or a reject (see Handler). Acks are batched: contiguous
// offsets travel as one range, sent every ConsumerAckInterval or
// ConsumerAckEvery messages, or as soon as the consumer has nothing else in
// hand. The consumer holds at most ConsumerPrefetch messages (default:
// twice the concurrency) and ConsumerMaxInFlight leases, granting credit
// back as messages finish, and extends the lease of every message it holds
// at about two thirds of the lease, up to ConsumerMaxExtension.
// Message.DeliveryCount, FirstDeliveredAt and LeaseDeadline describe the
// delivery. Processing is at-least-once: an ack the server reports stale
// (the lease had expired; the message will be or was redelivered) is
// logged at debug level.
//
// Shutdown stops taking messages, nacks the ones not started (for
// immediate redelivery), lets running handlers finish within
// ConsumerShutdownTimeout (then cancels their context and nacks their
// messages), sends the pending acks and closes the stream. When the stream
// breaks, running handlers finish and their outcomes are sent on the
// reconnected stream (as the same member, whose leases outlive a short
// disconnection).
type Consumer struct {
	c       *Client
	topic   string
	sub     string
	handler Handler
	cfg     consumerConfig
	log     *slog.Logger
	span    string // the name of its process spans, with a tracer

	mu      sync.Mutex
	running bool
	cancel  context.CancelFunc // stops the current Run
	runDone chan struct{}      // closed when the current Run returns
}

// NewConsumer returns a consumer of subscription sub on topic that calls h
// for every message; nothing happens until Run. A nil handler or an invalid
// option yields an error matching ErrInvalidOption; the topic and
// subscription are checked by Run.
func (c *Client) NewConsumer(topic, sub string, h Handler, opts ...ConsumerOption) (*Consumer, error) {
	cfg := defaultConsumerConfig()
	for _, o := range opts {
		if o.apply != nil {
			o.apply(&cfg)
		}
	}
	if h == nil {
		cfg.fail("NewConsumer: nil handler")
	}
	if len(cfg.errs) > 0 {
		return nil, errors.Join(cfg.errs...)
	}
	if c.isClosed() {
		return nil, ErrClosed
	}
	k := &Consumer{
		c:       c,
		topic:   topic,
		sub:     sub,
		handler: h,
		cfg:     cfg,
		log:     c.cfg.logger.With("topic", topic, "subscription", sub),
	}
	if c.tr.tracer != nil {
		k.span = "process " + topic
	}
	return k, nil
}

// Run consumes until ctx is cancelled, then shuts down gracefully (stops
// receiving, lets running handlers finish within ConsumerShutdownTimeout,
// commits, closes the stream so the server removes the member) and returns
// nil. It returns early with an error only when consuming cannot go on: the
// topic or subscription does not exist, or is deleted while it runs
// (ErrTopicNotFound, ErrSubscriptionNotFound; running handlers get
// ConsumerShutdownTimeout to finish), the server rejects the stream for
// good, or a handler error under ConsumerStopOnError. Broken streams (and a server
// unreachable at the start) are retried with backoff. Run may be called
// again after it returns (as a new member); concurrent calls fail with
// ErrConsumerRunning.
func (k *Consumer) Run(ctx context.Context) error {
	k.mu.Lock()
	if k.running {
		k.mu.Unlock()
		return ErrConsumerRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	k.running, k.cancel, k.runDone = true, cancel, make(chan struct{})
	done := k.runDone
	k.mu.Unlock()
	defer func() {
		cancel()
		k.c.stopConsumer(k)
		k.mu.Lock()
		k.running, k.cancel = false, nil
		k.mu.Unlock()
		close(done)
	}()
	if !k.c.startConsumer(k) {
		return ErrClosed
	}
	return k.loop(ctx)
}

// stop cancels a running Run and waits for it to return.
func (k *Consumer) stop() {
	k.mu.Lock()
	cancel, done := k.cancel, k.runDone
	k.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// loop learns the subscription's mode, then runs sessions (one Consume
// stream each) until ctx ends or one fails for good.
func (k *Consumer) loop(ctx context.Context) error {
	sub, err := k.subscription(ctx)
	if sub == nil {
		return err
	}
	queue := sub.Config.Mode == ModeQueue
	k.log.Debug("spool: consuming", "mode", sub.Config.Mode)
	st := &memberState{carry: map[int32]int64{}}
	failures, redirects := 0, 0
	for {
		var out sessionOutcome
		if queue {
			out = newQueueSession(ctx, k, st, sub.Config.AckTimeout).run()
		} else {
			out = newSession(ctx, k, st).run()
		}
		if out.fatal != nil {
			return out.fatal
		}
		if ctx.Err() != nil {
			return nil
		}
		if out.joined {
			failures, redirects = 0, 0
		}
		if k.c.coordMoved(st.route, out.err) && redirects < maxCoordRedirects {
			// A cluster node that does not coordinate subscriptions named
			// the one that does: go there at once.
			redirects++
			k.log.Info("spool: following the subscription coordinator", "from", st.route, "to", k.c.coordinator())
			continue
		}
		k.c.nodeFailed(st.route, out.err)
		failures++
		wait := k.c.cfg.backoff.delay(failures, retryAfterOf(out.err))
		k.log.Warn("spool: consume stream broken; reconnecting", "err", out.err, "retry_in", wait, "member_id", st.memberID)
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// subscription describes the consumed subscription, retrying what can be
// retried; nil and no error when ctx ended or the client was closed first.
func (k *Consumer) subscription(ctx context.Context) (*Subscription, error) {
	for failures := 1; ; failures++ {
		info, err := k.c.DescribeSubscription(ctx, k.topic, k.sub)
		switch {
		case err == nil:
			return &info.Subscription, nil
		case ctx.Err() != nil, errors.Is(err, ErrClosed):
			return nil, nil
		case !streamRetriable(err):
			return nil, err
		}
		wait := k.c.cfg.backoff.delay(failures, retryAfterOf(err))
		k.log.Warn("spool: cannot describe the subscription; retrying", "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return nil, nil
		}
	}
}

// memberState survives reconnects within one Run.
type memberState struct {
	memberID string          // rejoin as this member; "" = new member
	route    string          // the node the last stream went to
	carry    map[int32]int64 // stream mode: processed but uncommitted: next offset per partition
	queued   leaseCarry      // queue mode: outcomes not yet sent
}

// gone reports whether a stream ended because its topic or subscription
// no longer exists (it was deleted): reopening it cannot help.
func gone(err error) bool {
	return errors.Is(err, ErrTopicNotFound) || errors.Is(err, ErrSubscriptionNotFound)
}

// retryAfterOf returns err's retry-after hint, or 0.
func retryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

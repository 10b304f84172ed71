package client

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Handler processes one delivered message. Returning nil marks it processed;
// an error is logged, passed to the ConsumerOnError hook, retried as
// ConsumerHandlerRetries says, and then either skipped (committed as
// processed: stream mode has no redelivery) or, with ConsumerStopOnError,
// fatal. ctx is cancelled when the consumer gives up waiting for the
// handler (ConsumerShutdownTimeout after shutdown or revocation began); the
// handler must then return promptly. m belongs to the handler.
type Handler func(ctx context.Context, m *Message) error

// Consumer consumes a stream-mode subscription: it joins the subscription as
// a member over a Consume stream, receives messages for the partitions the
// server assigns it, calls the Handler for each, and commits progress.
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
// Queue mode (acks, nacks, leases) is not supported yet; Message is shaped
// for Ack/Nack/Extend methods to come.
type Consumer struct {
	c       *Client
	topic   string
	sub     string
	handler Handler
	cfg     consumerConfig
	log     *slog.Logger

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
	return &Consumer{
		c:       c,
		topic:   topic,
		sub:     sub,
		handler: h,
		cfg:     cfg,
		log:     c.cfg.logger.With("topic", topic, "subscription", sub),
	}, nil
}

// Run consumes until ctx is cancelled, then shuts down gracefully (stops
// receiving, lets running handlers finish within ConsumerShutdownTimeout,
// commits, closes the stream so the server removes the member) and returns
// nil. It returns early with an error only when consuming cannot go on: the
// topic or subscription does not exist (ErrTopicNotFound,
// ErrSubscriptionNotFound), the server rejects the stream for good, or a
// handler error under ConsumerStopOnError. Broken streams are retried with
// backoff. Run may be called again after it returns (as a new member);
// concurrent calls fail with ErrConsumerRunning.
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

// loop runs sessions (one Consume stream each) until ctx ends or one fails
// for good.
func (k *Consumer) loop(ctx context.Context) error {
	st := &memberState{carry: map[int32]int64{}}
	failures := 0
	for {
		out := newSession(ctx, k, st).run()
		if out.fatal != nil {
			return out.fatal
		}
		if ctx.Err() != nil {
			return nil
		}
		if out.joined {
			failures = 0
		}
		failures++
		wait := k.c.cfg.backoff.delay(failures, retryAfterOf(out.err))
		k.log.Warn("spool: consume stream broken; reconnecting", "err", out.err, "retry_in", wait, "member_id", st.memberID)
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// memberState survives reconnects within one Run.
type memberState struct {
	memberID string          // rejoin as this member; "" = new member
	carry    map[int32]int64 // processed but uncommitted: next offset per partition
}

// retryAfterOf returns err's retry-after hint, or 0.
func retryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

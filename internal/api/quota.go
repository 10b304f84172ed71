package api

// Client quotas (internal/quota) on the native API. The API refuses
// rather than delays: a unary call of a principal over its request_rate,
// a Publish over its producer_byte_rate, or a ListDeadLetters over its
// consumer_byte_rate, is answered resource_exhausted (retriable) with
// ErrorInfo.retry_after and a Retry-After header (whole seconds, rounded
// up), before it does anything; the SDK waits at least that long before
// retrying. Streams are paced instead, as Kafka mutes a connection: the
// opening of a stream counts as a request (and may be refused), each
// PublishStream request counts against request_rate and
// producer_byte_rate and the stream is not read while the principal is
// over either, and the responses of Consume and ReadTopic count against
// consumer_byte_rate and none carrying messages is sent while the
// principal is over it (heartbeats and results of acks go at once).
// With no quota set a call costs one atomic load.

import (
	"context"
	"math"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/auth"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/quota"
)

// SetQuotas makes the API enforce the limiter's quotas (nil: none).
func (h *Handler) SetQuotas(l *quota.Limiter) { h.quotas.Store(l) }

// quotaInterceptor enforces the quotas of the handler's limiter.
type quotaInterceptor struct{ h *Handler }

func (i quotaInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		l := i.h.quotas.Load()
		if !l.Active() {
			return next(ctx, req)
		}
		p := auth.Principal(ctx)
		if d := l.Admit(p, quota.Request, 1); d > 0 {
			return nil, overQuota(p, quota.Request, d)
		}
		proc := req.Spec().Procedure
		switch proc {
		case spoolv1connect.PublishServicePublishProcedure:
			if d := l.Admit(p, quota.Produce, msgSize(req.Any())); d > 0 {
				return nil, overQuota(p, quota.Produce, d)
			}
		case spoolv1connect.SubscriptionServiceListDeadLettersProcedure:
			if d := l.Admit(p, quota.Fetch, 0); d > 0 {
				return nil, overQuota(p, quota.Fetch, d)
			}
			resp, err := next(ctx, req)
			if err == nil {
				l.Record(p, quota.Fetch, msgSize(resp.Any()))
			}
			return resp, err
		}
		return next(ctx, req)
	}
}

func (quotaInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i quotaInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		l := i.h.quotas.Load()
		if !l.Active() {
			return next(ctx, conn)
		}
		p := auth.Principal(ctx)
		if d := l.Admit(p, quota.Request, 1); d > 0 {
			return overQuota(p, quota.Request, d)
		}
		return next(ctx, &pacedConn{StreamingHandlerConn: conn, ctx: ctx, l: l, p: p,
			publish: conn.Spec().Procedure == spoolv1connect.PublishServicePublishStreamProcedure})
	}
}

// pacedConn paces a stream by its principal's quotas: before it reads a
// publish or sends a response it waits until the principal is under the
// quotas that count them (whichever stream or connection made the debt),
// and it charges what it read or sent.
type pacedConn struct {
	connect.StreamingHandlerConn
	ctx     context.Context
	l       *quota.Limiter
	p       string
	publish bool // PublishStream: requests are publishes
}

func (c *pacedConn) Receive(m any) error {
	if !c.publish {
		return c.StreamingHandlerConn.Receive(m)
	}
	if err := c.wait(quota.Request, quota.Produce); err != nil {
		return err
	}
	if err := c.StreamingHandlerConn.Receive(m); err != nil {
		return err
	}
	c.l.Record(c.p, quota.Request, 1)
	c.l.Record(c.p, quota.Produce, msgSize(m))
	return nil
}

func (c *pacedConn) Send(m any) error {
	if c.publish {
		return c.StreamingHandlerConn.Send(m)
	}
	if delivers(m) {
		if err := c.wait(quota.Fetch); err != nil {
			return err
		}
	}
	if err := c.StreamingHandlerConn.Send(m); err != nil {
		return err
	}
	c.l.Record(c.p, quota.Fetch, msgSize(m))
	return nil
}

// wait waits until the principal is under its quotas of kinds.
func (c *pacedConn) wait(kinds ...quota.Kind) error {
	for _, k := range kinds {
		for {
			d := c.l.Admit(c.p, k, 0)
			if d <= 0 {
				break
			}
			if err := waitUntil(c.ctx, time.Now().Add(d)); err != nil {
				return err
			}
		}
	}
	return nil
}

// delivers reports whether a stream's response carries messages: only
// those wait for the consumer byte rate, so that heartbeats and the
// results of acks and commits are never held back.
func delivers(m any) bool {
	switch v := m.(type) {
	case *spoolv1.ReadTopicResponse:
		return true
	case *spoolv1.ConsumeResponse:
		return v.GetDeliveries() != nil
	}
	return false
}

// msgSize is a message's encoded size: a publish request's as it came
// (the API decodes it itself), another's as protobuf.
func msgSize(m any) int64 {
	switch v := m.(type) {
	case *encodedPublish:
		return int64(len(v.data))
	case proto.Message:
		return int64(proto.Size(v))
	}
	return 0
}

// waitUntil waits until t or ctx's end.
func waitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return toConnect(ctx.Err())
	}
}

// overQuota is the refusal of a call over a quota: resource_exhausted,
// retriable after d, with a Retry-After header in whole seconds.
func overQuota(principal string, k quota.Kind, d time.Duration) error {
	if principal == "" {
		principal = quota.Anonymous
	}
	e := errs.New(errs.ResourceExhausted, "quota exceeded: %s is over its %s; retry after %v", principal, k.Key(), d)
	e.RetryAfter = d
	ce := toConnect(e).(*connect.Error)
	ce.Meta().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	return ce
}

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
// producer_byte_rate and the stream is not read for the throttle it
// earned, and the responses of Consume and ReadTopic count against
// consumer_byte_rate and the next is not sent for the throttle they
// earned. With no quota set a call costs one atomic load.

import (
	"context"
	"math"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

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
			if m, ok := req.Any().(proto.Message); ok {
				if d := l.Admit(p, quota.Produce, int64(proto.Size(m))); d > 0 {
					return nil, overQuota(p, quota.Produce, d)
				}
			}
		case spoolv1connect.SubscriptionServiceListDeadLettersProcedure:
			if d := l.Admit(p, quota.Fetch, 0); d > 0 {
				return nil, overQuota(p, quota.Fetch, d)
			}
			resp, err := next(ctx, req)
			if err == nil {
				if m, ok := resp.Any().(proto.Message); ok {
					l.Record(p, quota.Fetch, int64(proto.Size(m)))
				}
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

// pacedConn paces a stream by its principal's quotas.
type pacedConn struct {
	connect.StreamingHandlerConn
	ctx     context.Context
	l       *quota.Limiter
	p       string
	publish bool      // PublishStream: requests are publishes
	recvAt  time.Time // no Receive before this
	sendAt  time.Time // no Send before this
}

func (c *pacedConn) Receive(m any) error {
	if !c.publish {
		return c.StreamingHandlerConn.Receive(m)
	}
	if err := waitUntil(c.ctx, c.recvAt); err != nil {
		return err
	}
	if err := c.StreamingHandlerConn.Receive(m); err != nil {
		return err
	}
	d := c.l.Charge(c.p, quota.Request, 1)
	if pm, ok := m.(proto.Message); ok {
		d = max(d, c.l.Charge(c.p, quota.Produce, int64(proto.Size(pm))))
	}
	if d > 0 {
		c.recvAt = time.Now().Add(d)
	}
	return nil
}

func (c *pacedConn) Send(m any) error {
	if c.publish {
		return c.StreamingHandlerConn.Send(m)
	}
	if err := waitUntil(c.ctx, c.sendAt); err != nil {
		return err
	}
	if err := c.StreamingHandlerConn.Send(m); err != nil {
		return err
	}
	if pm, ok := m.(proto.Message); ok {
		if d := c.l.Charge(c.p, quota.Fetch, int64(proto.Size(pm))); d > 0 {
			c.sendAt = time.Now().Add(d)
		}
	}
	return nil
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

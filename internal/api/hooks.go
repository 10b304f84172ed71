package api

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/errs"
)

// Hooks hear every call of the native API, for metrics; telemetry
// implements them. Calls must not block. procedure is the Connect
// procedure ("/spool.v1.PublishService/Publish"): only routed procedures
// reach the hooks, so the set is bounded by the API.
type Hooks interface {
	// Call: a unary call, or a stream at its end, finished after d; code
	// is "" on success, else the Spool error code (errs.Code).
	Call(procedure, code string, stream bool, d time.Duration)
	// Stream: a stream of procedure opened (+1) or ended (-1).
	Stream(procedure string, delta int)
}

// hookInterceptor reports calls to Hooks.
type hookInterceptor struct{ h Hooks }

func (i hookInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		resp, err := next(ctx, req)
		i.h.Call(req.Spec().Procedure, errorCode(err), false, time.Since(start))
		return resp, err
	}
}

func (hookInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i hookInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		proc := conn.Spec().Procedure
		start := time.Now()
		i.h.Stream(proc, 1)
		err := next(ctx, conn)
		i.h.Stream(proc, -1)
		i.h.Call(proc, errorCode(err), true, time.Since(start))
		return err
	}
}

// errorCode is the Spool error code a handler's error carries: in its
// ErrorInfo detail (toConnect), or in its chain.
func errorCode(err error) string {
	if err == nil {
		return ""
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		for _, d := range ce.Details() {
			if v, derr := d.Value(); derr == nil {
				if info, ok := v.(*spoolv1.ErrorInfo); ok && info.Code != "" {
					return knownCode(info.Code)
				}
			}
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return string(errs.Canceled)
	case errors.Is(err, context.DeadlineExceeded):
		return string(errs.DeadlineExceeded)
	}
	return string(errs.CodeOf(err))
}

// knownCode keeps a code label within errs.Codes.
func knownCode(c string) string {
	if _, ok := connectCodes[errs.Code(c)]; ok {
		return c
	}
	return string(errs.Internal)
}

package api

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/membudget"
)

// The intake budget bounds what unary Publish requests hold before the
// publish budget admits them: Connect reads a request's body whole, and
// the codec copies it (encodedPublish), before the handler can wait for
// the publish budget, so requests waiting for it would hold their bodies
// outside it — measured: 100 MiB of waiting copies beside a 128 MiB
// budget at ten times the sustainable rate. A request whose length is
// known (Connect's unary protocol sends a Content-Length) is charged
// twice that length (Connect's read buffer and the handler's copy) before
// its body is read, and gives the charge back once admitted (or when it
// ends).
//
// It does not wait: a request that does not fit is refused at once with
// the retriable resource_exhausted and a retry-after of intakeRetryAfter.
// Waiting unread would deadlock HTTP/2: the streams waiting keep their
// buffered data in the connection's receive window, which the stream
// that was let in then needs to receive the rest of its body (measured:
// native publishing stalled, and a probe waited 20 s). Requests of
// unknown length (gRPC, gRPC-Web) are not charged here; each
// connection's HTTP/2 receive window bounds what it holds unread.

// intakeRetryAfter is the retry-after of a publish refused by the intake.
const intakeRetryAfter = 100 * time.Millisecond

// intakeHold is one request's charge, given back once.
type intakeHold struct {
	once sync.Once
	b    *membudget.Budget
	n    int64
}

func (h *intakeHold) release() { h.once.Do(func() { h.b.Release(h.n) }) }

type intakeKey struct{}

// intakeRefusal answers requests the intake refuses, in their protocol.
var intakeRefusal = connect.NewErrorWriter()

// serveIntake charges r against the intake budget before next reads it.
func (h publish) serveIntake(next http.Handler, w http.ResponseWriter, r *http.Request) {
	if h.intake == nil || r.ContentLength <= 0 {
		next.ServeHTTP(w, r)
		return
	}
	n, ok := h.intake.TryAcquire(2 * r.ContentLength)
	if !ok {
		e := errs.New(errs.ResourceExhausted, "the server's memory for publish requests is spent; retry after %v", intakeRetryAfter)
		e.RetryAfter = intakeRetryAfter
		ce := toConnect(e).(*connect.Error)
		ce.Meta().Set("Retry-After", strconv.Itoa(1))
		_ = intakeRefusal.Write(w, r, ce)
		return
	}
	hold := &intakeHold{b: h.intake, n: n}
	defer hold.release()
	next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), intakeKey{}, hold)))
}

// admitted gives back the intake charge of the request of ctx, if any.
func admitted(ctx context.Context) {
	if hold, ok := ctx.Value(intakeKey{}).(*intakeHold); ok {
		hold.release()
	}
}

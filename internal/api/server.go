// Package api serves Spool's native API: the Connect services defined in
// proto/spool/v1 (reachable with gRPC, gRPC-Web and JSON over HTTP on the
// same handlers), plus /healthz and /readyz.
package api

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"

	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/auth"
	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/cluster"
	"github.com/spoolmq/spool/internal/membudget"
	"github.com/spoolmq/spool/internal/producer"
	"github.com/spoolmq/spool/internal/quota"
)

// Limits bound the memory the native API can be made to use.
type Limits struct {
	// MaxRequestBytes bounds one request message (a publish batch); larger
	// requests are refused while being read. Default 8 MiB.
	MaxRequestBytes int
	// PublishBudgetBytes bounds the memory held by all publish requests in
	// flight together: each is charged twice its encoded size (the decoded
	// and the re-encoded copy of its data) plus what every message and
	// header costs the server beyond its bytes (publishCost). A request
	// that does not fit waits, which stops its stream from being read:
	// backpressure through HTTP/2 flow control. Default 256 MiB.
	PublishBudgetBytes int64
	// PublishIntakeBytes bounds the memory held by unary Publish requests
	// of known length (Connect's, which send a Content-Length) that are
	// being read or wait for the publish budget: each is charged twice
	// its length (Connect's read buffer and the handler's copy) before its
	// body is read, until it is admitted to the publish budget. Without
	// it, requests waiting for the budget hold their bodies outside it.
	// Default 32 MiB.
	PublishIntakeBytes int64
	// MaxSessions bounds concurrent Consume and ReadTopic streams together;
	// more are refused with resource_exhausted. Default 10,000.
	MaxSessions int
}

// DefaultLimits are the limits a zero field of Limits takes: requests of
// 8 MiB, a publish budget of 256 MiB, 10,000 sessions.
func DefaultLimits() Limits {
	return Limits{MaxRequestBytes: 8 << 20, PublishBudgetBytes: 256 << 20, PublishIntakeBytes: 32 << 20, MaxSessions: 10_000}
}

func (l Limits) withDefaults() Limits {
	def := DefaultLimits()
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = def.MaxRequestBytes
	}
	if l.PublishBudgetBytes <= 0 {
		l.PublishBudgetBytes = def.PublishBudgetBytes
	}
	if l.MaxSessions <= 0 {
		l.MaxSessions = def.MaxSessions
	}
	if l.PublishIntakeBytes <= 0 {
		l.PublishIntakeBytes = def.PublishIntakeBytes
	}
	return l
}

// Handler serves the native API.
type Handler struct {
	mux     *http.ServeMux
	maxBody int // Limits.MaxRequestBytes
	ready   atomic.Bool
	cluster atomic.Pointer[cluster.Node] // nil: a single node

	authn Authenticator   // nil: authentication off (SetAuthenticator)
	authz *acl.Authorizer // nil: authorization off (SetAuthorizer)

	checksMu sync.Mutex
	checks   []func() []Problem

	quotas atomic.Pointer[quota.Limiter] // nil: no quotas (SetQuotas, quota.go)

	budget *membudget.Budget // the publish budget (Limits.PublishBudgetBytes)
	intake *membudget.Budget // publish bodies before admission (Limits.PublishIntakeBytes)
}

// PublishBudget is the budget of the publishes in flight, for metrics.
func (h *Handler) PublishBudget() *membudget.Budget { return h.budget }

// PublishIntake is the budget of the publish bodies being read or waiting
// for the publish budget, for metrics.
func (h *Handler) PublishIntake() *membudget.Budget { return h.intake }

// New returns the API handler for b; producers is the idempotent-producer
// table it shares with the Kafka front end (batch publishing,
// InitProducer); hooks, if not nil, hear every call.
func New(b *broker.Broker, lim Limits, producers *producer.Table, hooks Hooks) *Handler {
	lim = lim.withDefaults()
	h := &Handler{mux: http.NewServeMux(), maxBody: lim.MaxRequestBytes}
	opts := codecs()
	if hooks != nil {
		opts = append(opts, connect.WithInterceptors(hookInterceptor{hooks}))
	}
	opts = append(opts, connect.WithInterceptors(authzInterceptor{h}))
	opts = append(opts, connect.WithInterceptors(quotaInterceptor{h}))
	opts = append(opts,
		connect.WithReadMaxBytes(lim.MaxRequestBytes),
		// Requests may arrive gzip-compressed, but responses are not
		// compressed: on the links Spool serves, compressing costs more CPU
		// than the bytes it saves (measured: a fifth of a pipelined
		// publish's CPU went to gzip).
		connect.WithCompressMinBytes(math.MaxInt),
	)
	h.budget = membudget.New(lim.PublishBudgetBytes)
	h.intake = membudget.New(lim.PublishIntakeBytes)
	streams := &consume{b: b, max: int64(lim.MaxSessions)}
	h.mux.Handle(spoolv1connect.NewTopicServiceHandler(topics{b: b, streams: streams}, opts...))
	h.mux.Handle(spoolv1connect.NewSubscriptionServiceHandler(subs{b: b, h: h}, opts...))
	h.mux.Handle(newPublishHandler(publish{b: b, h: h, producers: producers, budget: h.budget, intake: h.intake}, opts...))
	h.mux.Handle(spoolv1connect.NewConsumeServiceHandler(streams, opts...))
	h.mux.Handle(spoolv1connect.NewClusterServiceHandler(clusterService{h}, opts...))
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	h.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		problems := h.Problems()
		if len(problems) == 0 {
			w.Write([]byte("ready\n"))
			return
		}
		var sb strings.Builder
		for _, p := range problems {
			fmt.Fprintf(&sb, "not ready: %s: %s\n", p.Reason, p.Detail)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(sb.String()))
	})
	return h
}

// Problem is a reason /readyz fails: Reason is one of a bounded set
// (starting, storage, state_store, disk), the metric's label; Detail
// says what to do.
type Problem struct{ Reason, Detail string }

// AddCheck adds a readiness check; /readyz fails while any reports a
// problem. Checks run on every /readyz and /metrics request: they must be
// cheap.
func (h *Handler) AddCheck(f func() []Problem) {
	h.checksMu.Lock()
	h.checks = append(h.checks, f)
	h.checksMu.Unlock()
}

// Problems runs the readiness checks.
func (h *Handler) Problems() []Problem {
	if !h.ready.Load() {
		return []Problem{{"starting", "the server is starting or stopping"}}
	}
	var out []Problem
	if n := h.cluster.Load(); n != nil {
		if failed := n.FailedPartitions(); len(failed) > 0 {
			out = append(out, Problem{"storage", fmt.Sprintf("the logs of %d partitions failed on this node (%s); restart it on a healthy disk",
				len(failed), strings.Join(failed[:min(len(failed), 5)], ", "))})
		}
	}
	h.checksMu.Lock()
	checks := h.checks
	h.checksMu.Unlock()
	for _, c := range checks {
		out = append(out, c()...)
	}
	return out
}

// Unready returns the reasons of Problems, each once, for metrics.
func (h *Handler) Unready() []string {
	var out []string
	for _, p := range h.Problems() {
		if !slices.Contains(out, p.Reason) {
			out = append(out, p.Reason)
		}
	}
	return out
}

// SetCluster makes ClusterStatus describe n's cluster.
func (h *Handler) SetCluster(n *cluster.Node) { h.cluster.Store(n) }

// SetReady sets what /readyz answers.
func (h *Handler) SetReady(ready bool) { h.ready.Store(ready) }

// Handle mounts another handler (the console, metrics) on the same mux.
func (h *Handler) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.authz != nil {
		r = r.WithContext(auth.WithHost(r.Context(), acl.HostOf(r.RemoteAddr)))
	}
	if h.authn != nil && !openPaths[r.URL.Path] {
		ar, err := h.authenticate(r)
		if err != nil {
			writeAuthError(w, r, err)
			return
		}
		r = ar
	}
	boundBody(r, h.maxBody) // body.go
	h.mux.ServeHTTP(w, r)
}

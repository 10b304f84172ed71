// Package api serves Spool's native API: the Connect services defined in
// proto/spool/v1 (reachable with gRPC, gRPC-Web and JSON over HTTP on the
// same handlers), plus /healthz and /readyz.
package api

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"
	"golang.org/x/sync/semaphore"

	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/cluster"
	"github.com/spoolmq/spool/internal/producer"
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
	// MaxSessions bounds concurrent Consume and ReadTopic streams together;
	// more are refused with resource_exhausted. Default 10,000.
	MaxSessions int
}

// DefaultLimits are the limits a zero field of Limits takes: requests of
// 8 MiB, a publish budget of 256 MiB, 10,000 sessions.
func DefaultLimits() Limits {
	return Limits{MaxRequestBytes: 8 << 20, PublishBudgetBytes: 256 << 20, MaxSessions: 10_000}
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
	return l
}

// Handler serves the native API.
type Handler struct {
	mux     *http.ServeMux
	ready   atomic.Bool
	cluster atomic.Pointer[cluster.Node] // nil: a single node
}

// New returns the API handler for b; producers is the idempotent-producer
// table it shares with the Kafka front end (batch publishing,
// InitProducer).
func New(b *broker.Broker, lim Limits, producers *producer.Table) *Handler {
	lim = lim.withDefaults()
	h := &Handler{mux: http.NewServeMux()}
	opts := append(codecs(),
		connect.WithReadMaxBytes(lim.MaxRequestBytes),
		// Requests may arrive gzip-compressed, but responses are not
		// compressed: on the links Spool serves, compressing costs more CPU
		// than the bytes it saves (measured: a fifth of a pipelined
		// publish's CPU went to gzip).
		connect.WithCompressMinBytes(math.MaxInt),
	)
	budget := semaphore.NewWeighted(lim.PublishBudgetBytes)
	streams := &consume{b: b, max: int64(lim.MaxSessions)}
	h.mux.Handle(spoolv1connect.NewTopicServiceHandler(topics{b: b, streams: streams}, opts...))
	h.mux.Handle(spoolv1connect.NewSubscriptionServiceHandler(subs{b: b, h: h}, opts...))
	h.mux.Handle(newPublishHandler(publish{b: b, producers: producers, budget: budget, budgetMax: lim.PublishBudgetBytes}, opts...))
	h.mux.Handle(spoolv1connect.NewConsumeServiceHandler(streams, opts...))
	h.mux.Handle(spoolv1connect.NewClusterServiceHandler(clusterService{h}, opts...))
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	h.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !h.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if n := h.cluster.Load(); n != nil {
			if failed := n.FailedPartitions(); len(failed) > 0 {
				http.Error(w, fmt.Sprintf("not ready: the logs of %d partitions failed on this node (%s); restart it on a healthy disk",
					len(failed), strings.Join(failed[:min(len(failed), 5)], ", ")), http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	return h
}

// SetCluster makes ClusterStatus describe n's cluster.
func (h *Handler) SetCluster(n *cluster.Node) { h.cluster.Store(n) }

// SetReady sets what /readyz answers.
func (h *Handler) SetReady(ready bool) { h.ready.Store(ready) }

// Handle mounts another handler (the console, metrics) on the same mux.
func (h *Handler) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

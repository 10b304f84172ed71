// Package api serves Spool's native API: the Connect services defined in
// proto/spool/v1 (reachable with gRPC, gRPC-Web and JSON over HTTP on the
// same handlers), plus /healthz and /readyz.
package api

import (
	"net/http"
	"sync/atomic"

	"connectrpc.com/connect"

	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/broker"
)

// MaxRequestBytes bounds a single request message (a publish batch): larger
// requests are refused before they are read into memory.
const MaxRequestBytes = 64 << 20

// Handler serves the native API.
type Handler struct {
	mux   *http.ServeMux
	ready atomic.Bool
}

// New returns the API handler for b.
func New(b *broker.Broker) *Handler {
	h := &Handler{mux: http.NewServeMux()}
	opts := []connect.HandlerOption{connect.WithReadMaxBytes(MaxRequestBytes)}
	h.mux.Handle(spoolv1connect.NewTopicServiceHandler(topics{b}, opts...))
	h.mux.Handle(spoolv1connect.NewSubscriptionServiceHandler(subs{b}, opts...))
	h.mux.Handle(spoolv1connect.NewPublishServiceHandler(publish{b}, opts...))
	h.mux.Handle(spoolv1connect.NewConsumeServiceHandler(consume{b}, opts...))
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	h.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !h.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return h
}

// SetReady sets what /readyz answers.
func (h *Handler) SetReady(ready bool) { h.ready.Store(ready) }

// Handle mounts another handler (the console, metrics) on the same mux.
func (h *Handler) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Package spooltest runs a real Spool server in-process for tests: real
// Pebble, real files in a temporary directory, real listeners on free
// loopback ports, stopped when the test ends.
package spooltest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/internal/vfs"
	"github.com/spoolmq/spool/server"
)

// shutdownWait bounds a server's graceful shutdown at the end of a test.
const shutdownWait = 10 * time.Second

// Server is a server started by StartServer. Its address changes at every
// Restart; ask for it (URL, Client, Server) after restarting.
type Server struct {
	t     testing.TB
	cfg   server.Config
	fs    vfs.FS // nil: the default
	copts []client.Option
	srv   *server.Server // nil while stopped
	c     *client.Client // made at first use
}

// Option changes how StartServer starts the server.
type Option func(*Server)

// Dir runs the server on dir instead of a new temporary directory: a
// restart of a server that wrote it before.
func Dir(dir string) Option { return func(s *Server) { s.cfg.DataDir = dir } }

// Config changes the server's config beyond the data directory, the
// listener (127.0.0.1:0) and the logger (discarding) StartServer sets.
func Config(f func(*server.Config)) Option { return func(s *Server) { f(&s.cfg) } }

// FS keeps the partition logs in fs (fault injection) instead of the
// operating system's file system.
func FS(fs vfs.FS) Option { return func(s *Server) { s.fs = fs } }

// ClientOptions are added to the options of the SDK client Client returns
// (after a discarding logger and reconnect backoff of 10 to 200 ms).
func ClientOptions(opts ...client.Option) Option {
	return func(s *Server) { s.copts = append(s.copts, opts...) }
}

// StartServer starts a server on a new temporary directory, listening on a
// free loopback port, and stops it (and its client) when the test ends.
func StartServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	discard := slog.New(slog.DiscardHandler)
	s := &Server{
		t:     t,
		cfg:   server.Config{HTTPAddr: "127.0.0.1:0", Logger: discard},
		copts: []client.Option{client.WithLogger(discard), client.WithBackoff(10*time.Millisecond, 200*time.Millisecond)},
	}
	for _, o := range opts {
		o(s)
	}
	if s.cfg.DataDir == "" {
		s.cfg.DataDir = t.TempDir()
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	srv, err := server.New(s.cfg)
	if err != nil {
		s.t.Fatalf("server.New: %v", err)
	}
	if s.fs != nil {
		serverhook.SetFS(srv, s.fs)
	}
	if err := srv.Start(); err != nil {
		s.t.Fatalf("server.Start: %v", err)
	}
	s.srv = srv
}

// Stop closes the client and shuts the server down (gracefully, for at
// most 10 seconds); a stopped server stays stopped until Restart.
func (s *Server) Stop() {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.t.Errorf("server.Shutdown: %v", err)
	}
	s.srv = nil
}

// Restart stops the server and starts it again on the same data directory
// and config (on a new port).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Server returns the running server (its Kafka address, its config).
func (s *Server) Server() *server.Server { return s.srv }

// Broker returns the running server's broker.
func (s *Server) Broker() *broker.Broker { return serverhook.Broker(s.srv) }

// URL returns the base URL of the native API, "http://127.0.0.1:port".
func (s *Server) URL() string { return "http://" + s.srv.HTTPAddr() }

// Dir returns the data directory.
func (s *Server) Dir() string { return s.cfg.DataDir }

// Client returns an SDK client of the running server, the same one until
// the server stops; it is closed before the server stops.
func (s *Server) Client() *client.Client {
	s.t.Helper()
	if s.c == nil {
		c, err := client.New(s.URL(), s.copts...)
		if err != nil {
			s.t.Fatalf("client.New: %v", err)
		}
		s.c = c
	}
	return s.c
}

// Package server is the embeddable Spool broker: New builds one from a
// Config, Start opens (and recovers) its data directory and starts serving,
// Shutdown stops it cleanly. The spool binary is a thin wrapper around it,
// and Go programs and tests can run Spool in-process the same way.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/api"
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/kafka"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/internal/telemetry"
	"github.com/spoolmq/spool/internal/vfs"
)

// Config configures a Server. The zero value of a field means its default.
type Config struct {
	// DataDir is the data directory; default "./spool-data".
	DataDir string
	// HTTPAddr is where the native API, /healthz and /readyz listen;
	// default "127.0.0.1:7070". Port 0 picks a free port (see Server.HTTPAddr).
	HTTPAddr string
	// KafkaAddr is where the Kafka protocol listens; default
	// "127.0.0.1:9092", or "127.0.0.1:0" (a free port) when HTTPAddr asks
	// for a free port, so that embedded servers in tests never collide;
	// "-" disables it.
	KafkaAddr string
	// KafkaAdvertisedAddr is the host:port Kafka Metadata responses name;
	// default the listener's address.
	KafkaAdvertisedAddr string
	// KafkaGroupInitialRebalanceDelay is how long a Kafka consumer group
	// leaving the Empty state waits for more members before its first
	// rebalance; nil: 100 ms.
	KafkaGroupInitialRebalanceDelay *time.Duration
	// AllowNonLoopback must be set to listen on a non-loopback address:
	// Spool has no authentication yet.
	AllowNonLoopback bool
	// Logger receives the server's structured logs; default slog.Default().
	Logger *slog.Logger
	// Log holds the defaults for partition logs (segment size, limits).
	// Durability and retention come from each topic's config.
	Log seglog.Options
	// Topics are the defaults for new topics' configs.
	Topics catalog.Defaults
	// DedupMaxEntries bounds the message ids remembered per topic.
	DedupMaxEntries int
	// API bounds the native API's memory use (request size, publish bytes
	// in flight, consumer sessions).
	API api.Limits
	// MaxConnections bounds concurrent client connections; default 10,000.
	MaxConnections int
	// FS is the file system for partition logs; default vfs.Default.
	FS vfs.FS
	// Clock; default the wall clock.
	Clock clock.Clock
}

// DefaultDataDir is where Spool keeps its data unless told otherwise.
const DefaultDataDir = "./spool-data"

// DefaultHTTPAddr is the native API's default address.
const DefaultHTTPAddr = "127.0.0.1:7070"

// DefaultMaxBatchBytes is the largest record batch the server stores
// unless configured otherwise (storage.max-batch-bytes): the ceiling of
// every topic's max message bytes.
const DefaultMaxBatchBytes = 16 << 20

// DefaultKafkaAddr is the Kafka protocol's default address.
const DefaultKafkaAddr = "127.0.0.1:9092"

// DefaultKafkaGroupInitialRebalanceDelay is the default of
// Config.KafkaGroupInitialRebalanceDelay.
const DefaultKafkaGroupInitialRebalanceDelay = 100 * time.Millisecond

// Server is a Spool broker.
type Server struct {
	cfg    Config
	fs     vfs.FS
	logger *slog.Logger

	mu       sync.Mutex
	started  bool
	stopped  bool
	lock     io.Closer
	st       *state.Store
	broker   *broker.Broker
	api      *api.Handler
	http     *http.Server
	httpLn   net.Listener
	serveErr chan error
	kafka    *kafka.Server
	kafkaLn  net.Listener
	kafkaErr chan error
}

// New validates cfg and returns a server that has not started.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if cfg.KafkaAddr == "" {
		cfg.KafkaAddr = DefaultKafkaAddr
		if _, port, err := net.SplitHostPort(cfg.HTTPAddr); err == nil && port == "0" {
			cfg.KafkaAddr = "127.0.0.1:0"
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FS == nil {
		cfg.FS = vfs.Default
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	cfg.DataDir = abs
	if cfg.Log.Logger == nil {
		cfg.Log.Logger = cfg.Logger
	}
	if cfg.Log.Limits.MaxBatchBytes == 0 {
		// Kafka topics may raise max.message.bytes well above Kafka's 1 MB
		// default; the storage limit is the ceiling for every topic.
		cfg.Log.Limits = batch.DefaultLimits()
		cfg.Log.Limits.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if err := checkListenAddr("http", cfg.HTTPAddr, cfg.AllowNonLoopback); err != nil {
		return nil, err
	}
	if cfg.KafkaAddr != "-" {
		if err := checkListenAddr("kafka", cfg.KafkaAddr, cfg.AllowNonLoopback); err != nil {
			return nil, err
		}
	}
	return &Server{cfg: cfg, fs: cfg.FS, logger: cfg.Logger}, nil
}

// DataDir returns the absolute data directory.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// HTTPAddr returns the address the native API listens on (after Start).
func (s *Server) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpLn == nil {
		return s.cfg.HTTPAddr
	}
	return s.httpLn.Addr().String()
}

// KafkaAddr returns the address the Kafka protocol listens on (after
// Start), or "" when it is disabled.
func (s *Server) KafkaAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kafkaLn == nil {
		return ""
	}
	return s.kafkaLn.Addr().String()
}

// Broker returns the running broker (after Start), for in-process use.
func (s *Server) Broker() *broker.Broker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broker
}

// Start locks the data directory (creating it if needed), opens the state
// store, opens and recovers every partition log, and starts listening.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("server: already started")
	}
	s.started = true
	t0 := time.Now()
	if err := vfs.MkdirAllSync(s.fs, s.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("server: create data directory: %w", err)
	}
	lock, err := lockDir(s.fs, s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.lock = lock
	if err := s.startLocked(); err != nil {
		s.closeLocked(context.Background())
		return err
	}
	topics := s.broker.Topics()
	kafkaAddr := "disabled"
	if s.kafkaLn != nil {
		kafkaAddr = s.kafkaLn.Addr().String()
	}
	s.logger.Info("spool started", "data", s.cfg.DataDir, "http", s.httpLn.Addr().String(), "kafka", kafkaAddr,
		"topics", len(topics), "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

func (s *Server) startLocked() error {
	st, err := state.Open(filepath.Join(s.cfg.DataDir, "state"), state.Options{Logger: s.logger})
	if err != nil {
		return err
	}
	s.st = st
	b, err := broker.Open(broker.Config{
		DataDir:         s.cfg.DataDir,
		FS:              s.fs,
		State:           st,
		Clock:           s.cfg.Clock,
		Logger:          s.logger,
		Log:             s.cfg.Log,
		Defaults:        s.cfg.Topics,
		DedupMaxEntries: s.cfg.DedupMaxEntries,
	})
	if err != nil {
		return err
	}
	s.broker = b
	s.api = api.New(b, s.cfg.API)
	s.api.Handle("GET /metrics", telemetry.Handler(b))
	ln, err := listen("http", s.cfg.HTTPAddr, s.cfg.MaxConnections)
	if err != nil {
		return err
	}
	s.httpLn = ln
	s.http = newHTTPServer(s.api, s.logger)
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.http.Serve(ln) }()
	if s.cfg.KafkaAddr != "-" {
		kln, err := listen("kafka", s.cfg.KafkaAddr, s.cfg.MaxConnections)
		if err != nil {
			return err
		}
		s.kafkaLn = kln
		kcfg := kafka.Config{Logger: s.logger, GroupInitialRebalanceDelay: s.cfg.KafkaGroupInitialRebalanceDelay}
		if adv := s.cfg.KafkaAdvertisedAddr; adv != "" {
			host, port, err := net.SplitHostPort(adv)
			if err != nil {
				return fmt.Errorf("server: kafka advertised address %q: %w", adv, err)
			}
			p, err := strconv.Atoi(port)
			if err != nil {
				return fmt.Errorf("server: kafka advertised port %q: %w", port, err)
			}
			kcfg.AdvertisedHost, kcfg.AdvertisedPort = host, int32(p)
		}
		s.kafka = kafka.New(b, kcfg)
		s.kafkaErr = make(chan error, 1)
		go func() { s.kafkaErr <- s.kafka.Serve(kln) }()
	}
	s.api.SetReady(true)
	return nil
}

// Shutdown stops accepting requests, ends open streams, closes every
// partition log (syncing and sealing it, so the next start need not scan)
// and the state store, and releases the data directory. In-flight requests
// get until ctx is done to finish.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.stopped {
		return nil
	}
	err := s.closeLocked(ctx)
	s.logger.Info("spool stopped", "data", s.cfg.DataDir)
	return err
}

func (s *Server) closeLocked(ctx context.Context) error {
	s.stopped = true
	var errList []error
	if s.api != nil {
		s.api.SetReady(false)
	}
	if s.http != nil {
		// Streams (Consume, PublishStream) never go idle on their own:
		// close the broker's sessions first so their handlers return.
		shutdownCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		done := make(chan error, 1)
		go func() { done <- s.http.Shutdown(shutdownCtx) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(time.Second):
			// Long-lived streams are still open: end them.
			if s.broker != nil {
				s.broker.EndSessions()
			}
			err = <-done
		}
		cancel()
		if err != nil {
			s.http.Close()
		}
		if serr := <-s.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			errList = append(errList, serr)
		}
	}
	if s.kafka != nil {
		s.kafka.Close()
		if err := <-s.kafkaErr; err != nil {
			errList = append(errList, err)
		}
	}
	if s.broker != nil {
		if err := s.broker.Close(); err != nil {
			errList = append(errList, err)
		}
	}
	if s.st != nil {
		if err := s.st.Close(); err != nil {
			errList = append(errList, err)
		}
	}
	if s.lock != nil {
		if err := s.lock.Close(); err != nil {
			errList = append(errList, err)
		}
		s.lock = nil
	}
	return errors.Join(errList...)
}

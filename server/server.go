// Package server is the embeddable Spool broker: New builds one from a
// Config, Start opens (and recovers) its data directory, Shutdown closes it
// cleanly. The spool binary is a thin wrapper around it, and Go programs and
// tests can run Spool in-process the same way.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/vfs"
)

// Config configures a Server. The zero value of a field means its default.
type Config struct {
	// DataDir is the data directory; default "./spool-data".
	DataDir string
	// Logger receives the server's structured logs; default slog.Default().
	Logger *slog.Logger
	// Log holds the defaults for partition logs (durability policy, segment
	// size, retention).
	Log seglog.Options
	// FS is the file system; default vfs.Default. Tests substitute the
	// crash-simulating or error-injecting file systems.
	FS vfs.FS
}

// DefaultDataDir is where Spool keeps its data unless told otherwise.
const DefaultDataDir = "./spool-data"

// Server is a Spool broker.
type Server struct {
	cfg    Config
	fs     vfs.FS
	logger *slog.Logger

	mu      sync.Mutex
	started bool
	stopped bool
	lock    io.Closer
	logs    map[string]*seglog.Log // by "<topic>/<partition>"
}

// New validates cfg and returns a server that has not started.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FS == nil {
		cfg.FS = vfs.Default
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	cfg.DataDir = abs
	if cfg.Log.Logger == nil {
		cfg.Log.Logger = cfg.Logger
	}
	return &Server{cfg: cfg, fs: cfg.FS, logger: cfg.Logger, logs: map[string]*seglog.Log{}}, nil
}

// DataDir returns the absolute data directory.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// topicsDir holds one directory per topic, and in it one per partition.
func (s *Server) topicsDir() string { return filepath.Join(s.cfg.DataDir, "topics") }

// Start locks the data directory (creating it if needed) and opens and
// recovers every partition log in it, logging what recovery found.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("server: already started")
	}
	if err := vfs.MkdirAllSync(s.fs, s.topicsDir(), 0o755); err != nil {
		return fmt.Errorf("server: create data directory: %w", err)
	}
	lock, err := lockDir(s.fs, s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.lock = lock
	s.started = true
	if err := s.openLogs(); err != nil {
		s.closeLocked()
		return err
	}
	s.logger.Info("spool started", "data", s.cfg.DataDir, "partitions", len(s.logs))
	return nil
}

// openLogs opens every <topic>/<partition> log under the topics directory.
func (s *Server) openLogs() error {
	topics, err := s.fs.List(s.topicsDir())
	if err != nil {
		return fmt.Errorf("server: list topics: %w", err)
	}
	for _, topic := range topics {
		parts, err := s.fs.List(filepath.Join(s.topicsDir(), topic))
		if err != nil {
			return fmt.Errorf("server: list partitions of %q: %w", topic, err)
		}
		for _, p := range parts {
			if _, err := strconv.ParseUint(p, 10, 31); err != nil {
				s.logger.Warn("ignoring unexpected entry in topic directory", "topic", topic, "entry", p)
				continue
			}
			dir := filepath.Join(s.topicsDir(), topic, p)
			l, rep, err := seglog.Open(s.fs, dir, s.cfg.Log)
			if err != nil {
				return fmt.Errorf("server: open partition %s/%s: %w", topic, p, err)
			}
			attrs := []any{"topic", topic, "partition", p, "segments", rep.Segments,
				"trusted", rep.Trusted, "scanned", len(rep.Scanned), "scanned_bytes", rep.ScannedBytes,
				"start", rep.StartOffset, "end", rep.EndOffset, "took", rep.Duration}
			if rep.Torn != nil {
				attrs = append(attrs, "torn_segment", rep.Torn.Segment, "torn_position", rep.Torn.Position,
					"torn_bytes_dropped", rep.Torn.Dropped)
			}
			s.logger.Info("recovered partition", attrs...)
			s.logs[topic+"/"+p] = l
		}
	}
	return nil
}

// Shutdown closes every partition log (syncing and sealing it, so the next
// start need not scan) and releases the data directory.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.stopped {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- s.closeLocked() }()
	select {
	case err := <-done:
		s.logger.Info("spool stopped", "data", s.cfg.DataDir)
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) closeLocked() error {
	s.stopped = true
	var errs []error
	for name, l := range s.logs {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", name, err))
		}
	}
	s.logs = map[string]*seglog.Log{}
	if s.lock != nil {
		if err := s.lock.Close(); err != nil {
			errs = append(errs, err)
		}
		s.lock = nil
	}
	return errors.Join(errs...)
}

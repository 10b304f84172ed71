// Package kafka speaks the Apache Kafka wire protocol on top of the broker,
// so existing Kafka clients and tools work unchanged. Request and response
// structs come from github.com/twmb/franz-go/pkg/kmsg; the connection loop,
// the semantics and the storage are Spool's. One file per API key, named by
// its number (00_produce.go, 01_fetch.go, …), each opening with a comment on
// behaviour and version differences.
//
// A Kafka topic is a Spool topic; a Kafka consumer group's committed offsets
// are a Spool stream subscription's; record batches are stored exactly as
// produced and fetched without re-encoding.
package kafka

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/broker"
)

// Config configures the Kafka front end.
type Config struct {
	// AdvertisedHost and AdvertisedPort are what Metadata tells clients to
	// connect to; default the listener's address.
	AdvertisedHost string
	AdvertisedPort int32
	// NodeID is this broker's id; default 0.
	NodeID int32
	// ClusterID is reported in Metadata and DescribeCluster.
	ClusterID string
	// MaxRequestBytes bounds a Produce request frame; default 16 MiB.
	// Other requests are bounded by MaxSmallRequestBytes (default 1 MiB),
	// because decoding multiplies a small frame's array counts into
	// allocations.
	MaxRequestBytes      int
	MaxSmallRequestBytes int
	// AutoCreateTopics creates unknown topics named in Metadata requests
	// that allow it, and on Produce; default true (Kafka's default).
	AutoCreateTopics *bool
	// GroupInitialRebalanceDelay is how long a consumer group leaving the
	// Empty state waits for more members before its first rebalance
	// (Kafka's group.initial.rebalance.delay.ms, 3 s there); nil:
	// DefaultGroupInitialRebalanceDelay.
	GroupInitialRebalanceDelay *time.Duration
	Logger                     *slog.Logger
}

// DefaultGroupInitialRebalanceDelay is the default of
// Config.GroupInitialRebalanceDelay
// (kafka.group-initial-rebalance-delay).
const DefaultGroupInitialRebalanceDelay = 100 * time.Millisecond

func (c Config) withDefaults() Config {
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 16 << 20
	}
	if c.MaxSmallRequestBytes <= 0 {
		c.MaxSmallRequestBytes = 1 << 20
	}
	if c.AutoCreateTopics == nil {
		t := true
		c.AutoCreateTopics = &t
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ClusterID == "" {
		c.ClusterID = "spool"
	}
	if c.GroupInitialRebalanceDelay == nil {
		d := defaultGroupLimits().initialDelay
		c.GroupInitialRebalanceDelay = &d
	}
	return c
}

// handler serves one API key. A nil response means no response is sent
// (Produce with acks=0). An error closes the connection.
type handler func(ctx context.Context, c *conn, req kmsg.Request) (kmsg.Response, error)

type apiEntry struct {
	min, max int16
	fn       handler
}

// Server is the Kafka protocol front end.
type Server struct {
	b         *broker.Broker
	cfg       Config
	logger    *slog.Logger
	apis      map[int16]apiEntry
	producers *producerTable     // idempotent producers; nil: none
	groups    *groupCoordinator  // classic consumer groups; nil until 11_join_group.go sets it up
	shares    *shareGroups       // share groups; nil until 76_share_group_heartbeat.go sets it up
	sessions  *fetchSessionCache // incremental fetch sessions; nil: sessionless fetches
	gcfgMu    sync.Mutex         // serializes group config changes (read, modify, store)

	mu     sync.Mutex
	lns    []net.Listener
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup

	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a Kafka front end for b.
func New(b *broker.Broker, cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{b: b, cfg: cfg, logger: cfg.Logger, apis: map[int16]apiEntry{}, conns: map[*conn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, r := range registrations {
		r(s)
	}
	return s
}

// closers are called by Close, registered by the per-feature files that
// start goroutines (e.g. group session timers).
var closers []func(*Server)

// registrations are filled by the per-API files' init functions.
var registrations []func(*Server)

// register adds an API with its supported versions.
func (s *Server) register(key, min, max int16, fn handler) {
	s.apis[key] = apiEntry{min: min, max: max, fn: fn}
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.lns = append(s.lns, ln)
	if s.cfg.AdvertisedHost == "" {
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			s.cfg.AdvertisedHost = a.IP.String()
			if s.cfg.AdvertisedPort == 0 {
				s.cfg.AdvertisedPort = int32(a.Port)
			}
		}
	}
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	for _, f := range closers {
		f(s)
	}
	return nil
}

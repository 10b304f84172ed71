// Package kafka speaks the Apache Kafka wire protocol on top of the broker,
// so existing Kafka clients and tools work unchanged. Request and response
// structs come from github.com/twmb/franz-go/pkg/kmsg; the connection loop,
// the semantics and the storage are Spool's. One file per API key, named by
// its number (00_produce.go, 01_fetch.go, …), each opening with a comment on
// behaviour and version differences; the table of APIs is in New.
//
// The Kafka semantics that keep state live in cores of their own, which
// start no goroutines (drive.go runs them): classic consumer groups and
// their committed offsets (kgroup), share groups (kshare), idempotent
// producers (internal/producer, shared with the native API: the server
// gives both front ends one table) and incremental fetch sessions (kfetch).
// Their records in the state store are the front end's space
// (broker.Space); the broker stores them without reading them.
//
// A Kafka topic is a Spool topic; a Kafka consumer group's committed offsets
// are a Spool stream subscription's; record batches are stored exactly as
// produced and fetched without re-encoding.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/kafka/kfetch"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
	"github.com/spoolmq/spool/internal/kafka/kshare"
	"github.com/spoolmq/spool/internal/membudget"
	"github.com/spoolmq/spool/internal/producer"
	"github.com/spoolmq/spool/internal/quota"
)

// ClusterView is what Metadata tells of a cluster.
type ClusterView interface {
	// Brokers lists every node with a Kafka listener, this one included.
	Brokers() []Broker
	// PartitionLeader returns the leader of partition p of the topic with
	// this id (0: none known), its leader epoch, and the partition's
	// replicas (its raft group's voters).
	PartitionLeader(topicID string, p int32) (leader int32, epoch int32, replicas []int32)
	// PartitionISR returns the replicas of partition p of the topic with
	// this id that are in sync (as its leader sees them; elsewhere the
	// replicas) and those this node is not connected to.
	PartitionISR(topicID string, p int32) (isr, offline []int32)
	// Nodes is the number of nodes of the cluster (a replication factor
	// is at most that).
	Nodes() int
	// Controller is the node that leads the cluster's metadata (0: none
	// known).
	Controller() int32
	// ReplicationFactor is how many replicas a partition of a topic
	// created without one gets (3 with three nodes or more).
	ReplicationFactor() int32
}

// Broker is a node's Kafka address.
type Broker struct {
	NodeID int32
	Host   string
	Port   int32
}

// Config configures the Kafka front end.
type Config struct {
	// AdvertisedHost and AdvertisedPort are what Metadata tells clients to
	// connect to; default the listener's address.
	AdvertisedHost string
	AdvertisedPort int32
	// NodeID is this broker's id; default 0.
	NodeID int32
	// Cluster, on a cluster node, names the brokers and the partitions'
	// leaders in Metadata; nil: this broker alone leads everything.
	Cluster ClusterView
	// ClusterID is reported in Metadata and DescribeCluster.
	ClusterID string
	// MaxRequestBytes bounds a Produce request frame; default 16 MiB.
	// Other requests are bounded by MaxSmallRequestBytes (default 1 MiB),
	// because decoding multiplies a small frame's array counts into
	// allocations.
	MaxRequestBytes      int
	MaxSmallRequestBytes int
	// ProduceBudgetBytes bounds the memory held by the Produce requests
	// of all connections together, each charged twice its frame's bytes
	// (the frame, and its batches queued in the partition logs) from
	// before its frame is read until it is answered: a connection whose
	// Produce does not fit waits, unread. Default 64 MiB (an eighth of
	// the server's default memory limit).
	ProduceBudgetBytes int64
	// AutoCreateTopics creates unknown topics named in Metadata requests
	// that allow it, and on Produce; default true (Kafka's default).
	AutoCreateTopics *bool
	// GroupInitialRebalanceDelay is how long a consumer group leaving the
	// Empty state waits for more members before its first rebalance
	// (Kafka's group.initial.rebalance.delay.ms, 3 s there); nil:
	// DefaultGroupInitialRebalanceDelay.
	GroupInitialRebalanceDelay *time.Duration
	// Producers is the idempotent-producer table shared with the native
	// API, driven by its owner (producer.Table.Run); nil: the front end
	// makes one over its own space and drives it itself.
	Producers *producer.Table
	Logger    *slog.Logger
	// Quotas are the client quotas, enforced on requests (quota.go) and
	// managed with DescribeClientQuotas and AlterClientQuotas; nil: none.
	Quotas *quota.Store
	// Hooks hear requests and connections, for metrics; nil: nobody.
	Hooks Hooks
	// Auth checks SASL credentials; nil: SASL is not offered.
	Auth Authenticator
	// Authz authorizes requests (ACLs); nil: everything is allowed.
	Authz *acl.Authorizer
	// ForwardTLS, when set, gives the TLS configuration of a connection to
	// another node's Kafka listener (share requests forwarded to the
	// coordinator) for its host: the cluster speaks TLS.
	ForwardTLS func(host string) *tls.Config
	// ACLs is the rule store DescribeAcls, CreateAcls and DeleteAcls
	// manage; nil: they answer SECURITY_DISABLED.
	ACLs *acl.Store
	// RequireAuth refuses every request but ApiVersions, SaslHandshake
	// and SaslAuthenticate (closing the connection) until the connection
	// authenticated with SASL or a verified client certificate.
	RequireAuth bool
	// AllowPlainWithoutTLS offers SASL PLAIN on connections without TLS.
	AllowPlainWithoutTLS bool
}

// ProduceBudget is the budget of the Produce requests in flight, for
// metrics.
func (s *Server) ProduceBudget() *membudget.Budget { return s.budget }

// DefaultGroupInitialRebalanceDelay is the default of
// Config.GroupInitialRebalanceDelay
// (kafka.group-initial-rebalance-delay).
const DefaultGroupInitialRebalanceDelay = kgroup.DefaultInitialDelay

func (c Config) withDefaults() Config {
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 16 << 20
	}
	if c.MaxSmallRequestBytes <= 0 {
		c.MaxSmallRequestBytes = 1 << 20
	}
	if c.ProduceBudgetBytes <= 0 {
		c.ProduceBudgetBytes = 64 << 20
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
		d := DefaultGroupInitialRebalanceDelay
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
	hooks     Hooks // never nil
	logger    *slog.Logger
	apis      map[int16]apiEntry
	space     *broker.Space   // the front end's records in the state store
	producers *producer.Table // idempotent producers
	// ownProducers: producers was made by New, which drives it.
	ownProducers bool
	groups       *kgroup.Coordinator // classic consumer groups
	// groupsTerm is the coordination term (broker.CoordinatorTerm) the
	// classic groups belong to; groupsMu serializes changing it.
	groupsTerm atomic.Uint64
	groupsMu   sync.Mutex
	offsets    *kgroup.Offsets   // their committed offsets
	shares     *kshare.Groups    // share groups
	sessions   *kfetch.Cache     // incremental fetch sessions
	gcfgMu     sync.Mutex        // serializes group config changes (read, modify, store)
	limiter    *quota.Limiter    // cfg.Quotas' limiter; nil: none
	budget     *membudget.Budget // Produce requests in flight (cfg.ProduceBudgetBytes)

	mu     sync.Mutex
	lns    []net.Listener
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup // connections
	driven sync.WaitGroup // drive.go's goroutines

	ctx    context.Context
	cancel context.CancelFunc
}

// shareTimings are the share-group timings of servers created from now on;
// tests shorten them (SetShareTimings).
var shareTimings = kshare.DefaultTimings

// New returns a Kafka front end for b, with its cores, and starts the
// goroutines that drive them (drive.go). A front end without a broker
// (tests of request decoding) starts none.
func New(b *broker.Broker, cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{b: b, cfg: cfg, logger: cfg.Logger, conns: map[*conn]struct{}{}, hooks: cfg.Hooks}
	if s.hooks == nil {
		s.hooks = nopHooks{}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.budget = membudget.New(cfg.ProduceBudgetBytes)
	if cfg.Quotas != nil {
		s.limiter = cfg.Quotas.Limiter()
	}
	lim := kgroup.DefaultLimits()
	lim.InitialDelay = max(0, *cfg.GroupInitialRebalanceDelay)
	s.groups = kgroup.New(clock.Real, lim)
	s.sessions = kfetch.NewCache()
	s.shares = kshare.New(b, cfg.Logger, shareTimings, s.loadShareSettings)
	if b != nil {
		s.space = b.Space("kafka")
		s.offsets = kgroup.NewOffsets(b, s.space)
		s.producers = cfg.Producers
		if s.producers == nil {
			s.producers = producer.New(b, s.space, cfg.Logger, clock.Real)
			s.ownProducers = true
		}
		s.drive()
	}
	s.apis = map[int16]apiEntry{
		0:  {0, 13, nil}, // answered through the connection's produce pipeline (conn.serve, pipe.go)
		1:  {4, 18, s.fetch},
		2:  {0, 10, s.listOffsets},
		3:  {0, 13, s.metadata},
		8:  {0, 10, s.offsetCommit},
		9:  {0, 10, s.offsetFetch},
		10: {0, 6, s.findCoordinator},
		11: {0, 9, s.joinGroup},
		12: {0, 4, s.heartbeat},
		13: {0, 5, s.leaveGroup},
		14: {0, 5, s.syncGroup},
		15: {0, 6, s.describeGroups},
		16: {0, 5, s.listGroups},
		17: {1, 1, s.saslHandshake}, // v0 (raw SASL frames after it) is not spoken
		18: {0, 5, s.apiVersions},
		19: {0, 7, s.createTopics},
		20: {0, 6, s.deleteTopics},
		21: {0, 2, s.deleteRecords},
		22: {0, 5, s.initProducerID},
		23: {0, 4, s.offsetForLeaderEpoch},
		29: {0, 3, s.describeACLs},
		30: {0, 3, s.createACLs},
		31: {0, 3, s.deleteACLs},
		32: {0, 4, s.describeConfigs},
		33: {0, 2, s.alterConfigs},
		36: {0, 2, s.saslAuthenticate},
		37: {0, 3, s.createPartitions},
		42: {0, 3, s.deleteGroups},
		44: {0, 1, s.incrementalAlterConfigs},
		45: {0, 1, s.alterPartitionAssignments},
		46: {0, 0, s.listPartitionReassignments},
		47: {0, 0, s.offsetDelete},
		48: {0, 1, s.describeClientQuotas},
		49: {0, 1, s.alterClientQuotas},
		60: {0, 2, s.describeCluster},
		76: {0, 1, s.shareGroupHeartbeat},
		77: {0, 1, s.shareGroupDescribe},
		78: {0, 2, s.shareFetch},
		79: {0, 2, s.shareAcknowledge},
	}
	return s
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
// goroutines, then for the cores' (the producer table snapshots once more).
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
	s.driven.Wait()
	s.groups.Close()
	return nil
}

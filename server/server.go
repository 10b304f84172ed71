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
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/api"
	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/auth/users"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/cluster"
	"github.com/spoolmq/spool/internal/console"
	"github.com/spoolmq/spool/internal/kafka"
	"github.com/spoolmq/spool/internal/producer"
	"github.com/spoolmq/spool/internal/quota"
	"github.com/spoolmq/spool/internal/schema/sreg"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/internal/telemetry"
	"github.com/spoolmq/spool/internal/tlsutil"
	"github.com/spoolmq/spool/internal/vfs"
)

// Server is a Spool broker.
type Server struct {
	cfg    Config // complete: every field set
	logger *slog.Logger

	// fs and clock are vfs.Default and clock.Real but in tests, which set
	// them through internal/serverhook before Start.
	fs    vfs.FS
	clock clock.Clock

	kafkaHost string // the advertised Kafka address, if configured
	kafkaPort int32

	mu       sync.Mutex
	started  bool
	stopped  bool
	lock     io.Closer
	st       *state.Store
	broker   *broker.Broker
	tel      *telemetry.Telemetry
	tracing  *telemetry.Tracing // nil: no tracing configured
	api      *api.Handler
	http     *http.Server
	httpLn   net.Listener
	serveErr chan error
	kafka    *kafka.Server
	kafkaLn  net.Listener
	kafkaErr chan error
	registry *sreg.Registry
	users    *users.Store // users and API keys (internal/auth/users)
	acls     *acl.Store   // access control rules (internal/auth/acl)
	srHTTP   *http.Server
	srLn     net.Listener
	srErr    chan error
	tls      *tlsutil.Reloader // nil: no TLS
	quotas   *quota.Store      // client quotas (quota.go)
	// ratesStop ends the registry's rate sampler (the catalog's producing
	// rates); ratesDone is closed when it has returned.
	ratesStop context.CancelFunc
	ratesDone chan struct{}

	// producers is the idempotent-producer table both front ends share;
	// producersDone is closed when its driver (Table.Run) has returned.
	producers     *producer.Table
	producersStop context.CancelFunc
	producersDone chan struct{}
	node          *cluster.Node // nil: a single node
	forward       *forwarder    // a cluster: publishes through other nodes
	// insecureStop ends the insecure warning's repetition (warnExposure);
	// insecureDone is closed when it has.
	insecureStop chan struct{}
	insecureDone chan struct{}
}

// New checks cfg, reporting every problem with it at once, and returns a
// server that has not started.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.complete()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, fs: vfs.Default, clock: clock.Real}
	if adv := cfg.KafkaAdvertisedAddr; adv != "" {
		s.kafkaHost, s.kafkaPort, _ = splitAdvertised(adv) // checked by complete
	}
	return s, nil
}

// Config returns the server's configuration, every field set: the zero
// fields of the Config given to New at their defaults, the data directory
// absolute.
func (s *Server) Config() Config {
	c := s.cfg
	d := *c.KafkaGroupInitialRebalanceDelay
	c.KafkaGroupInitialRebalanceDelay = &d
	return c
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

// SchemaRegistryAddr returns the address the schema registry listens on
// (after Start), "" when it is disabled.
func (s *Server) SchemaRegistryAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srLn == nil {
		return ""
	}
	return s.srLn.Addr().String()
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
		"tls", s.tls != nil, "topics", len(topics), "took", time.Since(t0).Round(time.Millisecond))
	s.warnExposure()
	return nil
}

func (s *Server) startLocked() error {
	_, statErr := s.fs.Stat(filepath.Join(s.cfg.DataDir, "state"))
	st, err := state.Open(filepath.Join(s.cfg.DataDir, "state"), state.Options{Logger: s.logger})
	if err != nil {
		return err
	}
	s.st = st
	bcfg := s.cfg.brokerConfig()
	bcfg.FS, bcfg.Clock, bcfg.State = s.fs, s.clock, st
	s.tel = telemetry.New(s.logger)
	bcfg.Log.Hooks = s.tel.StorageHooks()
	tracing, err := telemetry.TracingFromEnv(context.Background(), s.logger)
	if err != nil {
		return err
	}
	s.tracing = tracing
	bcfg.Tracer = tracing.Broker()
	// TLS first: a cluster node's peer connections speak it too.
	if err := s.startTLS(); err != nil {
		return err
	}
	if s.cfg.Cluster.Enabled() {
		if err := s.startCluster(statErr == nil); err != nil {
			return err
		}
		bcfg.Meta = s.node
		bcfg.Replicator = s.node.Replicator()
		s.forward = &forwarder{}
		if s.tls != nil {
			s.forward.tls = s.tls.PeerClientConfig
		}
		bcfg.Forward = s.forward
	}
	b, err := broker.Open(bcfg)
	if err != nil {
		return err
	}
	s.broker = b
	// The registry applies its space's changes: it must be there before
	// the metadata group applies any.
	reg, err := sreg.New(sreg.Config{Space: b.Space("schema"), Formats: sreg.Formats(), Logger: s.logger,
		Subscriptions: func(topic, sub string) bool {
			subs, err := b.Subscriptions(topic)
			return err == nil && slices.ContainsFunc(subs, func(s catalog.Subscription) bool { return s.Name == sub })
		}})
	if err != nil {
		return fmt.Errorf("server: schema registry: %w", err)
	}
	s.registry = reg
	b.SetSchemaValidator(reg)
	if err := s.startQuotas(b); err != nil {
		return err
	}
	// The user store applies the "auth" space's changes: there before
	// the metadata group applies any, like the registry.
	us, err := users.New(users.Config{Space: b.Space("auth"), Now: s.clock.Now})
	if err != nil {
		return fmt.Errorf("server: user store: %w", err)
	}
	s.users = us
	// The rule store applies the "acl" space's changes: there before the
	// metadata group applies any, like the user store.
	acls, err := acl.New(acl.Config{Space: b.Space("acl"), Enabled: s.cfg.Auth.Authorization, SuperUsers: s.cfg.Auth.SuperUsers})
	if err != nil {
		return fmt.Errorf("server: access control rules: %w", err)
	}
	s.acls = acls
	if s.node != nil {
		if err := s.node.StartMetadata(b); err != nil {
			return err
		}
	}
	// One producer table for Kafka's idempotent producers and the native
	// API's batch publishing, its records in the Kafka space where they
	// have always been (docs/format/state.md).
	s.producers = producer.New(b, b.Space("kafka"), s.logger, s.clock)
	if s.cfg.Cluster.Enabled() {
		if err := s.producers.SetNode(s.cfg.Cluster.NodeID); err != nil {
			return err
		}
	}
	pctx, pcancel := context.WithCancel(context.Background())
	s.producersStop, s.producersDone = pcancel, make(chan struct{})
	go func() {
		defer close(s.producersDone)
		s.producers.Run(pctx)
	}()
	s.api = api.New(b, s.cfg.apiLimits(), s.producers, s.tel.APIHooks())
	s.tel.BindBudget("publish", s.api.PublishBudget())
	s.tel.BindBudget("publish_intake", s.api.PublishIntake())
	s.tel.BindMemoryLimit(func() int64 { return debug.SetMemoryLimit(-1) })
	s.api.AddCheck(s.problems)
	s.tel.Bind(b, s.api.Unready)
	s.api.Handle("GET /metrics", s.tel.Handler())
	s.api.Handle("GET /catalog", s.authorizeHTTP(reg.CatalogHandler(b), func(*http.Request) []httpCheck { return clusterOp(acl.Describe) }, nil))
	s.mountQuotas()
	s.api.Handle("/spool/auth/", s.authorizeHTTP(us.Handler(), managementChecks, nil))
	s.api.Handle("/spool/auth/acls", s.authorizeHTTP(acls.Handler(), managementChecks, nil))
	s.api.Handle("POST /spool/admin/backup", s.authorizeHTTP(s.backupHandler(), managementChecks, nil))
	if s.cfg.Auth.Enabled {
		s.api.SetAuthenticator(us)
	}
	s.api.SetAuthorizer(acls.Authorizer())
	if acls.Authorizer() != nil {
		reg.SetAllowed(s.registryAllowed)
	}
	console.New(console.Config{Broker: b, Registry: reg, Stats: &consoleStats{b: b}, Logger: s.logger}).Mount(authorizedMux{s, s.api})
	rctx, rcancel := context.WithCancel(context.Background())
	s.ratesStop, s.ratesDone = rcancel, make(chan struct{})
	go func() {
		defer close(s.ratesDone)
		reg.RunRateSampler(rctx, b)
	}()
	if s.node != nil {
		s.api.SetCluster(s.node)
	}
	ln, err := listen("http", s.cfg.HTTPAddr, s.cfg.MaxConnections)
	if err != nil {
		return err
	}
	s.httpLn = ln
	ln = s.wrapTLS("http", ln, true)
	s.http = newHTTPServer(s.withPrincipal(s.api), s.logger, int(HTTP2ReceiveBufferOf(s.cfg.MemoryLimit)))
	s.http.ConnState = s.tel.HTTPConnState
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.http.Serve(ln) }()
	if s.cfg.KafkaAddr != "-" {
		kln, err := listen("kafka", s.cfg.KafkaAddr, s.cfg.MaxConnections)
		if err != nil {
			return err
		}
		s.kafkaLn = kln
		kln = s.wrapTLS("kafka", kln, false)
		s.kafka = kafka.New(b, kafka.Config{
			Logger:                     s.logger,
			GroupInitialRebalanceDelay: s.cfg.KafkaGroupInitialRebalanceDelay,
			AdvertisedHost:             s.kafkaHost,
			AdvertisedPort:             s.kafkaPort,
			Producers:                  s.producers,
			Quotas:                     s.quotas,
			Hooks:                      s.tel.KafkaHooks(),
			NodeID:                     s.kafkaNodeID(),
			Cluster:                    s.kafkaCluster(),
			Auth:                       s.users,
			Authz:                      s.acls.Authorizer(),
			ACLs:                       s.acls,
			ForwardTLS:                 s.forwardTLS(),
			RequireAuth:                s.cfg.Auth.Enabled,
			AllowPlainWithoutTLS:       s.cfg.Auth.AllowPlainWithoutTLS,
			ProduceBudgetBytes:         int64(KafkaProduceBudgetOf(s.cfg.MemoryLimit)),
		})
		s.tel.BindBudget("kafka_produce", s.kafka.ProduceBudget())
		s.kafkaErr = make(chan error, 1)
		go func() { s.kafkaErr <- s.kafka.Serve(kln) }()
	}
	if s.cfg.SchemaRegistryAddr != "-" {
		ln, err := listen("schema-registry", s.cfg.SchemaRegistryAddr, s.cfg.MaxConnections)
		if err != nil {
			return err
		}
		s.srLn = ln
		ln = s.wrapTLS("schema-registry", ln, true)
		s.srHTTP = newHTTPServer(s.withPrincipal(s.registryAuth(s.authorizeHTTP(reg.Handler(), s.registryChecks, registryRefuse))), s.logger, int(HTTP2ReceiveBufferOf(s.cfg.MemoryLimit)))
		s.srErr = make(chan error, 1)
		go func() { s.srErr <- s.srHTTP.Serve(ln) }()
	}
	if s.node != nil {
		kafkaAddr := ""
		if s.kafkaLn != nil {
			kafkaAddr = net.JoinHostPort(s.kafkaHost, strconv.Itoa(int(s.kafkaPort)))
			if s.kafkaHost == "" {
				kafkaAddr = s.kafkaLn.Addr().String()
			}
		}
		s.node.Advertise(s.httpLn.Addr().String(), kafkaAddr)
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
	s.stopInsecureWarnings()
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
	if s.srHTTP != nil {
		shutdownCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := s.srHTTP.Shutdown(shutdownCtx); err != nil {
			s.srHTTP.Close()
		}
		cancel()
		if err := <-s.srErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errList = append(errList, err)
		}
	}
	if s.kafka != nil {
		s.kafka.Close()
		if err := <-s.kafkaErr; err != nil {
			errList = append(errList, err)
		}
	}
	if s.ratesStop != nil {
		s.ratesStop()
		<-s.ratesDone
	}
	if s.producersStop != nil {
		s.producersStop() // the last sweep snapshots the producers
		<-s.producersDone
	}
	if s.forward != nil {
		s.forward.Close()
	}
	if s.node != nil {
		// The cluster first: it applies catalog changes to the broker.
		if err := s.node.Close(); err != nil {
			errList = append(errList, err)
		}
	}
	if s.broker != nil {
		if err := s.broker.Close(); err != nil {
			errList = append(errList, err)
		}
	}
	if s.tracing != nil {
		// The spans still queued, within a bound: an endpoint that does
		// not answer does not hold the shutdown.
		tctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.tracing.Shutdown(tctx); err != nil {
			s.logger.Warn("tracing: spans not exported at shutdown", "err", err)
		}
		cancel()
		s.tracing = nil
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

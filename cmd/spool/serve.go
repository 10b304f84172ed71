package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/bytesize"
	"github.com/spoolmq/spool/server"
)

func newServeCmd() *cobra.Command {
	var (
		cfgPath     string
		printConfig bool
		dataDir     string
		httpAddr    string
		kafkaAddr   string
		srAddr      string
		durability  string
		logFormat   string
		logLevel    string
		insecure    bool
		allowNonLo  bool
		debug       debugFlags
		memLimit    string
		clusterOpt  server.ClusterConfig
		tlsOpt      server.TLSConfig
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the broker",
		Long: "Run the broker. It opens (and recovers) its data directory, logs what it\n" +
			"recovered, serves the native API, and shuts down cleanly on SIGINT or SIGTERM.\n\n" +
			"Configuration comes from built-in defaults, then --config FILE (YAML, strict),\n" +
			"then SPOOL_* environment variables (e.g. SPOOL_HTTP_ADDR), then these flags.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fc, err := server.LoadFileConfig(cfgPath, os.Environ())
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("data") {
				fc.Data = dataDir
			}
			if f.Changed("http") {
				fc.HTTP.Addr = httpAddr
			}
			if f.Changed("kafka") {
				fc.Kafka.Addr = kafkaAddr
			}
			if f.Changed("schema-registry") {
				fc.SchemaRegistry.Addr = srAddr
			}
			if f.Changed("durability") {
				if err := fc.Topics.Durability.UnmarshalText([]byte(durability)); err != nil {
					return usageErrorf(cmd, "--durability %q: %v", durability, err)
				}
			}
			if f.Changed("memory-limit") {
				if err := fc.Memory.Limit.UnmarshalText([]byte(memLimit)); err != nil {
					return usageErrorf(cmd, "--memory-limit %q: %v", memLimit, err)
				}
			}
			if f.Changed("log-format") {
				fc.Log.Format = logFormat
			}
			if f.Changed("log-level") {
				fc.Log.Level = logLevel
			}
			if f.Changed("insecure") {
				fc.Insecure = insecure
			}
			if f.Changed("allow-non-loopback") {
				fc.AllowNonLoopback = allowNonLo
			}
			if f.Changed("node-id") {
				fc.Cluster.NodeID = clusterOpt.NodeID
			}
			if f.Changed("cluster-addr") {
				fc.Cluster.Addr = clusterOpt.Addr
			}
			if f.Changed("peers") {
				fc.Cluster.Peers = clusterOpt.Peers
			}
			if f.Changed("cluster-id") {
				fc.Cluster.ID = clusterOpt.ID
			}
			if f.Changed("join") {
				fc.Cluster.Join = clusterOpt.Join
			}
			if f.Changed("tls-cert") {
				fc.TLS.CertFile = tlsOpt.CertFile
			}
			if f.Changed("tls-key") {
				fc.TLS.KeyFile = tlsOpt.KeyFile
			}
			if f.Changed("tls-client-ca") {
				fc.TLS.CAFile = tlsOpt.CAFile
			}
			if f.Changed("tls-client-auth") {
				fc.TLS.ClientAuth = tlsOpt.ClientAuth
			}
			if printConfig {
				out, err := fc.Marshal()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			scfg, err := fc.Config()
			if err != nil {
				return err
			}
			logger := scfg.Logger
			scfg.DebugAddr = debug.addr // checked with the server's listeners
			srv, err := server.New(scfg)
			if err != nil {
				return err
			}
			// Catch signals before starting, so that a signal arriving during
			// start-up still gets a clean shutdown.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger.Info("starting", "version", versionString(), "data", srv.DataDir(), "default_durability", fc.Topics.Durability)
			applyMemoryLimit(logger, fc.Memory.Limit)
			stopDebug, err := startDebug(debug, logger)
			if err != nil {
				return usageErrorf(cmd, "%v", err)
			}
			defer stopDebug()
			if err := srv.Start(); err != nil {
				return err
			}
			<-ctx.Done()
			logger.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		},
	}
	def := server.DefaultFileConfig()
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config file (also SPOOL_CONFIG)")
	f.BoolVar(&printConfig, "print-config", false, "print the effective configuration and exit")
	f.StringVar(&dataDir, "data", def.Data, "data directory")
	f.StringVar(&httpAddr, "http", def.HTTP.Addr, "native API listen address")
	f.StringVar(&kafkaAddr, "kafka", def.Kafka.Addr, `Kafka protocol listen address ("-" disables it)`)
	f.StringVar(&srAddr, "schema-registry", def.SchemaRegistry.Addr, `schema registry (Confluent REST API) listen address ("-" disables it)`)
	f.StringVar(&durability, "durability", string(def.Topics.Durability), "default durability of new topics: always, interval or none (interval and none can lose acknowledged data on power loss)")
	f.StringVar(&memLimit, "memory-limit", def.Memory.Limit.String(), "the process's memory budget (memory.limit): the Go runtime's soft limit unless GOMEMLIMIT is set; the publish budgets derive from it")
	f.StringVar(&logFormat, "log-format", def.Log.Format, "log format: text or json")
	f.StringVar(&logLevel, "log-level", def.Log.Level, "log level: debug, info, warn or error")
	f.BoolVar(&insecure, "insecure", def.Insecure, "accept listeners on non-loopback addresses without authentication (auth.enabled off, or --debug-addr); warns every minute")
	f.BoolVar(&allowNonLo, "allow-non-loopback", def.AllowNonLoopback, "deprecated: --insecure")
	f.Uint64Var(&clusterOpt.NodeID, "node-id", 0, "this node's id in a cluster (with --peers; never reused)")
	f.StringVar(&clusterOpt.Addr, "cluster-addr", "", "where this node listens for its peers (default: its address in --peers)")
	f.StringVar(&clusterOpt.Peers, "peers", "", "the cluster's initial nodes, this one among them: 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT (the same on every node)")
	f.StringVar(&clusterOpt.ID, "cluster-id", "", "the cluster's id (32 hex digits; default derived from --peers)")
	f.BoolVar(&clusterOpt.Join, "join", false, "join a running cluster (after `spool cluster add-node`, which prints the flags) instead of starting one")
	f.StringVar(&tlsOpt.CertFile, "tls-cert", "", "PEM certificate: every listener speaks TLS (with --tls-key; reloaded when the file changes)")
	f.StringVar(&tlsOpt.KeyFile, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&tlsOpt.CAFile, "tls-client-ca", "", "PEM CA certificates that sign client certificates (for --tls-client-auth request or require)")
	f.StringVar(&tlsOpt.ClientAuth, "tls-client-auth", def.TLS.ClientAuth, "client certificates: none, request (verified when given) or require (mutual TLS)")
	f.StringVar(&debug.addr, "debug-addr", "", "serve Go profiles and execution traces (/debug/pprof/) on this address (off when empty)")
	f.IntVar(&debug.blockRate, "debug-block-profile-rate", 0, "with --debug-addr: record blocking events lasting this many nanoseconds or more (0: off; costs latency)")
	f.IntVar(&debug.mutexFraction, "debug-mutex-profile-fraction", 0, "with --debug-addr: record 1 in N mutex contention events (0: off)")
	return cmd
}

// applyMemoryLimit makes memory.limit, less a margin, the Go runtime's
// soft memory limit (server.SoftMemoryLimitOf), unless GOMEMLIMIT is set:
// the operator's GOMEMLIMIT wins (the runtime read it at start).
func applyMemoryLimit(logger *slog.Logger, limit bytesize.Size) {
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		logger.Info("memory limit from GOMEMLIMIT", "gomemlimit", env, "memory_limit", limit.String())
		return
	}
	soft := server.SoftMemoryLimitOf(limit)
	debug.SetMemoryLimit(int64(soft))
	logger.Info("memory limit", "memory_limit", limit.String(), "go_soft_limit", soft.String())
}

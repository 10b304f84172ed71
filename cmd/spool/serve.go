package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/config"
	"github.com/spoolmq/spool/server"
)

func newServeCmd() *cobra.Command {
	var (
		cfgPath     string
		printConfig bool
		dataDir     string
		httpAddr    string
		kafkaAddr   string
		durability  string
		logFormat   string
		logLevel    string
		allowNonLo  bool
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
			if cfgPath == "" {
				cfgPath = os.Getenv("SPOOL_CONFIG")
			}
			fc, err := loadFileConfig(cfgPath, os.Environ())
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
			if f.Changed("durability") {
				fc.Topics.Durability = durability
			}
			if f.Changed("log-format") {
				fc.Log.Format = logFormat
			}
			if f.Changed("log-level") {
				fc.Log.Level = logLevel
			}
			if f.Changed("allow-non-loopback") {
				fc.AllowNonLoopback = allowNonLo
			}
			if printConfig {
				out, err := config.Marshal(fc)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(out)
				return err
			}
			logger, err := newLogger(fc.Log.Format, fc.Log.Level)
			if err != nil {
				return err
			}
			scfg, err := fc.serverConfig(logger)
			if err != nil {
				return err
			}
			srv, err := server.New(scfg)
			if err != nil {
				return err
			}
			// Catch signals before starting, so that a signal arriving during
			// start-up still gets a clean shutdown.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if fc.AllowNonLoopback {
				logger.Warn("listening on non-loopback addresses is allowed and Spool has no authentication yet: anyone who can reach the port can read and write everything")
			}
			logger.Info("starting", "version", versionString(), "data", srv.DataDir(), "default_durability", fc.Topics.Durability)
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
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config file (also SPOOL_CONFIG)")
	f.BoolVar(&printConfig, "print-config", false, "print the effective configuration and exit")
	f.StringVar(&dataDir, "data", server.DefaultDataDir, "data directory")
	f.StringVar(&httpAddr, "http", server.DefaultHTTPAddr, "native API listen address")
	f.StringVar(&kafkaAddr, "kafka", server.DefaultKafkaAddr, `Kafka protocol listen address ("-" disables it)`)
	f.StringVar(&durability, "durability", "always", "default durability of new topics: always, interval or none (interval and none can lose acknowledged data on power loss)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.BoolVar(&allowNonLo, "allow-non-loopback", false, "allow listening on non-loopback addresses (there is no authentication yet)")
	return cmd
}

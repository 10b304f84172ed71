package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/server"
)

func newServeCmd() *cobra.Command {
	var (
		dataDir   string
		syncMode  string
		logFormat string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the broker",
		Long: "Run the broker. It opens (and recovers) its data directory, logs what it\n" +
			"recovered, and shuts down cleanly on SIGINT or SIGTERM.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(logFormat)
			if err != nil {
				return err
			}
			policy, err := seglog.ParsePolicy(syncMode)
			if err != nil {
				return err
			}
			srv, err := server.New(server.Config{
				DataDir: dataDir,
				Logger:  logger,
				Log:     seglog.Options{Sync: policy},
			})
			if err != nil {
				return err
			}
			// Catch signals before starting, so that a signal arriving during
			// start-up still gets a clean shutdown.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			logger.Info("starting", "version", versionString(), "data", srv.DataDir(), "durability", policy.String())
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
	cmd.Flags().StringVar(&dataDir, "data", server.DefaultDataDir, "data directory")
	cmd.Flags().StringVar(&syncMode, "durability", "always", "fsync policy for partition logs: always, interval or none (interval and none can lose acknowledged data on power loss)")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func newLogger(format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, nil)), nil
	}
	return nil, fmt.Errorf("unknown log format %q (want text or json)", format)
}

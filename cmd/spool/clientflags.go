package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/tlsutil"
)

// defaultServer is where the client commands look for a broker unless told
// otherwise: the address `spool serve` listens on by default.
const defaultServer = client.DefaultAddr

// addServerFlag adds the global --server flag, whose default comes from
// SPOOL_SERVER.
func addServerFlag(root *cobra.Command) {
	def := os.Getenv("SPOOL_SERVER")
	if def == "" {
		def = defaultServer
	}
	root.PersistentFlags().String("server", def,
		"`URL` of the Spool server the client commands talk to, http://host:port or https://host:port (TLS); several nodes of a cluster separated by commas (env SPOOL_SERVER)")
	root.PersistentFlags().String("api-key", "",
		"`KEY`: API key sent as a bearer token to servers with authentication enabled (env SPOOL_API_KEY; prefer the variable: a flag shows in the process list)")
	root.PersistentFlags().String("tls-ca", "", "`FILE`: PEM CA certificates trusted for https:// servers and registries (default: the system's)")
	root.PersistentFlags().String("tls-cert", "", "`FILE`: PEM client certificate for servers that require one (mutual TLS; with --tls-key)")
	root.PersistentFlags().String("tls-key", "", "`FILE`: PEM private key of --tls-cert")
}

// apiKey returns cmd's --api-key, else SPOOL_API_KEY ("": none).
func apiKey(cmd *cobra.Command) string {
	if k, _ := cmd.Flags().GetString("api-key"); k != "" {
		return k
	}
	return os.Getenv("SPOOL_API_KEY")
}

// clientTLS returns the TLS configuration cmd's --tls-ca, --tls-cert and
// --tls-key make, nil when none is set (https:// then trusts the system's
// CAs).
func clientTLS(cmd *cobra.Command) (*tls.Config, error) {
	f := cmd.Flags()
	ca, _ := f.GetString("tls-ca")
	cert, _ := f.GetString("tls-cert")
	key, _ := f.GetString("tls-key")
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	c, err := tlsutil.ClientConfig(ca, cert, key)
	if err != nil {
		return nil, usageErrorf(cmd, "--tls-ca, --tls-cert, --tls-key: %v", err)
	}
	return c, nil
}

// newClient returns an SDK client for the --server of cmd: one address or
// several, separated by commas (nodes of one cluster; the client goes on
// through the next when one is down). A bare host:port is taken as
// http://host:port; https:// addresses use --tls-ca, --tls-cert and
// --tls-key. The SDK's warnings (reconnects, retries) go to cmd's
// stderr.
func newClient(cmd *cobra.Command) (*client.Client, error) {
	return newClientLogging(cmd, cmd.ErrOrStderr())
}

// newClientLogging is newClient with the SDK's warnings going to logw.
func newClientLogging(cmd *cobra.Command, logw io.Writer) (*client.Client, error) {
	list, err := cmd.Flags().GetString("server")
	if err != nil {
		return nil, err
	}
	addrs := strings.Split(list, ",")
	for i, a := range addrs {
		if a = strings.TrimSpace(a); a != "" && !strings.Contains(a, "://") {
			a = "http://" + a
		}
		addrs[i] = a
	}
	tcfg, err := clientTLS(cmd)
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithClientID("spool-cli"), client.WithLogger(sdkLogger(logw))}
	if tcfg != nil {
		opts = append(opts, client.WithTLS(tcfg))
	}
	if key := apiKey(cmd); key != "" {
		opts = append(opts, client.WithAPIKey(key))
	}
	c, err := client.New(strings.Join(addrs, ","), opts...)
	if err != nil {
		return nil, usageErrorf(cmd, "--server: %s", errorText(err))
	}
	return c, nil
}

// withClient runs f with a client for cmd's --server and closes it after.
func withClient(cmd *cobra.Command, f func(ctx context.Context, c *client.Client) error) error {
	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	return f(cmd.Context(), c)
}

// errStop is returned by a command's own consumer handler to end consuming
// on purpose; it is not worth a warning.
var errStop = errors.New("stop consuming")

// sdkLogger logs the SDK's warnings and errors to w, without timestamps.
func sdkLogger(w io.Writer) *slog.Logger {
	h := slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(quietHandler{h})
}

// quietHandler drops log records about errStop, errNack and errReject.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	drop := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && (errors.Is(err, errStop) || errors.Is(err, errNack) || errors.Is(err, errReject)) {
			drop = true
		}
		return !drop
	})
	if drop {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(attrs)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}

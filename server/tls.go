package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/spoolmq/spool/internal/auth"
	"github.com/spoolmq/spool/internal/tlsutil"
)

// TLSConfig is the server's TLS (the tls section of the configuration
// file; docs/config.md, "TLS" in docs/operations.md). With CertFile and
// KeyFile set, every listener — the native API and console, Kafka, the
// schema registry, a cluster node's peer listener — speaks TLS only, with
// the one certificate; the files are re-read when they change, without a
// restart. Nodes of a cluster authenticate each other with it (mutual
// TLS against CAFile).
type TLSConfig struct {
	// CertFile is the PEM certificate chain (tls.cert-file).
	CertFile string `yaml:"cert-file"`
	// KeyFile is the certificate's PEM private key (tls.key-file).
	KeyFile string `yaml:"key-file"`
	// CAFile is the PEM bundle of CAs that sign client certificates
	// (tls.ca-file), needed by client-auth request and require.
	CAFile string `yaml:"ca-file"`
	// ClientAuth is none (default), request (a client certificate is
	// verified when given) or require (mutual TLS) (tls.client-auth). A
	// verified client certificate's subject CN is the connection's
	// principal.
	ClientAuth string `yaml:"client-auth"`
	// MinVersion is the oldest TLS version accepted, 1.2 (default) or 1.3
	// (tls.min-version).
	MinVersion string `yaml:"min-version"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// check reports what is wrong with t (complete).
func (t TLSConfig) check(cluster bool) error {
	if !t.Enabled() {
		if t.CAFile != "" || t.ClientAuth != tlsutil.ClientAuthNone {
			return errors.New("server: tls.ca-file and tls.client-auth need tls.cert-file and tls.key-file")
		}
		return nil
	}
	if err := t.util(nil).Check(); err != nil {
		return fmt.Errorf("server: tls: %w", err)
	}
	if cluster && t.CAFile == "" {
		// Nodes verify each other's certificates (mutual TLS between
		// nodes: raft, forwarded publishes and share requests).
		return errors.New("server: tls on a cluster node needs tls.ca-file: the CA that signed the nodes' certificates, which verify each other")
	}
	return nil
}

func (t TLSConfig) util(s *Server) tlsutil.Config {
	c := tlsutil.Config{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile, ClientAuth: t.ClientAuth, MinVersion: t.MinVersion}
	if s != nil {
		c.Logger = s.logger
	}
	return c
}

// startTLS loads the certificate files, if TLS is configured.
func (s *Server) startTLS() error {
	if !s.cfg.TLS.Enabled() {
		return nil
	}
	r, err := tlsutil.NewReloader(s.cfg.TLS.util(s))
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.tls = r
	return nil
}

// wrapTLS returns ln speaking TLS when it is configured; http: the
// listener serves HTTP (HTTP/2 by ALPN, and HTTP/1.1).
func (s *Server) wrapTLS(name string, ln net.Listener, http bool) net.Listener {
	if s.tls == nil {
		return ln
	}
	var protos []string
	if http {
		protos = []string{"h2", "http/1.1"}
	}
	return tls.NewListener(ln, s.tls.ServerConfig(name, protos...))
}

// withPrincipal puts the principal of a request's verified client
// certificate into its context (auth.Principal), when client certificates
// are asked for.
func (s *Server) withPrincipal(h http.Handler) http.Handler {
	if s.tls == nil || s.cfg.TLS.ClientAuth == tlsutil.ClientAuthNone {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := tlsutil.ConnPrincipal(r.TLS); p != "" {
			r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		}
		h.ServeHTTP(w, r)
	})
}

// forwardTLS is the TLS configuration of connections to other nodes'
// listeners (nil without TLS).
func (s *Server) forwardTLS() func(host string) *tls.Config {
	if s.tls == nil || s.node == nil {
		return nil
	}
	return s.tls.PeerClientConfig
}

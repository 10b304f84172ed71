// Package tlsutil is Spool's TLS: server configurations whose certificate,
// key and client CA are re-read from disk when the files change (Reloader),
// the principal a client certificate stands for (PrincipalOf), client
// configurations (ClientConfig), and the development CA and certificates
// of `spool cert dev` (GenerateDev).
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

// Client authentication modes (tls.client-auth).
const (
	ClientAuthNone    = "none"    // no client certificate asked for
	ClientAuthRequest = "request" // asked for; verified against the CA when given
	ClientAuthRequire = "require" // required and verified against the CA (mutual TLS)
)

// Config names the files of a server's TLS and how it treats clients.
type Config struct {
	CertFile string // PEM certificate chain, the server's first
	KeyFile  string // PEM private key of the certificate
	// CAFile is a PEM bundle of the CAs that sign client certificates;
	// needed by ClientAuth request and require.
	CAFile string
	// ClientAuth is none (default), request or require.
	ClientAuth string
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string
	// Logger receives reload errors (warn), reloads (info) and each
	// client certificate's principal (debug); default slog.Default().
	Logger *slog.Logger
}

// Check reports what is wrong with c, without reading the files.
func (c Config) Check() error {
	var errList []error
	if c.CertFile == "" || c.KeyFile == "" {
		errList = append(errList, errors.New("cert-file and key-file must both be set"))
	}
	if _, err := clientAuth(c.ClientAuth); err != nil {
		errList = append(errList, err)
	}
	if _, err := minVersion(c.MinVersion); err != nil {
		errList = append(errList, err)
	}
	if ca, _ := clientAuth(c.ClientAuth); ca != tls.NoClientCert && c.CAFile == "" {
		errList = append(errList, fmt.Errorf("client-auth %s needs ca-file", c.ClientAuth))
	}
	return errors.Join(errList...)
}

func clientAuth(s string) (tls.ClientAuthType, error) {
	switch s {
	case "", ClientAuthNone:
		return tls.NoClientCert, nil
	case ClientAuthRequest:
		return tls.VerifyClientCertIfGiven, nil
	case ClientAuthRequire:
		return tls.RequireAndVerifyClientCert, nil
	}
	return 0, fmt.Errorf("client-auth %q: want none, request or require", s)
}

func minVersion(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("min-version %q: want 1.2 or 1.3", s)
}

// Reloader holds a server's certificate, key and client CAs, and re-reads
// them when their files change: at each handshake it stats the files (a
// few microseconds against the handshake's milliseconds) and, when one's
// size, modification time or identity (a rename over it) changed, loads
// them again. New files that do not load (a certificate without its new
// key yet, a bad PEM) leave the old ones in use; the error is logged once
// per change of the files.
type Reloader struct {
	cfg        Config
	auth       tls.ClientAuthType
	minVersion uint16
	logger     *slog.Logger

	cur atomic.Pointer[material]

	mu    sync.Mutex // serializes reloads
	seen  [3]os.FileInfo
	stamp [3]stamp // the files as last tried (loaded or not)
}

// material is one loaded generation of the files.
type material struct {
	cert *tls.Certificate
	cas  *x509.CertPool // nil without a CA file
}

type stamp struct {
	size  int64
	mtime int64
}

// NewReloader checks cfg and loads its files.
func NewReloader(cfg Config) (*Reloader, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Reloader{cfg: cfg, logger: cfg.Logger}
	r.auth, _ = clientAuth(cfg.ClientAuth)
	r.minVersion, _ = minVersion(cfg.MinVersion)
	infos, stamps, _ := r.statFiles()
	m, err := r.load()
	if err != nil {
		return nil, err
	}
	r.seen, r.stamp = infos, stamps
	r.cur.Store(m)
	return r, nil
}

func (r *Reloader) files() [3]string {
	return [3]string{r.cfg.CertFile, r.cfg.KeyFile, r.cfg.CAFile}
}

func (r *Reloader) statFiles() ([3]os.FileInfo, [3]stamp, error) {
	var infos [3]os.FileInfo
	var stamps [3]stamp
	for i, f := range r.files() {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return infos, stamps, err
		}
		infos[i], stamps[i] = fi, stamp{fi.Size(), fi.ModTime().UnixNano()}
	}
	return infos, stamps, nil
}

func (r *Reloader) load() (*material, error) {
	cert, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s and key %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	m := &material{cert: &cert}
	if r.cfg.CAFile != "" {
		pem, err := os.ReadFile(r.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: ca-file: %w", err)
		}
		m.cas = x509.NewCertPool()
		if !m.cas.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: ca-file %s holds no PEM certificate", r.cfg.CAFile)
		}
	}
	return m, nil
}

// Check stats the files and reloads them if they changed. Handshakes call
// it; it is exported for tests and for a caller that wants to reload at
// once.
func (r *Reloader) Check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	infos, stamps, err := r.statFiles()
	if err != nil {
		return // a file missing mid-rotation: keep what is loaded
	}
	changed := false
	for i := range infos {
		if infos[i] == nil {
			continue
		}
		if stamps[i] != r.stamp[i] || !os.SameFile(infos[i], r.seen[i]) {
			changed = true
		}
	}
	if !changed {
		return
	}
	r.seen, r.stamp = infos, stamps
	m, err := r.load()
	if err != nil {
		r.logger.Warn("tls: new certificate files not loaded; keeping the previous ones", "err", err)
		return
	}
	r.cur.Store(m)
	if leaf, err := x509.ParseCertificate(m.cert.Certificate[0]); err == nil {
		r.logger.Info("tls: certificate reloaded", "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
	}
}

// Certificate returns the certificate in use.
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load().cert }

// ServerConfig returns a server configuration using the current files at
// each handshake, offering nextProtos by ALPN (e.g. "h2", "http/1.1").
// Each handshake with a verified client certificate logs its principal at
// debug level.
func (r *Reloader) ServerConfig(name string, nextProtos ...string) *tls.Config {
	base := &tls.Config{MinVersion: r.minVersion, NextProtos: nextProtos}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		r.Check()
		m := r.cur.Load()
		c := &tls.Config{
			MinVersion: r.minVersion,
			NextProtos: nextProtos,
			// Full-size records from the first byte (consumers are sent
			// batches; small records, which a connection returns to after
			// each idle second, cost throughput, not latency, here).
			DynamicRecordSizingDisabled: true,
			Certificates:                []tls.Certificate{*m.cert},
			ClientAuth:                  r.auth,
			ClientCAs:                   m.cas,
		}
		if r.auth != tls.NoClientCert {
			remote := ""
			if hello.Conn != nil {
				remote = hello.Conn.RemoteAddr().String()
			}
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) > 0 {
					r.logger.Debug("tls: client certificate", "listener", name, "remote", remote, "principal", PrincipalOf(cs.PeerCertificates[0]))
				}
				return nil
			}
		}
		return c, nil
	}
	return base
}

// PrincipalOf returns the principal a verified client certificate stands
// for: its subject's common name, or when that is empty its first URI
// SAN, or its first DNS SAN; "" for none.
func PrincipalOf(cert *x509.Certificate) string {
	switch {
	case cert == nil:
		return ""
	case cert.Subject.CommonName != "":
		return cert.Subject.CommonName
	case len(cert.URIs) > 0:
		return cert.URIs[0].String()
	case len(cert.DNSNames) > 0:
		return cert.DNSNames[0]
	}
	return ""
}

// ConnPrincipal returns the principal of a handshake's verified client
// certificate, "" when the client gave none (or it was not verified).
func ConnPrincipal(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return ""
	}
	return PrincipalOf(cs.PeerCertificates[0])
}

// ClientConfig returns a client configuration trusting the CAs of caFile
// (the system's when empty) and presenting the certificate of certFile and
// keyFile when both are set (mutual TLS).
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, DynamicRecordSizingDisabled: true}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tls: CA file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: CA file %s holds no PEM certificate", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls: a client certificate needs both its certificate and its key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// PeerServerConfig returns the configuration of a cluster listener: mutual
// TLS, the peer's certificate verified against the CA file and required to
// be a node's — good for both server and client authentication, as the
// nodes' certificates are (a user's client certificate signed by the same
// CA is not enough to speak raft).
func (r *Reloader) PeerServerConfig() *tls.Config {
	base := &tls.Config{MinVersion: r.minVersion}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		r.Check()
		m := r.cur.Load()
		return &tls.Config{
			MinVersion:       r.minVersion,
			Certificates:     []tls.Certificate{*m.cert},
			ClientAuth:       tls.RequireAndVerifyClientCert,
			ClientCAs:        m.cas,
			VerifyConnection: requireNodeCert,
		}, nil
	}
	return base
}

// PeerClientConfig returns the configuration of connections to other
// nodes (raft, forwarded requests): their certificates verified against
// the CA file (the system's roots without one) for serverName, this
// node's certificate presented.
func (r *Reloader) PeerClientConfig(serverName string) *tls.Config {
	m := r.cur.Load()
	return &tls.Config{
		MinVersion: r.minVersion,
		RootCAs:    m.cas,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			r.Check()
			return r.cur.Load().cert, nil
		},
	}
}

// requireNodeCert refuses a peer whose certificate is not a node's: one
// without the server-authentication usage.
func requireNodeCert(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: a cluster peer must present its node certificate")
	}
	leaf := cs.PeerCertificates[0]
	for _, u := range leaf.ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny {
			return nil
		}
	}
	return fmt.Errorf("tls: certificate %q is not a node certificate (no server authentication usage)", PrincipalOf(leaf))
}

package server

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/spoolmq/spool/internal/tlsutil"
)

// Safe defaults. Every listener binds to loopback by default. A listener
// on any other address without authentication (auth.enabled: false, or the
// debug listener, which has none) refuses to start unless Config.Insecure
// (insecure, --insecure) accepts the exposure; the server then says so at
// start and every minute while it runs (warnInsecure). With authentication
// on, non-loopback addresses need nothing more, but a warning at start
// when they speak no TLS.

// defaultInsecureWarnEvery is how often an insecure server repeats its
// warning.
const defaultInsecureWarnEvery = time.Minute

// namedAddr is a listener's name, as messages name it, and its address.
type namedAddr struct {
	name, addr string
}

func (n namedAddr) String() string { return n.name + " " + n.addr }

// joinAddrs lists listeners for a message: "http 0.0.0.0:7070, kafka …".
func joinAddrs(ls []namedAddr) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = l.String()
	}
	return strings.Join(s, ", ")
}

// isLoopback reports whether addr (host:port) names a loopback address:
// localhost, or an IP address in 127.0.0.0/8 or ::1. An empty host (all
// interfaces) is not. A malformed address counts as loopback here: it is
// refused for what it is (checkAddr).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkAddr checks that addr is a host:port.
func checkAddr(name, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("server: %s address %q: %w", name, addr, err)
	}
	return nil
}

// serverListeners returns the listeners of c (complete) that the server
// authenticates with auth.enabled: the native API, Kafka, the schema
// registry, and on a cluster node its peer listener and the peers it
// connects to.
func (c Config) serverListeners() []namedAddr {
	ls := []namedAddr{{"http", c.HTTPAddr}}
	if c.KafkaAddr != "-" {
		ls = append(ls, namedAddr{"kafka", c.KafkaAddr})
	}
	if c.SchemaRegistryAddr != "-" {
		ls = append(ls, namedAddr{"schema-registry", c.SchemaRegistryAddr})
	}
	if c.Cluster.Enabled() && c.Cluster.Addr != "" {
		ls = append(ls, namedAddr{"cluster", c.Cluster.Addr})
		peers, _ := ParsePeers(c.Cluster.Peers)
		ids := make([]uint64, 0, len(peers))
		for id := range peers {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			if id != c.Cluster.NodeID && peers[id] != c.Cluster.Addr {
				ls = append(ls, namedAddr{fmt.Sprintf("cluster peer %d", id), peers[id]})
			}
		}
	}
	return ls
}

// exposed returns the listeners of c (complete) on non-loopback addresses
// without authentication: those of the server when auth.enabled is off —
// but with mutual TLS required (tls.client-auth: require), a verified
// client certificate authenticates every connection, and with TLS a
// cluster's peer connections are always mutually authenticated — and the
// debug listener, which has none.
func (c Config) exposed() []namedAddr {
	var out []namedAddr
	mtls := c.TLS.Enabled() && c.TLS.ClientAuth == tlsutil.ClientAuthRequire
	if !c.Auth.Enabled && !mtls {
		for _, l := range c.serverListeners() {
			if !isLoopback(l.addr) && !(c.TLS.Enabled() && strings.HasPrefix(l.name, "cluster")) {
				out = append(out, l)
			}
		}
	}
	if c.DebugAddr != "" && !isLoopback(c.DebugAddr) {
		out = append(out, namedAddr{"debug", c.DebugAddr})
	}
	return out
}

// insecureOptions tells the ways to accept an exposure.
const insecureOptions = "insecure: true (--insecure, SPOOL_INSECURE=true)"

// checkExposure refuses, unless c.Insecure, the listeners of c (complete)
// that would be reachable beyond this machine without authentication.
func (c Config) checkExposure() error {
	if c.Insecure {
		return nil
	}
	var errList []error
	var srv []namedAddr
	for _, l := range c.exposed() {
		if l.name == "debug" {
			errList = append(errList, fmt.Errorf("server: the debug listener (--debug-addr %s) is not on a loopback address: "+
				"its profiles show the process's memory and it has no authentication; bind it to 127.0.0.1, or accept the exposure with %s", l.addr, insecureOptions))
			continue
		}
		srv = append(srv, l)
	}
	if len(srv) == 0 {
		return errors.Join(errList...)
	}
	msg := fmt.Sprintf("server: refusing to listen on non-loopback addresses without authentication (%s): anyone who can reach them could read and write everything. ", joinAddrs(srv))
	if c.Cluster.Enabled() {
		msg += "Bind them to loopback, turn on TLS (tls.*, with tls.ca-file: the nodes then authenticate each other) and authenticate clients — " +
			"require their certificates (tls.client-auth: require), or enable auth.enabled, which on a cluster needs client certificates too (tls.client-auth: request or require: " +
			"nodes authenticate the requests they forward with theirs) — or accept the exposure with " + insecureOptions
	} else {
		msg += "Either enable authentication (auth.enabled: true, after creating a user and an API key with `spool user`: docs/operations.md, \"Users and keys\"), " +
			"or accept the exposure with " + insecureOptions
	}
	return errors.Join(append([]error{errors.New(msg)}, errList...)...)
}

// insecureWarning is the warning an insecure server logs at start and
// every minute.
const insecureWarning = "insecure: listening without authentication on non-loopback addresses: anyone who can reach them can read and write everything (enable auth.enabled, or bind to loopback)"

// warnExposure logs, at start, what the listeners of s expose (with their
// bound addresses), and starts repeating the insecure warning every
// cfg.insecureWarnEvery until the server stops. s.mu is held.
func (s *Server) warnExposure() {
	if s.cfg.AllowNonLoopback {
		s.logger.Warn("allow-non-loopback is deprecated: it means insecure (set insecure: true, --insecure or SPOOL_INSECURE=true instead)")
	}
	if s.cfg.Auth.Enabled && !s.cfg.TLS.Enabled() {
		var plain []namedAddr
		for _, l := range s.boundListeners(s.cfg.serverListeners()) {
			if !isLoopback(l.addr) && !strings.HasPrefix(l.name, "cluster") {
				plain = append(plain, l)
			}
		}
		if len(plain) > 0 {
			s.logger.Warn("authentication is on but TLS is off on non-loopback listeners: API keys, passwords and messages travel in clear (set tls.cert-file and tls.key-file)",
				"listeners", joinAddrs(plain))
		}
	}
	exposed := s.boundListeners(s.cfg.exposed())
	if !s.cfg.Insecure || len(exposed) == 0 {
		return
	}
	list := joinAddrs(exposed)
	s.logger.Warn(insecureWarning, "listeners", list)
	every := s.cfg.insecureWarnEvery
	if every <= 0 {
		every = defaultInsecureWarnEvery
	}
	stop, done := make(chan struct{}), make(chan struct{})
	s.insecureStop, s.insecureDone = stop, done
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s.logger.Warn(insecureWarning, "listeners", list)
			}
		}
	}()
}

// stopInsecureWarnings ends warnExposure's repeating warning. s.mu is
// held.
func (s *Server) stopInsecureWarnings() {
	if s.insecureStop != nil {
		close(s.insecureStop)
		<-s.insecureDone
		s.insecureStop = nil
	}
}

// boundListeners returns ls with the ports the server's own listeners
// are bound to (a port 0 resolved; the host as configured, 0.0.0.0 rather
// than the listener's [::]). s.mu is held.
func (s *Server) boundListeners(ls []namedAddr) []namedAddr {
	out := make([]namedAddr, len(ls))
	for i, l := range ls {
		var ln net.Listener
		switch l.name {
		case "http":
			ln = s.httpLn
		case "kafka":
			ln = s.kafkaLn
		case "schema-registry":
			ln = s.srLn
		}
		if ln != nil {
			host, _, err1 := net.SplitHostPort(l.addr)
			_, port, err2 := net.SplitHostPort(ln.Addr().String())
			if err1 == nil && err2 == nil {
				l.addr = net.JoinHostPort(host, port)
			}
		}
		out[i] = l
	}
	return out
}

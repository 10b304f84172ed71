package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Every listener Spool opens is created here, so that TLS and
// authentication can wrap them in one place; exposure.go checks their
// addresses.

// listen opens a TCP listener that accepts at most maxConns connections at
// once (Config.MaxConnections); further clients wait in the kernel's
// backlog.
func listen(name, addr string, maxConns int) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server: %s listener: %w", name, err)
	}
	return netutil.LimitListener(ln, maxConns), nil
}

// newHTTPServer serves h over HTTP/1.1 and HTTP/2: cleartext (h2c), which
// Connect's bidirectional streams need without TLS, or over TLS by ALPN
// when its listener speaks TLS (wrapTLS). An HTTP/2 connection buffers at
// most recvBuf bytes its handlers have not read yet (its receive window).
func newHTTPServer(h http.Handler, logger *slog.Logger, recvBuf int) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	srv.Protocols = &p
	srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 100,
		MaxReceiveBufferPerConnection: recvBuf, MaxReceiveBufferPerStream: recvBuf}
	return srv
}

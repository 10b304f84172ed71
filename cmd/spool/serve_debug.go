package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"
)

// debugFlags are spool serve's profiling settings: off unless --debug-addr
// is given.
type debugFlags struct {
	addr          string
	blockRate     int
	mutexFraction int
}

// startDebug serves Go's profiles (/debug/pprof/: CPU, heap, goroutines,
// block, mutex, execution trace) on their own listener, and turns on the
// block and mutex profiles at the given rates. It returns the stop
// function. The address has been checked with the server's listeners
// (server.Config.DebugAddr): loopback only unless --insecure.
func startDebug(d debugFlags, logger *slog.Logger) (func(), error) {
	if d.addr == "" {
		if d.blockRate != 0 || d.mutexFraction != 0 {
			return nil, errors.New("--debug-block-profile-rate and --debug-mutex-profile-fraction need --debug-addr")
		}
		return func() {}, nil
	}
	if d.blockRate < 0 || d.mutexFraction < 0 {
		return nil, errors.New("profile rates must not be negative")
	}
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	runtime.SetBlockProfileRate(d.blockRate)
	runtime.SetMutexProfileFraction(d.mutexFraction)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("debug listener failed", "err", err)
		}
	}()
	logger.Info("serving profiles", "addr", ln.Addr().String(), "block_profile_rate", d.blockRate, "mutex_profile_fraction", d.mutexFraction)
	return func() { hs.Close() }, nil
}

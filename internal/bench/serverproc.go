package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spoolmq/spool/server"
)

// Server is a running Spool server under measurement.
type Server struct {
	URL         string // native API, "http://host:port"
	KafkaAddr   string // Kafka listener, host:port
	RegistryURL string // schema registry, "http://host:port"
	PID         int    // the server's process id; 0 when it runs in this process
}

// ServerStarter starts a Spool server keeping its data in dataDir (which
// it creates) and returns it with a function that stops it. The stop
// function is safe to call more than once.
type ServerStarter func(ctx context.Context, dataDir string) (Server, func() error, error)

// serverReadyTimeout bounds a started server's time to answer /readyz and
// accept Kafka connections.
const serverReadyTimeout = 30 * time.Second

// serverStopTimeout bounds a server's clean shutdown after SIGTERM before
// it is killed.
const serverStopTimeout = 15 * time.Second

// ProcessServer returns a starter that runs `exe serve` as a separate
// process, as users run Spool: default configuration (the SPOOL_*
// variables of this process are not passed on), durability always, the
// native API and the Kafka listener on free loopback ports. The process
// gets its own process group, so that a ctrl-C at the terminal reaches
// only the benchmark, which then stops the server; on Linux the kernel
// also kills it if the benchmark dies without stopping it. extra are
// further arguments of `spool serve` (such as --debug-addr).
func ProcessServer(exe string, extra ...string) ServerStarter {
	return func(ctx context.Context, dataDir string) (Server, func() error, error) {
		var err error
		// A free port picked here can be taken before the server binds
		// it; then the server exits at once and we try new ports.
		for range 3 {
			var s Server
			var stop func() error
			s, stop, err = startProcess(ctx, exe, dataDir, extra)
			if err == nil || ctx.Err() != nil {
				return s, stop, err
			}
		}
		return Server{}, nil, err
	}
}

func startProcess(ctx context.Context, exe, dataDir string, extra []string) (Server, func() error, error) {
	httpAddr, err := freePort()
	if err != nil {
		return Server{}, nil, err
	}
	kafkaAddr, err := freePort()
	if err != nil {
		return Server{}, nil, err
	}
	registryAddr, err := freePort()
	if err != nil {
		return Server{}, nil, err
	}
	args := []string{"serve", "--data", dataDir, "--http", httpAddr, "--kafka", kafkaAddr, "--schema-registry", registryAddr,
		"--durability", "always", "--log-level", "warn"}
	cmd := exec.Command(exe, append(args, extra...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPOOL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	logs := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		return Server{}, nil, fmt.Errorf("start %s serve: %w", exe, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			select {
			case <-exited:
				stopErr = fmt.Errorf("server exited early: %v\n%s", waitErr, logs.String())
				return
			default:
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
				if waitErr != nil {
					stopErr = fmt.Errorf("server shutdown: %v\n%s", waitErr, logs.String())
				}
			case <-time.After(serverStopTimeout):
				_ = cmd.Process.Kill()
				<-exited
				stopErr = fmt.Errorf("server did not stop within %s of SIGTERM; killed", serverStopTimeout)
			}
		})
		return stopErr
	}
	s := Server{URL: "http://" + httpAddr, KafkaAddr: kafkaAddr, RegistryURL: "http://" + registryAddr, PID: cmd.Process.Pid}
	if err := waitReady(ctx, s, exited); err != nil {
		stop()
		return Server{}, nil, fmt.Errorf("%w\nserver output:\n%s", err, logs.String())
	}
	return s, stop, nil
}

// waitReady polls s until /readyz answers 200 and the Kafka listener
// accepts a connection, the process exits, ctx ends or the timeout passes.
func waitReady(ctx context.Context, s Server, exited <-chan struct{}) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(serverReadyTimeout)
	for {
		if ready(ctx, hc, s) {
			return nil
		}
		select {
		case <-exited:
			return errors.New("server exited during start-up")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after %s", serverReadyTimeout)
		}
	}
}

func ready(ctx context.Context, hc *http.Client, s Server) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	c, err := net.DialTimeout("tcp", s.KafkaAddr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// freePort returns a loopback address with a port that was free a moment
// ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// InProcessServer returns a starter that runs the server inside this
// process (tests; the separate process of ProcessServer is what users run).
func InProcessServer() ServerStarter {
	return func(_ context.Context, dataDir string) (Server, func() error, error) {
		srv, err := server.New(server.Config{DataDir: dataDir, HTTPAddr: "127.0.0.1:0", KafkaAddr: "127.0.0.1:0",
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return Server{}, nil, err
		}
		if err := srv.Start(); err != nil {
			return Server{}, nil, err
		}
		var once sync.Once
		var err2 error
		stop := func() error {
			once.Do(func() {
				ctx, cancel := context.WithTimeout(context.Background(), serverStopTimeout)
				defer cancel()
				err2 = srv.Shutdown(ctx)
			})
			return err2
		}
		return Server{URL: "http://" + srv.HTTPAddr(), KafkaAddr: srv.KafkaAddr(), RegistryURL: "http://" + srv.SchemaRegistryAddr()}, stop, nil
	}
}

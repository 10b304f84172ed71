package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmq/spool/server"
)

// serveEnv makes the test binary act as `spool serve` (the flags
// ProcessServer passes), so that the latency benchmark's separate server
// process can be tested without building the spool command.
const serveEnv = "BENCHTEST_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		os.Exit(fakeServe(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeServe runs a server as `spool serve` would with args, until SIGTERM.
func fakeServe(args []string) int {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(os.Stderr, "want serve, got", args)
		return 2
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	data := fs.String("data", "", "")
	httpAddr := fs.String("http", "", "")
	kafkaAddr := fs.String("kafka", "", "")
	registryAddr := fs.String("schema-registry", "", "")
	fs.String("durability", "", "")
	fs.String("log-level", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv, err := server.New(server.Config{DataDir: *data, HTTPAddr: *httpAddr, KafkaAddr: *kafkaAddr,
		SchemaRegistryAddr: *registryAddr, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// testServer returns a ProcessServer running this test binary as the
// server, and a function returning the pid of the last one started.
func testServer(t *testing.T) (ServerStarter, func() int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(serveEnv, "1")
	start := ProcessServer(exe)
	var pid int
	return func(ctx context.Context, dir string) (Server, func() error, error) {
		s, stop, err := start(ctx, dir)
		pid = s.PID
		return s, stop, err
	}, func() int { return pid }
}

// gone reports whether process pid has exited and been reaped.
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// TestE2ESmoke runs a tiny end-to-end latency benchmark against a server in
// a separate process so the driver stays working; real runs are `spool
// bench latency`.
func TestE2ESmoke(t *testing.T) {
	start, pid := testServer(t)
	var progress strings.Builder
	rep, err := RunE2E(context.Background(), E2EConfig{Dir: t.TempDir(), Start: start, Rates: []int{500},
		Duration: time.Second, Rounds: 1, Size: 256, Queue: true, OneAtATime: 200 * time.Millisecond,
		ThroughputMessages: 2000, RawDuration: 200 * time.Millisecond, Progress: &progress})
	t.Log(progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Started || rep.Server == "" || rep.Kafka == "" {
		t.Fatalf("report %+v", rep)
	}
	if pid() == 0 || !gone(pid()) {
		t.Errorf("server process %d still running after the benchmark", pid())
	}
	if len(rep.Raw) != 1 || rep.Raw[0].P50 <= 0 {
		t.Errorf("raw fdatasync %+v", rep.Raw)
	}
	paths := map[string]bool{}
	for _, e := range rep.E2E {
		paths[e.Path] = true
		if e.Err != "" {
			t.Errorf("%s: %s", e.Path, e.Err)
		}
		if e.Sent != 500 || e.Received != e.Sent {
			t.Errorf("%s: sent %d, received %d", e.Path, e.Sent, e.Received)
		}
		for name, q := range map[string]Quantiles{"latency": e.Latency, "corrected": e.Corrected, "lag": e.Lag} {
			if q.Count != e.Sent || q.P50 <= 0 || q.P99 < q.P50 || q.P999 < q.P99 || q.Max < q.P999 {
				t.Errorf("%s: %s %+v", e.Path, name, q)
			}
		}
		if e.SyncDuring.Count == 0 || e.SyncDuring.P50 <= 0 {
			t.Errorf("%s: fdatasync during the run %+v", e.Path, e.SyncDuring)
		}
	}
	for _, p := range []string{PathNativeStream, PathNativeQueue, PathKafka, PathKfake} {
		if !paths[p] {
			t.Errorf("no %s measurement", p)
		}
	}
	if len(rep.OneAtATime) != 4 {
		t.Errorf("one-at-a-time: %+v", rep.OneAtATime)
	}
	for _, o := range rep.OneAtATime {
		if o.Latency.Count == 0 || o.Latency.P50 <= 0 {
			t.Errorf("one-at-a-time %s: %+v", o.Path, o.Latency)
		}
	}
	if len(rep.Throughput) != 2 {
		t.Errorf("throughput: %+v", rep.Throughput)
	}
	for _, r := range rep.Throughput {
		if r.Rate <= 0 {
			t.Errorf("throughput %s: %+v", r.Client, r)
		}
	}
}

// TestE2EStopsServerOnCancel checks that a cancelled run stops the server
// it started.
func TestE2EStopsServerOnCancel(t *testing.T) {
	start, pid := testServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	_, err := RunE2E(ctx, E2EConfig{Dir: t.TempDir(), Start: start, Rates: []int{200}, Duration: time.Minute,
		Rounds: 1, Size: 256, RawDuration: 100 * time.Millisecond})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if pid() == 0 || !gone(pid()) {
		t.Errorf("server process %d still running after cancel", pid())
	}
}

func TestRecorder(t *testing.T) {
	rec := newRecorder(3)
	v := make([]byte, 32)
	now := mono()
	stamp(v, now-int64(time.Millisecond), now-int64(2*time.Millisecond), 1)
	rec.record(v, now)
	rec.record(v, now) // duplicate
	stamp(v, now, now, warmSeq)
	rec.record(v, now)
	stamp(v, now, now, 7) // out of range
	rec.record(v, now)
	rec.record(v[:8], now) // too short
	if rec.got.Load() != 1 || rec.dup != 1 || rec.warm.Load() != 1 || rec.bad != 2 {
		t.Fatalf("got %d dup %d warm %d bad %d", rec.got.Load(), rec.dup, rec.warm.Load(), rec.bad)
	}
	if q := rec.lat.quantiles(); q.P50 < 999*time.Microsecond || q.P50 > 1001*time.Microsecond {
		t.Errorf("latency %v", q)
	}
	if q := rec.corr.quantiles(); q.P50 < 1998*time.Microsecond || q.P50 > 2002*time.Microsecond {
		t.Errorf("corrected %v", q)
	}
}

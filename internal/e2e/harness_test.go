// Package e2e runs the real spool binary and talks to it over the network
// with the generated native-API clients: restarts, crashes (SIGKILL),
// fan-out, replay and backpressure, as a user would see them.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

var spoolBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "spool-e2e-bin")
	if err != nil {
		panic(err)
	}
	spoolBin = filepath.Join(dir, "spool")
	out, err := exec.Command("go", "build", "-race", "-o", spoolBin, "github.com/spoolmq/spool/cmd/spool").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build spool: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running spool serve.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	logs *logBuf
	done chan error
}

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// handedOut holds the addresses freePort returned: the kernel may give a
// port just closed to the next bind to port 0, and two nodes of one test
// handed the same port would collide when they start.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freePort returns a loopback address free now and never returned before
// in this process.
func freePort(t *testing.T) string {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		handedOut.Lock()
		seen := handedOut.addrs[addr]
		handedOut.addrs[addr] = true
		handedOut.Unlock()
		if !seen {
			return addr
		}
	}
	t.Fatal("no fresh loopback port in 100 tries")
	return ""
}

// startSpool starts `spool serve` on dir and waits until /readyz answers.
func startSpool(t *testing.T, dir, addr string, extra ...string) *proc {
	t.Helper()
	p, exited := startSpoolEnv(t, dir, addr, nil, false, extra...)
	if exited {
		t.Fatalf("spool exited during start-up\n%s", p.logs)
	}
	return p
}

// startSpoolEnv is startSpool with env added to the server's environment.
// With mayExit, a server that exits during start-up is returned with
// exited true (its exit status in p.exit) instead of failing the test.
func startSpoolEnv(t *testing.T, dir, addr string, env []string, mayExit bool, extra ...string) (p *proc, exited bool) {
	t.Helper()
	args := append([]string{"serve", "--data", dir, "--http", addr, "--kafka", "127.0.0.1:0", "--schema-registry", "127.0.0.1:0", "--log-level", "debug"}, extra...)
	cmd := exec.Command(spoolBin, args...)
	// The server refuses unknown SPOOL_* variables; keep the test's own out
	// (and its crash point: only env arms one).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPOOL_") && !strings.HasPrefix(kv, "SPOOLTEST_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p = &proc{t: t, cmd: cmd, addr: addr, logs: &logBuf{}, done: make(chan error, 1)}
	cmd.Stdout = p.logs
	cmd.Stderr = p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, false
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			if mayExit {
				return p, true
			}
			t.Fatalf("spool exited during start-up: %v\n%s", err, p.logs)
		default:
		}
		if time.Now().After(deadline) {
			p.kill()
			t.Fatalf("spool did not become ready\n%s", p.logs)
			return p, true
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill kills the process and waits for it to end; its exit status stays
// in p.done for a later reader.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.done
	p.done <- err
}

func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("spool exited with %v after SIGTERM\n%s", err, p.logs)
		}
	case <-time.After(60 * time.Second):
		p.kill()
		p.t.Fatalf("spool did not stop after SIGTERM\n%s", p.logs)
	}
}

// clients bundles the generated clients for one server.
type clients struct {
	hc      *http.Client
	topics  spoolv1connect.TopicServiceClient
	subs    spoolv1connect.SubscriptionServiceClient
	publish spoolv1connect.PublishServiceClient
	consume spoolv1connect.ConsumeServiceClient
}

func newClients(addr string) *clients {
	var prot http.Protocols
	prot.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: &prot}}
	base := "http://" + addr
	return &clients{
		hc:      hc,
		topics:  spoolv1connect.NewTopicServiceClient(hc, base),
		subs:    spoolv1connect.NewSubscriptionServiceClient(hc, base),
		publish: spoolv1connect.NewPublishServiceClient(hc, base),
		consume: spoolv1connect.NewConsumeServiceClient(hc, base),
	}
}

func (c *clients) close() { c.hc.CloseIdleConnections() }

func (c *clients) createTopic(t *testing.T, name string, cfg *spoolv1.TopicConfig) {
	t.Helper()
	if _, err := c.topics.CreateTopic(context.Background(), connect.NewRequest(&spoolv1.CreateTopicRequest{Name: name, Config: cfg})); err != nil {
		t.Fatal(err)
	}
}

func (c *clients) createSub(t *testing.T, topic, name string, cfg *spoolv1.SubscriptionConfig) {
	t.Helper()
	if _, err := c.subs.CreateSubscription(context.Background(), connect.NewRequest(&spoolv1.CreateSubscriptionRequest{Topic: topic, Name: name, Config: cfg})); err != nil {
		t.Fatal(err)
	}
}

// consumer is one member on a Consume stream. One goroutine reads the
// stream into ch.
type consumer struct {
	stream *connect.BidiStreamForClient[spoolv1.ConsumeRequest, spoolv1.ConsumeResponse]
	cancel context.CancelFunc
	ch     chan item
	gen    int64
	owned  map[int32]bool
}

type item struct {
	resp *spoolv1.ConsumeResponse
	err  error
}

func (c *clients) join(t *testing.T, topic, sub string, credits int32) *consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := c.consume.Consume(ctx)
	if err := s.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: &spoolv1.ConsumeStart{
		Topic: topic, Subscription: sub, Credits: credits, ClientId: t.Name()}}}); err != nil {
		cancel()
		t.Fatal(err)
	}
	cs := &consumer{stream: s, cancel: cancel, ch: make(chan item, 64), owned: map[int32]bool{}}
	go func() {
		for {
			r, err := s.Receive()
			cs.ch <- item{r, err}
			if err != nil {
				close(cs.ch)
				return
			}
		}
	}()
	return cs
}

func (cs *consumer) handle(r *spoolv1.ConsumeResponse) []*spoolv1.Delivery {
	if a := r.GetAssignment(); a != nil {
		cs.gen = a.Generation
		cs.owned = map[int32]bool{}
		for _, p := range a.Partitions {
			cs.owned[p.Partition] = true
		}
	}
	if d := r.GetDeliveries(); d != nil {
		return d.Messages
	}
	return nil
}

// receive returns deliveries until n arrived or the stream is idle for idle.
func (cs *consumer) receive(t *testing.T, n int, idle time.Duration) []*spoolv1.Delivery {
	t.Helper()
	var out []*spoolv1.Delivery
	for len(out) < n {
		select {
		case it, ok := <-cs.ch:
			if !ok {
				return out
			}
			if it.err != nil {
				if it.err == io.EOF {
					return out
				}
				t.Fatalf("receive: %v", it.err)
			}
			out = append(out, cs.handle(it.resp)...)
		case <-time.After(idle):
			return out
		}
	}
	return out
}

// commit commits offsets and waits for the result (deliveries that arrive
// meanwhile are returned).
func (cs *consumer) commit(t *testing.T, offsets map[int32]int64) []*spoolv1.Delivery {
	t.Helper()
	var po []*spoolv1.PartitionOffset
	for p, o := range offsets {
		po = append(po, &spoolv1.PartitionOffset{Partition: p, Offset: o})
	}
	if err := cs.stream.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Commit{Commit: &spoolv1.Commit{Generation: cs.gen, Offsets: po, CommitId: 1}}}); err != nil {
		t.Fatal(err)
	}
	var got []*spoolv1.Delivery
	for {
		select {
		case it, ok := <-cs.ch:
			if !ok || it.err != nil {
				t.Fatalf("waiting for commit result: %v", it.err)
			}
			if cr := it.resp.GetCommitResult(); cr != nil {
				if cr.Error != nil {
					t.Fatalf("commit failed: %s", cr.ErrorMessage)
				}
				return got
			}
			got = append(got, cs.handle(it.resp)...)
		case <-time.After(30 * time.Second):
			t.Fatal("no commit result")
		}
	}
}

func (cs *consumer) close() {
	cs.stream.CloseRequest()
	cs.cancel()
	for range cs.ch {
	}
	cs.stream.CloseResponse()
}

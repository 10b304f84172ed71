package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
)

// clusterNode is one `spool serve` process of a test cluster.
type clusterNode struct {
	id       uint64
	bin      string
	args     []string
	httpAddr string
	cmd      *exec.Cmd
	log      *lockedBuf
	done     chan struct{}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (n *clusterNode) url() string { return "http://" + n.httpAddr }

func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	n.log = &lockedBuf{}
	n.cmd = exec.Command(n.bin, n.args...)
	for _, kv := range os.Environ() { // the server refuses unknown SPOOL_* variables
		if !strings.HasPrefix(kv, "SPOOL_") {
			n.cmd.Env = append(n.cmd.Env, kv)
		}
	}
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(n.cmd, n.done)
}

// kill stops the process with SIGKILL.
func (n *clusterNode) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

// freeLoopback returns n distinct free loopback addresses, held open until
// all are chosen so that none is handed out twice.
func freeLoopback(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}

// startCluster builds spool and starts n processes as one cluster, waiting
// until each answers /readyz.
func startCluster(t *testing.T, n int) []*clusterNode {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "spool")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/spoolmq/spool/cmd/spool").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var peers []string
	nodes := make([]*clusterNode, n)
	addrs := freeLoopback(t, 2*n)
	for i := range nodes {
		nodes[i] = &clusterNode{id: uint64(i + 1), bin: bin, httpAddr: addrs[2*i]}
		peers = append(peers, fmt.Sprintf("%d=%s", i+1, addrs[2*i+1]))
	}
	for _, nd := range nodes {
		nd.args = []string{"serve", "--data", filepath.Join(t.TempDir(), "data"), "--http", nd.httpAddr, "--kafka", "-", "--schema-registry", "127.0.0.1:0",
			"--node-id", fmt.Sprint(nd.id), "--peers", strings.Join(peers, ","), "--log-level", "info"}
		nd.start(t)
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.kill()
			if t.Failed() {
				t.Logf("node %d:\n%s", nd.id, nd.log)
			}
		}
	})
	for _, nd := range nodes {
		nd.waitReady(t)
	}
	return nodes
}

// waitReady waits until the node answers /readyz.
func (n *clusterNode) waitReady(t *testing.T) {
	t.Helper()
	retryFor(t, 60*time.Second, fmt.Sprintf("node %d ready", n.id), func() error {
		resp, err := http.Get(n.url() + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
}

// retryFor retries f every 50 ms for up to d.
func retryFor(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// createLed creates topic through c and waits until the node c reaches
// names a leader for every partition; it returns the partitions.
func createLed(t *testing.T, c *client.Client, topic string, partitions int32) []client.PartitionInfo {
	t.Helper()
	ctx := context.Background()
	retryFor(t, 30*time.Second, "create "+topic, func() error {
		_, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: partitions})
		if errors.Is(err, client.ErrTopicExists) {
			return nil
		}
		return err
	})
	var parts []client.PartitionInfo
	retryFor(t, 30*time.Second, "leaders of "+topic, func() error {
		info, err := c.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range info.Partitions {
			if p.Leader == 0 || p.LeaderAddr == "" {
				return fmt.Errorf("partition %d: no leader yet", p.Partition)
			}
		}
		parts = info.Partitions
		return nil
	})
	return parts
}

// readCommitted reads every message of topic through c until it has at least
// want of them (what is committed, from whichever node c reaches).
func readCommitted(t *testing.T, c *client.Client, topic string, want int) []*client.Message {
	t.Helper()
	var got []*client.Message
	retryFor(t, 30*time.Second, "read "+topic, func() error {
		got = got[:0]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for m, err := range c.ReadTopic(ctx, topic) {
			if err != nil {
				return err
			}
			got = append(got, m)
		}
		if len(got) < want {
			return fmt.Errorf("%d messages, want %d", len(got), want)
		}
		return nil
	})
	return got
}

// placed is where an acknowledged message landed.
type placed struct {
	partition int32
	offset    int64
}

// checkStoredOnce checks that every acknowledged value is stored exactly
// once, where its acknowledgement said, and that nothing else is stored.
func checkStoredOnce(t *testing.T, got []*client.Message, acked map[string]placed) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range got {
		v := string(m.Value)
		seen[v]++
		if seen[v] > 1 {
			t.Errorf("%q stored twice (again at %d/%d)", v, m.Partition, m.Offset)
		}
		if at, ok := acked[v]; ok && (at.partition != m.Partition || at.offset != m.Offset) {
			t.Errorf("%q acknowledged at %d/%d, stored at %d/%d", v, at.partition, at.offset, m.Partition, m.Offset)
		}
	}
	for v := range acked {
		if seen[v] != 1 {
			t.Errorf("acknowledged %q stored %d times", v, seen[v])
		}
	}
}

// TestClusterRouting runs three `spool serve` processes as a cluster and
// publishes through a node that does not lead the partitions: Publish and
// a Producer reach each partition's leader (DescribeTopic names them),
// every message is stored once, where it was acknowledged. Then the leader
// of a partition is killed (-9) while a Producer and Publish calls go on
// through a follower: both continue on the new leader, and every
// acknowledged message is stored once, in order.
func TestClusterRouting(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	nodes := startCluster(t, 3)
	byAddr := map[string]*clusterNode{}
	for _, nd := range nodes {
		byAddr[nd.httpAddr] = nd
	}
	admin, err := client.New(nodes[0].url())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	parts := createLed(t, admin, "orders", 3)
	lead0 := byAddr[parts[0].LeaderAddr]
	if lead0 == nil || lead0.id != parts[0].Leader {
		t.Fatalf("partition 0's leader %d at %q is not a node of the cluster", parts[0].Leader, parts[0].LeaderAddr)
	}
	follower := nodes[lead0.id%3] // does not lead partition 0
	t.Logf("partition leaders: %d %d %d; publishing through node %d", parts[0].Leader, parts[1].Leader, parts[2].Leader, follower.id)

	c, err := client.New(follower.url(), client.WithPublishAttempts(100), client.WithBackoff(20*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Publish: keyed messages over every partition, keyless ones, and an
	// explicit partition the follower does not lead.
	acked := map[string]placed{}
	for i := range 20 {
		msgs := []client.Message{
			{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "u%d-a", i)},
			{Key: fmt.Appendf(nil, "j%d", i), Value: fmt.Appendf(nil, "u%d-b", i)},
			{Value: fmt.Appendf(nil, "u%d-c", i)},
			client.Message{Value: fmt.Appendf(nil, "u%d-d", i)}.ToPartition(0),
		}
		res, err := c.Publish(ctx, "orders", msgs...)
		if err != nil {
			t.Fatalf("publish %d through node %d: %v", i, follower.id, err)
		}
		for k, r := range res {
			if r.Duplicate {
				t.Errorf("message %d of publish %d reported as a duplicate", k, i)
			}
			acked[string(msgs[k].Value)] = placed{r.Partition, r.Offset}
		}
	}

	// A Producer: its batches go to the leaders.
	p, err := c.NewProducer("orders", client.ProducerLinger(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var futures []*client.Future
	var values []string
	for i := range 600 {
		m := client.Message{Value: fmt.Appendf(nil, "p%d", i)}
		if i%2 == 0 {
			m.Key = fmt.Appendf(nil, "k%d", i%37)
		}
		if i%50 == 0 {
			m.ID = fmt.Sprintf("id-p%d", i) // by the message form
		}
		futures = append(futures, p.Send(ctx, m))
		values = append(values, string(m.Value))
	}
	for i, f := range futures {
		r, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("producer message %d: %v", i, err)
		}
		acked[values[i]] = placed{r.Partition, r.Offset}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkStoredOnce(t, readCommitted(t, c, "orders", len(acked)), acked)
	// Every node holds the same.
	for _, nd := range nodes {
		nc, err := client.New(nd.url())
		if err != nil {
			t.Fatal(err)
		}
		checkStoredOnce(t, readCommitted(t, nc, "orders", len(acked)), acked)
		nc.Close()
	}
	if t.Failed() {
		return
	}

	// Failover: a producer and Publish calls through a follower of the
	// partition, its leader killed meanwhile.
	fparts := createLed(t, admin, "failover", 1)
	fLeader := byAddr[fparts[0].LeaderAddr]
	if fLeader == nil {
		t.Fatalf("no node at %q", fparts[0].LeaderAddr)
	}
	via := nodes[fLeader.id%3]
	fc, err := client.New(via.url(), client.WithPublishAttempts(1000), client.WithBackoff(20*time.Millisecond, 500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	fp, err := fc.NewProducer("failover", client.ProducerLinger(time.Millisecond), client.ProducerDeliveryTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	type sent struct {
		value string
		f     *client.Future
	}
	var (
		mu        sync.Mutex
		sends     []sent
		stop      atomic.Bool
		published sync.Map // Publish calls' values acknowledged, to their placement
		wg        sync.WaitGroup
	)
	wg.Go(func() { // the producer: one key, so one order
		for i := 0; !stop.Load(); i++ {
			v := fmt.Sprintf("f%05d", i)
			f := fp.Send(ctx, client.Message{Key: []byte("k"), Value: []byte(v)})
			mu.Lock()
			sends = append(sends, sent{v, f})
			mu.Unlock()
			time.Sleep(200 * time.Microsecond)
		}
	})
	var pubErr atomic.Value
	wg.Go(func() { // Publish calls with ids, each retried until stored
		for i := 0; !stop.Load(); i++ {
			v := fmt.Sprintf("d%05d", i)
			for {
				res, err := fc.Publish(ctx, "failover", client.Message{ID: v, Value: []byte(v)})
				if err == nil {
					published.Store(v, placed{res[0].Partition, res[0].Offset})
					break
				}
				if !client.IsRetriable(err) || ctx.Err() != nil {
					pubErr.Store(fmt.Errorf("publish %s: %w", v, err))
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	ackedBy := func(n int) int { // producer messages acknowledged among the first n sent
		mu.Lock()
		defer mu.Unlock()
		k := 0
		for _, s := range sends[:min(n, len(sends))] {
			select {
			case <-s.f.Done():
				k++
			default:
			}
		}
		return k
	}
	retryFor(t, 30*time.Second, "first acknowledgements", func() error {
		if n := ackedBy(500); n < 500 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	})
	mu.Lock()
	killedAt := len(sends)
	mu.Unlock()
	t0 := time.Now()
	fLeader.kill()
	t.Logf("killed node %d, the leader of failover/0, after %d sends; producing through node %d", fLeader.id, killedAt, via.id)
	var firstAfter time.Duration
	retryFor(t, 90*time.Second, "acknowledgements after the kill", func() error {
		mu.Lock()
		after := sends[killedAt:]
		mu.Unlock()
		k := 0
		for _, s := range after {
			select {
			case <-s.f.Done():
				if k == 0 {
					firstAfter = time.Since(t0)
				}
				k++
			default:
			}
		}
		if k < 500 {
			return fmt.Errorf("%d of %d sent after the kill acknowledged", k, len(after))
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()
	if err := fp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err, _ := pubErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	t.Logf("a message sent after the kill was acknowledged within %v", firstAfter.Round(time.Millisecond))

	facked := map[string]placed{}
	var order []string
	for i, s := range sends {
		r, err := s.f.Wait(ctx)
		if err != nil {
			t.Fatalf("producer message %d (%s): %v", i, s.value, err)
		}
		facked[s.value] = placed{r.Partition, r.Offset}
		order = append(order, s.value)
	}
	published.Range(func(k, v any) bool {
		facked[k.(string)] = v.(placed)
		return true
	})
	got := readCommitted(t, fc, "failover", len(facked))
	checkStoredOnce(t, got, facked)
	var gotOrder []string
	for _, m := range got {
		if v := string(m.Value); strings.HasPrefix(v, "f") {
			gotOrder = append(gotOrder, v)
		}
	}
	if strings.Join(gotOrder, ",") != strings.Join(order, ",") {
		t.Errorf("the producer's messages are stored out of order")
	}
	t.Logf("%d producer messages and %d Publish calls acknowledged, each stored once", len(order), len(facked)-len(order))

	// The killed node returns, catches up, and holds the same.
	fLeader.start(t)
	fLeader.waitReady(t)
	rc, err := client.New(fLeader.url())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	checkStoredOnce(t, readCommitted(t, rc, "failover", len(facked)), facked)
}

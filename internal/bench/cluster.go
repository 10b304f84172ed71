package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ClusterNode is one `spool serve` process of a benchmark cluster.
type ClusterNode struct {
	ID        int
	Server    Server
	dir       string
	args      []string
	exe       string
	cmd       *exec.Cmd
	exited    chan struct{}
	logs      *tailBuffer
	httpAddr  string
	kafkaAddr string
}

// Cluster is n `spool serve` processes of one cluster on loopback ports.
type Cluster struct {
	Nodes []*ClusterNode
}

// StartCluster starts n processes of exe as a cluster, each with its data
// under dir, durability always, and waits until each is ready.
func StartCluster(ctx context.Context, exe, dir string, n int) (*Cluster, error) {
	c := &Cluster{}
	var peers []string
	for i := 1; i <= n; i++ {
		addrs := make([]string, 3)
		for k := range addrs {
			a, err := freePort()
			if err != nil {
				return nil, err
			}
			addrs[k] = a
		}
		peers = append(peers, fmt.Sprintf("%d=%s", i, addrs[0]))
		c.Nodes = append(c.Nodes, &ClusterNode{ID: i, exe: exe, dir: filepath.Join(dir, fmt.Sprintf("node%d", i)),
			httpAddr: addrs[1], kafkaAddr: addrs[2]})
	}
	for _, nd := range c.Nodes {
		nd.args = []string{"serve", "--data", nd.dir, "--http", nd.httpAddr, "--kafka", nd.kafkaAddr, "--schema-registry", "127.0.0.1:0", "--durability", "always",
			"--log-level", "warn", "--node-id", fmt.Sprint(nd.ID), "--peers", strings.Join(peers, ",")}
		if err := nd.start(ctx); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

func (nd *ClusterNode) start(ctx context.Context) error {
	nd.cmd = exec.Command(nd.exe, nd.args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPOOL_") {
			nd.cmd.Env = append(nd.cmd.Env, kv)
		}
	}
	nd.logs = &tailBuffer{max: 16 << 10}
	nd.cmd.Stdout, nd.cmd.Stderr = nd.logs, nd.logs
	nd.cmd.SysProcAttr = childAttrs()
	if err := nd.cmd.Start(); err != nil {
		return fmt.Errorf("start node %d: %w", nd.ID, err)
	}
	nd.exited = make(chan struct{})
	go func() {
		nd.cmd.Wait()
		close(nd.exited)
	}()
	nd.Server = Server{URL: "http://" + nd.httpAddr, KafkaAddr: nd.kafkaAddr, PID: nd.cmd.Process.Pid}
	if err := waitReady(ctx, nd.Server, nd.exited); err != nil {
		nd.Kill()
		return fmt.Errorf("node %d: %w\n%s", nd.ID, err, nd.logs.String())
	}
	return nil
}

// Kill kills the node's process (SIGKILL) and waits for it.
func (nd *ClusterNode) Kill() {
	if nd.cmd == nil {
		return
	}
	nd.cmd.Process.Signal(syscall.SIGKILL)
	<-nd.exited
	nd.cmd = nil
}

// Stop kills every node.
func (c *Cluster) Stop() {
	for _, nd := range c.Nodes {
		nd.Kill()
	}
}

// KafkaAddrs returns every node's Kafka address.
func (c *Cluster) KafkaAddrs() []string {
	var out []string
	for _, nd := range c.Nodes {
		out = append(out, nd.kafkaAddr)
	}
	return out
}

// Failovers kills the leader of a one-partition topic's partition kills
// times, each time while a producer (acks=all, idempotent, retrying every
// 20 ms) waits to produce, and measures from the kill to the first
// acknowledged record; the killed node is restarted and given settle to
// catch up before the next kill.
func (c *Cluster) Failovers(ctx context.Context, kills int, settle time.Duration, progress io.Writer) ([]time.Duration, error) {
	if progress == nil {
		progress = io.Discard
	}
	seeds := c.KafkaAddrs()
	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	topic := fmt.Sprintf("failover-%d", time.Now().UnixNano())
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		return nil, err
	}
	p, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }), kgo.MetadataMinAge(20*time.Millisecond),
		kgo.RecordRetries(1<<20), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	defer p.Close()
	var out []time.Duration
	for k := range kills {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
			return out, fmt.Errorf("produce before kill %d: %w", k, err)
		}
		lead, err := c.partitionLeader(ctx, admin, topic)
		if err != nil {
			return out, err
		}
		nd := c.Nodes[lead-1]
		t0 := time.Now()
		nd.Kill()
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
			return out, fmt.Errorf("produce after kill %d: %w", k, err)
		}
		d := time.Since(t0)
		out = append(out, d)
		fmt.Fprintf(progress, "  kill %d: leader %d, producing again after %v\n", k+1, lead, d.Round(time.Millisecond))
		if err := nd.start(ctx); err != nil {
			return out, err
		}
		time.Sleep(settle)
	}
	return out, nil
}

// partitionLeader asks every running node for the partition's leader and
// returns it once all of them name the same one.
func (c *Cluster) partitionLeader(ctx context.Context, cl *kgo.Client, topic string) (int32, error) {
	for ctx.Err() == nil {
		var agreed int32
		ok := true
		for _, nd := range c.Nodes {
			if nd.cmd == nil {
				continue
			}
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, cl.Broker(nd.ID))
			if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
				ok = false
				break
			}
			l := resp.Topics[0].Partitions[0].Leader
			if l <= 0 || (agreed != 0 && l != agreed) {
				ok = false
				break
			}
			agreed = l
		}
		if ok && agreed > 0 {
			return agreed, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, ctx.Err()
}

// Median returns the median of ds (0 for none).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

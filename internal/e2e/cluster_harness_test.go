package e2e

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// The fault scenarios (cluster_faults_test.go) run short by default; with
// -spool.soak each runs several rounds of its fault under longer load.
var soak = flag.Bool("spool.soak", false, "run the long variants of the cluster fault scenarios")

// clusterLogLevel is the log level of the cluster scenarios' nodes (debug
// shows raft's elections).
var clusterLogLevel = flag.String("spool.log-level", "info", "log level of the cluster fault scenarios' nodes")

// testCluster is three `spool serve` processes of one cluster on loopback
// ports, each with its own data directory, started and stopped by the
// test: killed (-9), stopped (SIGTERM), paused (SIGSTOP) and resumed.
type testCluster struct {
	t     *testing.T
	nodes []*clusterNode
	peers string
}

// clusterNode is one node of a testCluster (its process may be stopped).
type clusterNode struct {
	id                     int
	dir, http, kafka, raft string
	registry               string  // the schema registry's address
	p                      *proc   // nil: not running
	old                    []*proc // earlier processes of the node, for their logs
	paused                 bool
	status                 spoolv1connect.ClusterServiceClient
	hc                     *http.Client
}

// newTestCluster starts a cluster of n nodes and waits until every group
// has a leader.
func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	var peers []string
	for i := 1; i <= n; i++ {
		nd := &clusterNode{id: i, dir: filepath.Join(t.TempDir(), "data"), http: freePort(t), kafka: freePort(t), raft: freePort(t),
			registry: freePort(t)}
		nd.hc = &http.Client{}
		nd.status = spoolv1connect.NewClusterServiceClient(nd.hc, "http://"+nd.http)
		peers = append(peers, fmt.Sprintf("%d=%s", i, nd.raft))
		c.nodes = append(c.nodes, nd)
	}
	c.peers = strings.Join(peers, ",")
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.p != nil {
				if nd.paused {
					nd.p.cmd.Process.Signal(syscall.SIGCONT)
				}
				nd.p.kill()
			}
			if t.Failed() {
				var all strings.Builder
				for _, p := range append(nd.old, nd.p) {
					if p != nil {
						all.WriteString(p.logs.String())
					}
				}
				path := filepath.Join(os.TempDir(), fmt.Sprintf("%s-node%d.log", strings.ReplaceAll(t.Name(), "/", "_"), nd.id))
				if err := os.WriteFile(path, []byte(all.String()), 0o644); err == nil {
					t.Logf("node %d log: %s; last lines:\n%s", nd.id, path, tail(all.String(), 40))
				} else {
					t.Logf("node %d log (last lines):\n%s", nd.id, tail(all.String(), 200))
				}
			}
		}
	})
	for i := range c.nodes {
		c.start(i + 1)
	}
	return c
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *testCluster) node(id int) *clusterNode { return c.nodes[id-1] }

// start starts node id (its data directory kept from any earlier run).
func (c *testCluster) start(id int) {
	c.t.Helper()
	nd := c.node(id)
	if nd.p != nil {
		c.t.Fatalf("node %d is running", id)
	}
	nd.p = startSpool(c.t, nd.dir, nd.http, "--kafka", nd.kafka, "--schema-registry", nd.registry, "--node-id", fmt.Sprint(id),
		"--peers", c.peers, "--log-level", *clusterLogLevel)
	nd.paused = false
}

// stop stops node id with SIGTERM and waits for a clean exit.
func (c *testCluster) stop(id int) {
	c.t.Helper()
	nd := c.node(id)
	nd.p.stop()
	nd.old, nd.p = append(nd.old, nd.p), nil
	nd.hc.CloseIdleConnections()
}

// stopAll stops every running node cleanly.
func (c *testCluster) stopAll() {
	c.t.Helper()
	for _, nd := range c.nodes {
		if nd.paused {
			c.resume(nd.id)
		}
		if nd.p != nil {
			c.stop(nd.id)
		}
	}
}

// pause stops node id's process with SIGSTOP: its connections stay open,
// and nothing it sends or answers moves until resume.
func (c *testCluster) pause(id int) {
	c.t.Helper()
	nd := c.node(id)
	if err := nd.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatal(err)
	}
	nd.paused = true
}

func (c *testCluster) resume(id int) {
	c.t.Helper()
	nd := c.node(id)
	if err := nd.p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatal(err)
	}
	nd.paused = false
}

func (c *testCluster) kafkaAddrs() []string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, nd.kafka)
	}
	return out
}

// status asks node id for its view of the cluster (ClusterStatus).
func (c *testCluster) status(id int) (*spoolv1.ClusterStatusResponse, error) {
	nd := c.node(id)
	if nd.p == nil || nd.paused {
		return nil, fmt.Errorf("node %d is not running", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := nd.status.ClusterStatus(ctx, connect.NewRequest(&spoolv1.ClusterStatusRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// group returns the group of that name ("metadata" or "topic/partition")
// in a status.
func group(st *spoolv1.ClusterStatusResponse, name string) *spoolv1.RaftGroup {
	for _, g := range st.GetGroups() {
		if g.GetName() == name {
			return g
		}
	}
	return nil
}

// leaderOf returns the leader of the named group as the running,
// unpaused nodes agree on it: the node that says it leads, with the
// highest term among them (0 if none does).
func (c *testCluster) leaderOf(name string) (lead int, term uint64) {
	for _, nd := range c.nodes {
		st, err := c.status(nd.id)
		if err != nil {
			continue
		}
		if g := group(st, name); g != nil && g.GetRole() == "leader" && g.GetTerm() > term {
			lead, term = nd.id, g.GetTerm()
		}
	}
	return lead, term
}

// waitFor retries f every 100 ms for up to d and fails the test with its
// last error.
func waitFor(t *testing.T, d time.Duration, what string, f func() error) {
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
		time.Sleep(100 * time.Millisecond)
	}
}

// healthy reports nil when every node runs, is connected to every other,
// and every group it belongs to (the metadata group and the partitions of
// topics) has a leader whose followers all hold its log.
func (c *testCluster) healthy(groups ...string) error {
	leaders := map[string]int{}
	for _, nd := range c.nodes {
		st, err := c.status(nd.id)
		if err != nil {
			return err
		}
		for _, n := range st.GetNodes() {
			if !n.GetConnected() {
				return fmt.Errorf("node %d is not connected to node %d", nd.id, n.GetId())
			}
		}
		for _, name := range append([]string{"metadata"}, groups...) {
			g := group(st, name)
			if g == nil {
				return fmt.Errorf("node %d has no group %s", nd.id, name)
			}
			if g.GetLeader() == 0 {
				return fmt.Errorf("node %d knows no leader of %s", nd.id, name)
			}
			if g.GetRole() != "leader" {
				continue
			}
			leaders[name]++
			for _, f := range g.GetFollowers() {
				// Learners of a partition (nodes that are not its
				// replicas) stay learners; the metadata group's are
				// promoted.
				if f.GetLag() != 0 || (name == "metadata" && f.GetLearner()) {
					return fmt.Errorf("%s on leader %d: node %d lags %d", name, nd.id, f.GetNode(), f.GetLag())
				}
			}
		}
	}
	for _, name := range append([]string{"metadata"}, groups...) {
		if leaders[name] != 1 {
			return fmt.Errorf("%s has %d nodes that say they lead it", name, leaders[name])
		}
	}
	return nil
}

// transferMeta moves the metadata group's leadership (hence the Kafka
// group coordinator) to node to.
func (c *testCluster) transferMeta(to int) {
	c.t.Helper()
	waitFor(c.t, 20*time.Second, fmt.Sprintf("metadata leadership to node %d", to), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.node(to).status.TransferLeadership(ctx, connect.NewRequest(&spoolv1.TransferLeadershipRequest{NodeId: uint64(to)}))
		if err != nil {
			return err
		}
		if lead, _ := c.leaderOf("metadata"); lead != to {
			return fmt.Errorf("node %d leads", lead)
		}
		return nil
	})
}

// createTopic creates a topic with Kafka's CreateTopics through any node
// and waits until each of its partitions has a leader.
func (c *testCluster) createTopic(name string, partitions int32) {
	c.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.kafkaAddrs()...))
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitFor(c.t, 30*time.Second, "create topic "+name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := adm.CreateTopic(ctx, partitions, -1, nil, name)
		if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
			return err
		}
		return nil
	})
	waitFor(c.t, 30*time.Second, "partition leaders of "+name, func() error {
		return c.healthy(partitionNames(name, partitions)...)
	})
}

func partitionNames(topic string, partitions int32) []string {
	var out []string
	for p := range partitions {
		out = append(out, fmt.Sprintf("%s/%d", topic, p))
	}
	return out
}

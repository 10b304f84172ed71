package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// TestClusterMembershipUnderLoad adds a fourth node with `spool cluster
// add-node`, waits until it is a voter of the metadata group, then removes
// one of the first three with `spool cluster remove-node` and stops it,
// all under the workload's produce and consume load; the ledger holds.
// One run removes a node that does not lead the metadata group, the other
// the metadata leader (the consumer groups' coordinator).
//
// Partitions keep the members they were created with (nodes 1–3; the new
// node holds none), so removing one leaves each partition two of its
// three members: still a majority, and the ledger checks that nothing
// acknowledged is lost across the removal and the leader changes it
// causes. The removed node's logs are checked not to diverge from the
// others where they overlap.
func TestClusterMembershipUnderLoad(t *testing.T) {
	for _, removeLeader := range []bool{false, true} {
		name := "follower"
		if removeLeader {
			name = "metadata-leader"
		}
		t.Run(name, func(t *testing.T) { testMembershipUnderLoad(t, removeLeader) })
	}
}

func testMembershipUnderLoad(t *testing.T, removeLeader bool) {
	const parts = 3
	load, _ := faultLoad()
	c := newTestCluster(t, 3)
	c.createTopic(faultTopic, parts)
	l := newLedger()
	w := newWorkload(t, c, l, faultTopic, parts)
	w.startProducer("P")
	w.startConsumers(2)
	w.startOffsetReader(100, 250*time.Millisecond)
	time.Sleep(load)

	// Add node 4 with the flags add-node prints.
	added := l.now()
	n4 := &clusterNode{id: 4, dir: filepath.Join(t.TempDir(), "data"), http: freePort(t), kafka: freePort(t), raft: freePort(t), hc: &http.Client{}}
	n4.status = spoolv1connect.NewClusterServiceClient(n4.hc, "http://"+n4.http)
	var flags []string
	waitFor(t, 30*time.Second, "spool cluster add-node 4", func() error {
		out, err := spoolCLI("cluster", "add-node", "4", "--cluster-addr", n4.raft, "--server", "http://"+c.node(1).http)
		if err != nil {
			return err
		}
		flags = strings.Fields(strings.TrimSpace(out))
		if len(flags) < 3 || flags[0] != "spool" || flags[1] != "serve" {
			t.Fatalf("add-node printed %q", out)
		}
		return nil
	})
	n4.p = startSpool(t, n4.dir, n4.http, append(flags[2:], "--kafka", n4.kafka, "--log-level", *clusterLogLevel)...)
	c.nodes = append(c.nodes, n4)
	waitFor(t, 60*time.Second, "node 4 a voter of the metadata group", func() error {
		st, err := c.status(1)
		if err != nil {
			return err
		}
		for _, n := range st.GetNodes() {
			if n.GetId() == 4 && n.GetVoter() {
				return nil
			}
		}
		return fmt.Errorf("nodes %v", st.GetNodes())
	})
	voter := l.now() - added
	time.Sleep(load)

	// Remove one of the first three, through another node, and stop it.
	meta, _ := c.leaderOf("metadata")
	victim := 0
	for id := 1; id <= 3 && victim == 0; id++ {
		if (id == meta) == removeLeader {
			victim = id
		}
	}
	via := 1 + victim%3
	removing := l.now()
	waitFor(t, 30*time.Second, fmt.Sprintf("spool cluster remove-node %d", victim), func() error {
		_, err := spoolCLI("cluster", "remove-node", fmt.Sprint(victim), "--server", "http://"+c.node(via).http)
		return err
	})
	removed := l.now() - removing
	c.stop(victim)
	keep := []int{}
	for id := 1; id <= 4; id++ {
		if id != victim {
			keep = append(keep, id)
		}
	}
	var newMeta int
	waitFor(t, 30*time.Second, "a metadata leader among the remaining nodes", func() error {
		lead, _ := c.leaderOf("metadata")
		if lead == 0 || lead == victim {
			return fmt.Errorf("leader %d", lead)
		}
		newMeta = lead
		for _, id := range keep {
			st, err := c.status(id)
			if err != nil {
				return err
			}
			for _, n := range st.GetNodes() {
				if n.GetId() == uint64(victim) {
					return fmt.Errorf("node %d still lists node %d", id, victim)
				}
			}
		}
		return nil
	})
	stopped := l.now()
	time.Sleep(load)

	w.stopProducer()
	w.stopConsumers(60 * time.Second)
	w.readCommitted(101)
	waitFor(t, 30*time.Second, "every partition led among the remaining members", func() error {
		for _, name := range partitionNames(faultTopic, parts) {
			if lead, _ := c.leaderOf(name); lead == 0 || lead == victim {
				return fmt.Errorf("%s: leader %d", name, lead)
			}
		}
		return nil
	})
	var gaps []string
	for p := range int32(parts) {
		gaps = append(gaps, fmt.Sprintf("%v/%v", l.ackGap(p, removing, stopped).Round(time.Millisecond), l.deliveryGap(p, removing, stopped).Round(time.Millisecond)))
	}
	t.Logf("node 4 added and a voter within %v; node %d (metadata leader: %v) removed in %v, then stopped; metadata leader now %d; longest gap in acknowledgements/deliveries per partition from the removal to the new leaders %v",
		voter.Round(time.Millisecond), victim, victim == meta, removed.Round(time.Millisecond), newMeta, gaps)

	// The ledger against the partitions' remaining members; the removed
	// node's logs must agree with theirs where they overlap.
	c.stopAll()
	reps := map[int32][]*replica{}
	div := &ledgerReport{}
	for p := range int32(parts) {
		var all []*replica
		for _, id := range []int{1, 2, 3} {
			r, err := readReplica(id, c.node(id).dir, faultTopic, p)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, r)
			if id != victim {
				reps[p] = append(reps[p], r)
			}
		}
		checkReplicas(div, p, all)
	}
	if div.Divergent > 0 {
		t.Errorf("the removed node's logs diverge: %v", div.Problems)
	}
	r := l.check(reps, true)
	for _, e := range w.errs {
		t.Logf("client: %s", e)
	}
	judge(t, l, r, true)
	if !slices.Contains(keep, newMeta) {
		t.Errorf("metadata leader %d after the removal", newMeta)
	}
}

// spoolCLI runs the spool command with args and returns its standard
// output, or an error with its standard error.
func spoolCLI(args ...string) (string, error) {
	cmd := exec.Command(spoolBin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("spool %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// TestClusterDuplicateNodeID starts a second process with node 1's id
// (its own data directory and cluster address, the cluster's id) while the
// cluster runs under the producer: nodes 2 and 3 refuse its connections,
// naming the duplicate id, and node 1 keeps its place in every group.
func TestClusterDuplicateNodeID(t *testing.T) {
	const parts = 3
	c := newTestCluster(t, 3)
	c.createTopic(faultTopic, parts)
	st, err := c.status(1)
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger()
	w := newWorkload(t, c, l, faultTopic, parts)
	w.startProducer("P")
	time.Sleep(time.Second)
	dupRaft := freePort(t)
	peers := strings.Replace(c.peers, "1="+c.node(1).raft, "1="+dupRaft, 1)
	dup := startSpool(t, filepath.Join(t.TempDir(), "dup"), freePort(t), "--kafka", freePort(t), "--node-id", "1",
		"--cluster-id", st.GetClusterId(), "--peers", peers, "--log-level", "info")
	killed := false
	defer func() {
		if !killed {
			dup.kill()
		}
	}()
	waitFor(t, 30*time.Second, "the second node 1 refused", func() error {
		if !strings.Contains(dup.logs.String(), "is another process running with node id 1?") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	for _, line := range strings.Split(dup.logs.String(), "\n") {
		if strings.Contains(line, "another process") {
			t.Logf("the second node 1 logged: %s", line)
			break
		}
	}
	acked := l.now()
	time.Sleep(2 * time.Second)
	// Node 1 is connected to both others, knows every group's leader, and
	// every leader sees it caught up.
	if err := c.rejoined(1, partitionNames(faultTopic, parts)...); err != nil {
		t.Errorf("node 1 with a second node 1 running: %v", err)
	}
	for p := range int32(parts) {
		if gap := l.ackGap(p, acked, l.now()); gap > time.Second {
			t.Errorf("partition %d: acknowledgements paused %v while the second node 1 ran", p, gap)
		}
	}
	dup.kill()
	killed = true
	w.stopProducer()
	r := w.checkLedger(false)
	t.Logf("ledger: %s", r)
	if !r.ok() || r.Acked == 0 {
		t.Errorf("the ledger found problems (above)")
	}
}

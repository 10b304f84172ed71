package main

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestClusterDataCommands runs three `spool serve` processes as a cluster
// and the data commands against each node: `topic describe` names every
// partition's leader, `pub` (one value, stdin lines, a key, an explicit
// partition) works through any node, whichever leads the partitions, and
// `topic read` through any node shows every message once.
func TestClusterDataCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	procs := startClusterProcs(t, freeAddrs(t, 6))

	within(t, 30*time.Second, "create", func() error {
		r := spool(t, procs[1].url(), "", "topic", "create", "orders", "--partitions", "3")
		if r.code != 0 && !strings.Contains(r.stderr, "topic_exists") {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})
	var info topicInfoJSON
	within(t, 15*time.Second, "leaders", func() error {
		r := spool(t, procs[0].url(), "", "topic", "describe", "orders", "-o", "json")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
			return err
		}
		for _, p := range info.Partitions {
			if p.Leader == 0 || p.LeaderAddr != procs[p.Leader-1].http {
				return fmt.Errorf("partition %d: leader %d at %q", p.Partition, p.Leader, p.LeaderAddr)
			}
		}
		return nil
	})
	text := ok(t, procs[2].url(), "", "topic", "describe", "orders").stdout
	if !strings.Contains(text, "LEADER") || !strings.Contains(text, fmt.Sprintf("%d (%s)", info.Partitions[0].Leader, info.Partitions[0].LeaderAddr)) {
		t.Errorf("describe on a cluster:\n%s", text)
	}

	var want []string
	for _, p := range procs {
		v := fmt.Sprintf("n%d-one", p.id)
		ok(t, p.url(), "", "pub", "orders", v)
		want = append(want, v)
		v = fmt.Sprintf("n%d-key", p.id)
		ok(t, p.url(), "", "pub", "orders", v, "--key", "k"+v)
		want = append(want, v)
		for part := range 3 {
			v = fmt.Sprintf("n%d-p%d", p.id, part)
			r := ok(t, p.url(), "", "pub", "orders", v, "--partition", fmt.Sprint(part), "-v")
			if !strings.HasPrefix(r.stdout, fmt.Sprintf("%d/", part)) {
				t.Errorf("pub --partition %d through node %d printed %q", part, p.id, r.stdout)
			}
			want = append(want, v)
		}
		var stdin strings.Builder
		for i := range 30 {
			v = fmt.Sprintf("n%d-line%d", p.id, i)
			fmt.Fprintln(&stdin, v)
			want = append(want, v)
		}
		ok(t, p.url(), stdin.String(), "pub", "orders", "--key", fmt.Sprintf("lines%d", p.id))
		v = fmt.Sprintf("n%d-id", p.id)
		ok(t, p.url(), "", "pub", "orders", v, "--id", "id-"+v)
		if r := ok(t, p.url(), "", "pub", "orders", v, "--id", "id-"+v, "-v"); !strings.Contains(r.stdout, "(duplicate)") {
			t.Errorf("the same id again through node %d: %q", p.id, r.stdout)
		}
		want = append(want, v)
	}
	slices.Sort(want)
	for _, p := range procs {
		within(t, 10*time.Second, fmt.Sprintf("read through node %d", p.id), func() error {
			r := spool(t, p.url(), "", "topic", "read", "orders")
			if r.code != 0 {
				return fmt.Errorf("exit %d: %s", r.code, r.stderr)
			}
			got := lines(r.stdout)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Errorf("read %d messages, want %d (once each): %v", len(got), len(want), got)
			}
			return nil
		})
	}

	// Replication factors: --replicas 1 places one replica per partition
	// (the others learners), describe shows them, reassign moves one.
	for _, bad := range []string{"2", "5", "-1"} {
		if r := spool(t, procs[0].url(), "", "topic", "create", "bad", "--replicas", bad); r.code == 0 || !strings.Contains(r.stderr, "replica") {
			t.Fatalf("--replicas %s: exit %d: %s", bad, r.code, r.stderr)
		}
	}
	within(t, 30*time.Second, "create solo", func() error {
		r := spool(t, procs[0].url(), "", "topic", "create", "solo", "--partitions", "3", "--replicas", "1")
		if r.code != 0 && !strings.Contains(r.stderr, "topic_exists") {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})
	var solo topicInfoJSON
	within(t, 30*time.Second, "solo's replicas and learners", func() error {
		r := spool(t, procs[1].url(), "", "topic", "describe", "solo", "-o", "json")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		solo = topicInfoJSON{}
		if err := json.Unmarshal([]byte(r.stdout), &solo); err != nil {
			return err
		}
		if solo.Config.Replicas != 1 {
			return fmt.Errorf("replication factor %d", solo.Config.Replicas)
		}
		for _, p := range solo.Partitions {
			if len(p.Replicas) != 1 || len(p.Learners) != 2 || p.Leader != p.Replicas[0] || !slices.Equal(p.Assigned, p.Replicas) {
				return fmt.Errorf("partition %d: leader %d, replicas %v, learners %v, assigned %v", p.Partition, p.Leader, p.Replicas, p.Learners, p.Assigned)
			}
		}
		return nil
	})
	text = ok(t, procs[1].url(), "", "topic", "describe", "solo").stdout
	if !strings.Contains(text, "REPLICAS") || !strings.Contains(text, "LEARNERS") || !strings.Contains(text, "replicas:") {
		t.Errorf("describe of a factor-1 topic:\n%s", text)
	}
	to := solo.Partitions[0].Replicas[0]%3 + 1
	for _, bad := range [][]string{{"--replicas", "1,2"}, {"--replicas", "9"}, {"--replicas", "1,1"}, {"--replicas", "x"}, {"--replicas", "1", "--partition", "7"}} {
		args := append([]string{"topic", "reassign", "solo"}, bad...)
		if r := spool(t, procs[0].url(), "", args...); r.code == 0 {
			t.Fatalf("reassign %v: exit 0", bad)
		}
	}
	ok(t, procs[2].url(), "", "topic", "reassign", "solo", "--partition", "0", "--replicas", fmt.Sprint(to))
	within(t, 30*time.Second, "solo/0 moved", func() error {
		r := spool(t, procs[0].url(), "", "topic", "describe", "solo", "-o", "json")
		var info topicInfoJSON
		if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
			return err
		}
		if p := info.Partitions[0]; !slices.Equal(p.Replicas, []uint64{to}) || p.Leader != to {
			return fmt.Errorf("partition 0: leader %d, replicas %v", p.Leader, p.Replicas)
		}
		return nil
	})
}

// freeAddrs returns n distinct free loopback addresses, held open until
// all are chosen so that none is handed out twice.
// startClusterProcs starts three `spool serve` processes as a cluster, node
// i on addrs[2i] (HTTP) and addrs[2i+1] (cluster), killed when the test
// ends (their logs printed if it failed).
func startClusterProcs(t *testing.T, addrs []string) []*clusterProc {
	t.Helper()
	bin := buildSpool(t)
	var peers []string
	procs := make([]*clusterProc, 3)
	for i := range procs {
		procs[i] = &clusterProc{id: i + 1, data: filepath.Join(t.TempDir(), "data"), http: addrs[2*i]}
		peers = append(peers, fmt.Sprintf("%d=%s", i+1, addrs[2*i+1]))
	}
	for _, p := range procs {
		p.args = []string{"serve", "--data", p.data, "--http", p.http, "--kafka", "-", "--schema-registry", "127.0.0.1:0", "--node-id", fmt.Sprint(p.id),
			"--peers", strings.Join(peers, ",")}
		p.start(t, bin)
		t.Cleanup(p.kill)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				p.kill()
				t.Logf("node %d:\n%s", p.id, p.log)
			}
		}
	})
	return procs
}

func freeAddrs(t *testing.T, n int) []string {
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

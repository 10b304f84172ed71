package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// clusterProc is one `spool serve` process of a test cluster.
type clusterProc struct {
	id         int
	data, http string
	args       []string
	cmd        *exec.Cmd
	log        *strings.Builder
}

func (p *clusterProc) start(t *testing.T, bin string) {
	t.Helper()
	p.log = &strings.Builder{}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (p *clusterProc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
}

func (p *clusterProc) url() string { return "http://" + p.http }

// within retries f every 50 ms for up to d.
func within(t *testing.T, d time.Duration, what string, f func() error) {
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

// TestClusterProcesses runs three `spool serve` processes as a cluster:
// a topic created through one node is on every node; with the metadata
// leader killed (-9), the other two go on changing the catalog; the killed
// node catches up when restarted; its data directory refuses another node
// id.
func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildSpool(t)
	var peers []string
	procs := make([]*clusterProc, 3)
	for i := range procs {
		procs[i] = &clusterProc{id: i + 1, data: filepath.Join(t.TempDir(), "data"), http: freeAddr(t)}
		peers = append(peers, fmt.Sprintf("%d=%s", i+1, freeAddr(t)))
	}
	for _, p := range procs {
		p.args = []string{"serve", "--data", p.data, "--http", p.http, "--kafka", "-", "--schema-registry", "127.0.0.1:0", "--node-id", fmt.Sprint(p.id),
			"--peers", strings.Join(peers, ",")}
		p.start(t, bin)
		defer p.kill()
	}
	status := func(p *clusterProc) (clusterJSON, error) {
		r := spool(t, p.url(), "", "cluster", "status", "-o", "json")
		var st clusterJSON
		if r.code != 0 {
			return st, fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return st, json.Unmarshal([]byte(r.stdout), &st)
	}
	leader := func(p *clusterProc) (uint64, error) {
		st, err := status(p)
		if err != nil {
			return 0, err
		}
		if len(st.Groups) == 0 || st.Groups[0].Leader == 0 {
			return 0, fmt.Errorf("no metadata leader yet: %+v", st.Groups)
		}
		return st.Groups[0].Leader, nil
	}
	create := func(p *clusterProc, topic string) error {
		if r := spool(t, p.url(), "", "topic", "create", topic); r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	}
	hasTopics := func(p *clusterProc, want ...string) error {
		r := spool(t, p.url(), "", "topic", "list")
		for _, w := range want {
			if !strings.Contains(r.stdout, w+" ") {
				return fmt.Errorf("node %d lists %q, without %s", p.id, r.stdout, w)
			}
		}
		return nil
	}

	var lead uint64
	within(t, 30*time.Second, "a metadata leader", func() (err error) { lead, err = leader(procs[0]); return err })
	within(t, 10*time.Second, "create through node 2", func() error { return create(procs[1], "orders") })
	for _, p := range procs {
		within(t, 10*time.Second, "topic on every node", func() error { return hasTopics(p, "orders") })
	}

	killed := procs[lead-1]
	killed.kill()
	other := procs[lead%3]
	t0 := time.Now()
	within(t, 15*time.Second, "create with the leader killed", func() error { return create(other, "payments") })
	t.Logf("metadata leader %d killed: a change applied %v later", lead, time.Since(t0).Round(time.Millisecond))

	// The killed node's directory is its own: another id is refused.
	r := spool(t, "", "", "serve", "--data", killed.data, "--http", "127.0.0.1:0", "--kafka", "-", "--schema-registry", "127.0.0.1:0",
		"--node-id", fmt.Sprint(lead%3+1), "--peers", strings.Join(peers, ","))
	if r.code == 0 || !strings.Contains(r.stderr, "belongs to node") {
		t.Fatalf("serve with another node id on node %d's data: exit %d, %s", lead, r.code, r.stderr)
	}
	killed.start(t, bin)
	within(t, 15*time.Second, "the restarted node catches up", func() error { return hasTopics(killed, "orders", "payments") })
	within(t, 10*time.Second, "every node registered", func() error {
		st, err := status(killed)
		if err != nil || len(st.Nodes) != 3 {
			return fmt.Errorf("status of the restarted node: %+v, %v", st, err)
		}
		for _, n := range st.Nodes {
			if n.HTTPAddr != procs[n.ID-1].http || !n.Voter {
				return fmt.Errorf("node %d: %+v", n.ID, n)
			}
		}
		return nil
	})

	// A fourth node joins with the flags add-node prints, takes the
	// metadata leadership, and node 1 is removed.
	p4 := &clusterProc{id: 4, data: filepath.Join(t.TempDir(), "data"), http: freeAddr(t)}
	addr4 := freeAddr(t)
	var printed string
	within(t, 10*time.Second, "add-node", func() error {
		r := spool(t, procs[1].url(), "", "cluster", "add-node", "4", "--cluster-addr", addr4)
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		printed = r.stdout
		return nil
	})
	flags := strings.Fields(strings.TrimSpace(printed))
	if len(flags) < 3 || flags[0] != "spool" || flags[1] != "serve" {
		t.Fatalf("add-node printed %q", printed)
	}
	p4.args = append(flags[1:], "--data", p4.data, "--http", p4.http, "--kafka", "-", "--schema-registry", "127.0.0.1:0")
	p4.start(t, bin)
	defer p4.kill()
	t.Cleanup(func() {
		if t.Failed() {
			p4.kill()
			t.Logf("node 4 (%v):\n%s", p4.args, p4.log)
		}
	})
	within(t, 15*time.Second, "node 4 catches up", func() error { return hasTopics(p4, "orders", "payments") })
	within(t, 15*time.Second, "node 4 leads", func() error {
		if r := spool(t, procs[2].url(), "", "cluster", "transfer-leadership", "4"); r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})
	within(t, 10*time.Second, "remove node 1", func() error {
		if r := spool(t, p4.url(), "", "cluster", "remove-node", "1"); r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})
	within(t, 10*time.Second, "create after the changes", func() error { return create(procs[2], "refunds") })
	within(t, 10*time.Second, "node 4 has it", func() error { return hasTopics(p4, "refunds") })
	st, err := status(p4)
	if err != nil || st.Groups[0].Leader == 1 {
		t.Fatalf("status after removing node 1: %+v, %v", st, err)
	}
}

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Network partitions with nftables. The nodes of a cluster share one TCP
// connection per pair, dialled by the lower id to the higher id's cluster
// listener: the highest id dials nobody, so dropping every packet to or
// from its cluster port cuts it off from its peers (and nothing else: its
// Kafka and HTTP listeners stay reachable, as a client on its side of the
// partition would find them). The rules live in a table of their own,
// deleted when the test ends (and before it starts, should an earlier run
// have been killed), and only ever name loopback addresses.

const nftTable = "spooltest"

// requireNft skips the test unless nftables can be used here: it needs
// root and the nft command (scripts/test.sh installs nftables).
func requireNft(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the network partition scenario needs root for nftables")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft is not installed (scripts/test.sh installs nftables with apt-get): the network partition scenario needs it")
	}
	exec.Command("nft", "delete", "table", "inet", nftTable).Run() // left by a killed run
	if out, err := exec.Command("nft", "add", "table", "inet", nftTable).CombinedOutput(); err != nil {
		t.Skipf("nft cannot create a table here (no CAP_NET_ADMIN?): %v: %s", err, out)
	}
	if out, err := exec.Command("nft", "delete", "table", "inet", nftTable).CombinedOutput(); err != nil {
		t.Fatalf("nft delete table: %v: %s", err, out)
	}
}

// cutOff drops every TCP packet to or from the loopback address addr's
// port; heal (also run at cleanup) removes the rules.
func cutOff(t *testing.T, addr string) (heal func()) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		t.Fatalf("refusing to cut %s off: only IPv4 loopback addresses may be targeted", addr)
	}
	rules := fmt.Sprintf(`table inet %[1]s {
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr %[2]s ip daddr %[2]s tcp dport %[3]s drop
		ip saddr %[2]s ip daddr %[2]s tcp sport %[3]s drop
	}
}
`, nftTable, ip, port)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v: %s\n%s", err, out, rules)
	}
	healed := false
	heal = func() {
		if healed {
			return
		}
		healed = true
		if out, err := exec.Command("nft", "delete", "table", "inet", nftTable).CombinedOutput(); err != nil {
			t.Errorf("nft delete table: %v: %s", err, out)
		}
	}
	t.Cleanup(heal)
	return heal
}

// TestClusterFaultPartition cuts the highest-id node off from its peers
// with nftables while it leads the metadata group (the consumer groups'
// coordinator) and partitions, under load: the other two elect new
// leaders and the clients follow them; the cut-off node steps down
// (check-quorum) and, healed, rejoins without disrupting the new leaders
// (pre-vote); the ledger holds.
func TestClusterFaultPartition(t *testing.T) {
	requireNft(t)
	const parts = 3
	load, rounds := faultLoad()
	c := newTestCluster(t, 3)
	c.createTopic(faultTopic, parts)
	const iso = 3
	c.transferMeta(iso)
	c.leadSome(iso, faultTopic, parts)
	l := newLedger()
	w := newWorkload(t, c, l, faultTopic, parts)
	w.startProducer("P")
	w.startConsumers(2)
	w.startOffsetReader(100, 250*time.Millisecond)
	time.Sleep(load)

	cutFor := 6 * time.Second
	if *soak {
		cutFor = 20 * time.Second
	}
	for round := range rounds {
		if round > 0 {
			c.transferMeta(iso)
		}
		before := c.leaders(faultTopic, parts)
		var led []string
		for name, lt := range before {
			if lt[0] == iso {
				led = append(led, name)
			}
		}
		cut := l.now()
		heal := cutOff(t, c.node(iso).raft)
		// The majority side elects new leaders for what the cut-off node led.
		var after map[string][2]uint64
		waitFor(t, 30*time.Second, "new leaders on the majority side", func() error {
			after = map[string][2]uint64{}
			for _, name := range append(partitionNames(faultTopic, parts), "metadata") {
				var lead, term uint64
				for _, id := range []int{1, 2} {
					st, err := c.status(id)
					if err != nil {
						return err
					}
					g := group(st, name)
					if g == nil || g.GetLeader() == 0 || g.GetLeader() == iso || (lead != 0 && g.GetLeader() != lead) {
						return fmt.Errorf("%s on node %d: %v", name, id, g)
					}
					lead, term = g.GetLeader(), max(term, g.GetTerm())
				}
				after[name] = [2]uint64{lead, term}
			}
			return nil
		})
		elected := l.now() - cut
		// The cut-off node stops leading (check-quorum).
		waitFor(t, 15*time.Second, "the cut-off node steps down", func() error {
			st, err := c.status(iso)
			if err != nil {
				return err
			}
			for _, g := range st.GetGroups() {
				if g.GetRole() == "leader" {
					return fmt.Errorf("node %d still leads %s", iso, g.GetName())
				}
			}
			return nil
		})
		steppedDown := l.now() - cut
		time.Sleep(max(0, cutFor-(l.now()-cut)))
		healedAt := l.now()
		heal()
		waitFor(t, 60*time.Second, fmt.Sprintf("node %d back in the cluster", iso), func() error {
			return c.rejoined(iso, partitionNames(faultTopic, parts)...)
		})
		back := l.now() - healedAt
		if d := undisturbed(after, c.leaders(faultTopic, parts), iso); d != "" {
			t.Errorf("round %d: the healed node %d disrupted the groups: %s", round, iso, d)
		}
		var stalls []string
		for p := range int32(parts) {
			n, d := l.stall(p, cut)
			stalls = append(stalls, fmt.Sprintf("%d/%d: %d in flight answered within %v, longest gap %v in acknowledgements, %v in deliveries", p,
				before[fmt.Sprintf("%s/%d", faultTopic, p)][0], n, d.Round(time.Millisecond), l.ackGap(p, cut-time.Second, healedAt).Round(time.Millisecond),
				l.deliveryGap(p, cut-time.Second, healedAt).Round(time.Millisecond)))
		}
		t.Logf("round %d: node %d (leading %v) cut off %v: new leaders within %v, it stepped down within %v, back in every group %v after the heal; partitions (leader before): %s",
			round, iso, led, (healedAt - cut).Round(time.Millisecond), elected.Round(time.Millisecond), steppedDown.Round(time.Millisecond),
			back.Round(time.Millisecond), strings.Join(stalls, "; "))
		time.Sleep(load)
	}

	w.stopProducer()
	w.stopConsumers(60 * time.Second)
	w.readCommitted(101)
	waitFor(t, 30*time.Second, "the cluster settles", func() error { return c.healthy(partitionNames(faultTopic, parts)...) })
	r := w.checkLedger(true)
	judge(t, l, r, true)
}

// leadSome makes node id lead at least one of the topic's partitions, if
// a few tries manage: pausing (SIGSTOP) the leader of a partition it does
// not lead makes the others elect one of themselves, which is node id
// about half of the time. (Partition leadership cannot be transferred on
// request.)
func (c *testCluster) leadSome(id int, topic string, parts int32) {
	c.t.Helper()
	for try := 0; try < 6; try++ {
		ls := c.leaders(topic, parts)
		victim := 0
		for p := range parts {
			lt := ls[fmt.Sprintf("%s/%d", topic, p)]
			if int(lt[0]) == id {
				return
			}
			if lt[0] != 0 && victim == 0 {
				victim = int(lt[0])
			}
		}
		if victim == 0 {
			break
		}
		c.pause(victim)
		waitFor(c.t, 30*time.Second, fmt.Sprintf("new leaders while node %d is paused", victim), func() error {
			for name, lt := range c.leaders(topic, parts) {
				if name != "metadata" && (lt[0] == 0 || int(lt[0]) == victim) {
					return fmt.Errorf("%s: leader %d", name, lt[0])
				}
			}
			return nil
		})
		c.resume(victim)
		waitFor(c.t, 30*time.Second, "the cluster settles", func() error { return c.healthy(partitionNames(topic, parts)...) })
	}
	c.t.Logf("node %d leads none of %s's partitions", id, topic)
}

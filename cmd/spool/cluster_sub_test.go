package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestClusterSubscriptionCommands runs three `spool serve` processes as a
// cluster and the subscription commands through a node that does not
// coordinate subscriptions: `consume` (stream and queue), `sub describe`,
// `sub reset`, `sub purge`, `dlq list`, `dlq peek` and `dlq redrive` all
// reach the coordinator. `--server` with a node that is down first goes on
// through the next.
func TestClusterSubscriptionCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	addrs := freeAddrs(t, 7)
	procs := startClusterProcs(t, addrs[:6])
	down := "http://" + addrs[6] // nothing listens there

	var st struct {
		Coordinator     int    `json:"coordinator"`
		CoordinatorAddr string `json:"coordinator_addr"`
	}
	within(t, 30*time.Second, "a coordinator", func() error {
		r := spool(t, procs[0].url(), "", "cluster", "status", "-o", "json")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			return err
		}
		if st.Coordinator == 0 || st.CoordinatorAddr != procs[st.Coordinator-1].http {
			return fmt.Errorf("coordinator %d at %q", st.Coordinator, st.CoordinatorAddr)
		}
		return nil
	})
	if text := ok(t, procs[0].url(), "", "cluster", "status").stdout; !strings.Contains(text, fmt.Sprintf("subscriptions coordinated by node %d (%s)", st.Coordinator, st.CoordinatorAddr)) {
		t.Errorf("cluster status does not name the coordinator:\n%s", text)
	}
	via := procs[st.Coordinator%3].url() // not the coordinator
	t.Logf("coordinator: node %d; commands through %s", st.Coordinator, via)

	within(t, 30*time.Second, "create", func() error {
		for _, args := range [][]string{{"topic", "create", "orders", "--partitions", "3"}, {"topic", "create", "jobs"}} {
			if r := spool(t, via, "", args...); r.code != 0 && !strings.Contains(r.stderr, "topic_exists") {
				return fmt.Errorf("exit %d: %s", r.code, r.stderr)
			}
		}
		return nil
	})
	ok(t, via, "", "sub", "create", "orders", "billing")
	var want []string
	var stdin strings.Builder
	for i := range 12 {
		v := fmt.Sprintf("order-%02d", i)
		want = append(want, v)
		fmt.Fprintln(&stdin, v)
	}
	within(t, 30*time.Second, "pub", func() error {
		if r := spool(t, via, stdin.String(), "pub", "orders", "--key", "k"); r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		return nil
	})

	// consume through a node that does not coordinate: every message once.
	got := lines(ok(t, via, "", "consume", "orders", "--sub", "billing", "--count", "12", "--timeout", "60s").stdout)
	if !slices.Equal(got, want) {
		t.Errorf("consume printed %v, want %v", got, want)
	}
	var info struct {
		Lag     int64             `json:"lag"`
		Members []json.RawMessage `json:"members"`
	}
	if err := json.Unmarshal([]byte(ok(t, via, "", "sub", "describe", "orders", "billing", "-o", "json").stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Lag != 0 {
		t.Errorf("lag %d after consuming everything", info.Lag)
	}
	// reset, then consume again from the start; purge.
	ok(t, via, "", "sub", "reset", "orders", "billing", "--to", "earliest")
	if got := lines(ok(t, via, "", "consume", "orders", "--sub", "billing", "--count", "12", "--timeout", "60s").stdout); !slices.Equal(got, want) {
		t.Errorf("consume after the reset printed %v", got)
	}
	ok(t, via, "", "sub", "reset", "orders", "billing", "--to", "earliest")
	var purged struct {
		Skipped int64 `json:"skipped"`
	}
	if r := ok(t, via, "", "sub", "purge", "orders", "billing", "-o", "json"); json.Unmarshal([]byte(r.stdout), &purged) != nil || purged.Skipped != 12 {
		t.Errorf("purge: %s", r.stdout)
	}

	// A queue subscription: nacked messages are dead-lettered, listed,
	// peeked and redriven through the same node.
	ok(t, via, "", "sub", "create", "jobs", "resize", "--mode", "queue", "--max-deliveries", "1")
	ok(t, via, "", "sub", "alter", "jobs", "resize", "--max-in-flight", "50")
	ok(t, via, "a.png\nb.png\n", "pub", "jobs")
	if r := ok(t, via, "", "consume", "jobs", "--sub", "resize", "--count", "2", "--nack", "--timeout", "60s"); len(lines(r.stdout)) != 2 {
		t.Errorf("consume --nack printed %q", r.stdout)
	}
	within(t, 30*time.Second, "dead letters", func() error {
		r := spool(t, via, "", "dlq", "list", "jobs", "resize")
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.stderr)
		}
		if n := len(lines(r.stdout)); n != 3 { // a header and two
			return fmt.Errorf("dlq list:\n%s", r.stdout)
		}
		return nil
	})
	if r := ok(t, via, "", "dlq", "peek", "jobs", "resize", "0"); !strings.Contains(r.stdout, "max-deliveries") {
		t.Errorf("dlq peek: %s", r.stdout)
	}
	var moved struct {
		Moved int64 `json:"moved"`
	}
	if r := ok(t, via, "", "dlq", "redrive", "jobs", "resize", "-o", "json"); json.Unmarshal([]byte(r.stdout), &moved) != nil || moved.Moved != 2 {
		t.Errorf("dlq redrive: %s", r.stdout)
	}
	got = lines(ok(t, via, "", "consume", "jobs", "--sub", "resize", "--count", "2", "--timeout", "60s").stdout)
	slices.Sort(got)
	if !slices.Equal(got, []string{"a.png", "b.png"}) {
		t.Errorf("consume after the redrive printed %v", got)
	}

	// --server listing a node that is down first.
	list := down + "," + via
	if r := ok(t, list, "", "topic", "list"); !strings.Contains(r.stdout, "orders") {
		t.Errorf("topic list through %s: %s", list, r.stdout)
	}
	ok(t, list, "", "sub", "reset", "orders", "billing", "--to", "earliest")
	if got := lines(ok(t, list, "", "consume", "orders", "--sub", "billing", "--count", "12", "--timeout", "60s").stdout); !slices.Equal(got, want) {
		t.Errorf("consume through %s printed %v", list, got)
	}
	// SPOOL_SERVER takes the same list.
	t.Setenv("SPOOL_SERVER", down+","+via)
	root := newRootCmd()
	var out, errOut strings.Builder
	root.SetArgs([]string{"sub", "describe", "orders", "billing"})
	root.SetOut(&out)
	root.SetErr(&errOut)
	if code := execute(root); code != 0 {
		t.Errorf("SPOOL_SERVER=%s sub describe: exit %d: %s", down+","+via, code, errOut.String())
	}
}

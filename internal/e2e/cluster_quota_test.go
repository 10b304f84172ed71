package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestClusterQuotas: quotas set through any node are on every node,
// through the metadata group; a node down while they changed has them
// after it restarts.
func TestClusterQuotas(t *testing.T) {
	c := newTestCluster(t, 3)
	retry := func(what string, f func() error) {
		t.Helper()
		waitFor(t, 30*time.Second, what, f)
	}
	retry("set a quota through node 1", func() error {
		return authCall(c.node(1), http.MethodPost, "/spool/auth/quotas/users/alice",
			map[string]any{"set": map[string]float64{"producer_byte_rate": 1048576}}, nil)
	})
	retry("set the default through node 2", func() error {
		return authCall(c.node(2), http.MethodPost, "/spool/auth/quotas/default",
			map[string]any{"set": map[string]float64{"request_rate": 100}}, nil)
	})
	has := func(n int, rate float64) {
		t.Helper()
		retry(fmt.Sprintf("node %d has the quotas", n), func() error {
			var out struct {
				Quotas []struct {
					User             string
					Default          bool
					ProducerByteRate float64 `json:"producer_byte_rate"`
					RequestRate      float64 `json:"request_rate"`
				}
			}
			if err := authCall(c.node(n), http.MethodGet, "/spool/auth/quotas", nil, &out); err != nil {
				return err
			}
			q := out.Quotas
			if len(q) != 2 || !q[0].Default || q[0].RequestRate != 100 || q[1].User != "alice" || q[1].ProducerByteRate != rate {
				return fmt.Errorf("quotas %+v", q)
			}
			return nil
		})
	}
	has(1, 1048576)
	has(2, 1048576)
	has(3, 1048576)
	c.stop(3)
	retry("change a quota with node 3 down", func() error {
		return authCall(c.node(1), http.MethodPost, "/spool/auth/quotas/users/alice",
			map[string]any{"set": map[string]float64{"producer_byte_rate": 2097152}}, nil)
	})
	c.start(3)
	has(3, 2097152)
}

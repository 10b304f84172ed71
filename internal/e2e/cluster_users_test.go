package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// authCall calls a /spool/auth/ endpoint of a node and decodes its answer.
func authCall(nd *clusterNode, method, path string, body, out any) error {
	var data []byte
	if body != nil {
		data, _ = json.Marshal(body)
	}
	req, err := http.NewRequest(method, "http://"+nd.http+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	resp, err := nd.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rdata, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, rdata)
	}
	if out != nil {
		return json.Unmarshal(rdata, out)
	}
	return nil
}

// TestClusterUsers: users and keys added through any node are on every
// node, through the metadata group; a node down while they changed has
// them after it restarts.
func TestClusterUsers(t *testing.T) {
	c := newTestCluster(t, 3)
	retry := func(what string, f func() error) {
		t.Helper()
		waitFor(t, 30*time.Second, what, f)
	}
	retry("add a user through node 1", func() error {
		return authCall(c.node(1), http.MethodPost, "/spool/auth/users", map[string]string{"name": "alice", "password": "alice-secret"}, nil)
	})
	var issued struct {
		Key   struct{ ID string }
		Token string
	}
	retry("issue a key through node 2", func() error {
		return authCall(c.node(2), http.MethodPost, "/spool/auth/users/alice/keys", nil, &issued)
	})
	has := func(n int, keys int) {
		t.Helper()
		retry(fmt.Sprintf("node %d has alice with %d keys", n, keys), func() error {
			var out struct {
				Users []struct {
					Name string
					Keys []struct{ ID string }
				}
			}
			if err := authCall(c.node(n), http.MethodGet, "/spool/auth/users", nil, &out); err != nil {
				return err
			}
			if len(out.Users) != 1 || out.Users[0].Name != "alice" || len(out.Users[0].Keys) != keys {
				return fmt.Errorf("users %+v", out.Users)
			}
			if keys > 0 && out.Users[0].Keys[0].ID != issued.Key.ID {
				return fmt.Errorf("key %s, want %s", out.Users[0].Keys[0].ID, issued.Key.ID)
			}
			return nil
		})
	}
	has(1, 1)
	has(2, 1)
	has(3, 1)
	c.stop(3)
	retry("issue another key with node 3 down", func() error {
		return authCall(c.node(1), http.MethodPost, "/spool/auth/users/alice/keys", map[string]string{"expires_in": "1h"}, nil)
	})
	c.start(3)
	has(3, 2)
	var out struct {
		Users []struct{ Keys []map[string]any }
	}
	if err := authCall(c.node(3), http.MethodGet, "/spool/auth/users", nil, &out); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(out)
	if strings.Contains(string(data), issued.Token) {
		t.Fatal("a token is listed")
	}
}

package quota

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

type env struct {
	dir string
	st  *state.Store
	b   *broker.Broker
	s   *Store
	c   *clock.Fake
}

func newEnv(t *testing.T) *env {
	e := &env{dir: t.TempDir(), c: clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
	e.open(t)
	t.Cleanup(e.close)
	return e
}

func (e *env) open(t *testing.T) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := state.Open(filepath.Join(e.dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: e.dir, State: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Space: b.Space("quota"), Clock: e.c})
	if err != nil {
		t.Fatal(err)
	}
	e.st, e.b, e.s = st, b, s
}

func (e *env) close() {
	if e.b == nil {
		return
	}
	e.b.Close()
	e.st.Close()
	e.b, e.st = nil, nil
}

// Quotas are altered key by key, put in force at once, and survive a
// restart; an entity without keys has no record.
func TestStoreAlterPersist(t *testing.T) {
	e := newEnv(t)
	alice, def := Entity{User: "alice"}, Entity{Default: true}
	if e.s.Limiter().Active() {
		t.Fatal("active without quotas")
	}
	if err := e.s.Alter(alice, map[string]float64{KeyProducerByteRate: 1000, KeyRequestRate: 5}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Alter(def, map[string]float64{KeyConsumerByteRate: 2000}, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Alter(alice, map[string]float64{KeyProducerByteRate: 1500}, []string{KeyRequestRate}); err != nil {
		t.Fatal(err)
	}
	want := []Quota{{Entity: def, ConsumerByteRate: 2000}, {Entity: alice, ProducerByteRate: 1500}}
	check := func(when string) {
		t.Helper()
		got := e.s.List()
		if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("%s: quotas %+v, want %+v", when, got, want)
		}
		l := e.s.Limiter()
		if !l.Active() {
			t.Fatalf("%s: not active", when)
		}
		// alice: 1500 B/s produce (one second's burst), 2000 B/s fetch by default.
		if d := l.Charge("alice", Produce, 3000); d != time.Second {
			t.Fatalf("%s: produce throttle %v, want 1s", when, d)
		}
		if d := l.Charge("bob", Fetch, 4000); d != time.Second {
			t.Fatalf("%s: fetch throttle %v, want 1s", when, d)
		}
	}
	check("before restart")
	e.close()
	e.open(t)
	check("after restart")

	// Removing every key removes the record; Delete of nothing is not found.
	if err := e.s.Alter(alice, nil, []string{KeyProducerByteRate}); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.s.Get(alice); ok {
		t.Fatal("alice has a quota without keys")
	}
	if err := e.s.Delete(alice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of nothing: %v", err)
	}
	if err := e.s.Delete(def); err != nil {
		t.Fatal(err)
	}
	if len(e.s.List()) != 0 || e.s.Limiter().Active() {
		t.Fatal("quotas left after deleting them all")
	}
	e.close()
	e.open(t)
	if len(e.s.List()) != 0 {
		t.Fatal("deleted quotas came back")
	}
}

func TestStoreValidation(t *testing.T) {
	e := newEnv(t)
	bad := []struct {
		e      Entity
		set    map[string]float64
		remove []string
		msg    string
	}{
		{Entity{}, map[string]float64{KeyRequestRate: 1}, nil, "1 to 256"},
		{Entity{User: "a", Default: true}, map[string]float64{KeyRequestRate: 1}, nil, "not both"},
		{Entity{User: "a\x00"}, map[string]float64{KeyRequestRate: 1}, nil, "printable"},
		{Entity{User: "a"}, map[string]float64{"request_percentage": 50}, nil, "request_rate"},
		{Entity{User: "a"}, map[string]float64{"x": 50}, nil, "unknown quota key"},
		{Entity{User: "a"}, map[string]float64{KeyRequestRate: 0}, nil, "not a rate"},
		{Entity{User: "a"}, map[string]float64{KeyRequestRate: -1}, nil, "not a rate"},
		{Entity{User: "a"}, nil, []string{"x"}, "unknown quota key"},
		{Entity{User: "a"}, map[string]float64{KeyRequestRate: 1}, []string{KeyRequestRate}, "both set and removed"},
	}
	for _, c := range bad {
		err := e.s.Alter(c.e, c.set, c.remove)
		if errs.CodeOf(err) != errs.InvalidArgument || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("alter %+v %v %v: %v, want invalid_argument with %q", c.e, c.set, c.remove, err, c.msg)
		}
	}
	// A certificate subject is a fine principal.
	if err := e.s.Alter(Entity{User: "CN=app one,O=Acme"}, map[string]float64{KeyRequestRate: 1}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestStoreHTTP(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.s.Handler())
	defer srv.Close()
	do := func(method, path, body string, wantStatus int) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != wantStatus {
			data, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, wantStatus)
		}
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	out := do("POST", "/spool/auth/quotas/users/alice", `{"set":{"producer_byte_rate":1048576,"request_rate":100}}`, 200)
	if out["user"] != "alice" || out["producer_byte_rate"] != 1048576.0 || out["request_rate"] != 100.0 {
		t.Fatalf("set: %v", out)
	}
	do("POST", "/spool/auth/quotas/default", `{"set":{"consumer_byte_rate":5000}}`, 200)
	out = do("GET", "/spool/auth/quotas", "", 200)
	qs := out["quotas"].([]any)
	if len(qs) != 2 || qs[0].(map[string]any)["default"] != true || qs[1].(map[string]any)["user"] != "alice" {
		t.Fatalf("list: %v", out)
	}
	do("POST", "/spool/auth/quotas/users/alice", `{"remove":["request_rate"]}`, 200)
	out = do("GET", "/spool/auth/quotas/users/alice", "", 200)
	if _, ok := out["request_rate"]; ok {
		t.Fatalf("removed key still there: %v", out)
	}
	out = do("POST", "/spool/auth/quotas/users/alice", `{"set":{"request_percentage":5}}`, 400)
	if out["code"] != "invalid_argument" {
		t.Fatalf("error %v", out)
	}
	do("POST", "/spool/auth/quotas/users/alice", `{"sett":{}}`, 400)
	do("DELETE", "/spool/auth/quotas/users/alice", "", 204)
	do("GET", "/spool/auth/quotas/users/alice", "", 404)
	do("DELETE", "/spool/auth/quotas/users/alice", "", 404)
	do("GET", "/spool/auth/quotas/default", "", 200)
	do("DELETE", "/spool/auth/quotas/default", "", 204)
}

package acl

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/spoolmq/spool/internal/auth"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

type env struct {
	dir   string
	st    *state.Store
	b     *broker.Broker
	s     *Store
	super []string
}

func newEnv(t *testing.T, super ...string) *env {
	e := &env{dir: t.TempDir(), super: super}
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
	s, err := New(Config{Space: b.Space("acl"), Enabled: true, SuperUsers: e.super})
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

func (e *env) add(t *testing.T, rules ...Rule) {
	t.Helper()
	if _, err := e.s.Add(rules); err != nil {
		t.Fatal(err)
	}
}

func q(principal string, res Resource, name string, op Operation) Request {
	return Request{Principal: principal, Host: "10.0.0.1", Resource: res, Name: name, Operation: op}
}

func TestDecisions(t *testing.T) {
	e := newEnv(t, "root")
	az := e.s.Authorizer()
	if az.Allowed(q("alice", Topic, "orders", Publish)) {
		t.Fatal("allowed with no rules: authorization must deny by default")
	}
	if !az.Allowed(q("root", Topic, "orders", Admin)) {
		t.Fatal("a super user was denied")
	}
	e.add(t,
		Rule{Principal: "alice", Resource: Topic, Name: "orders", Operation: Publish},
		Rule{Principal: "User:bob", Resource: Topic, Pattern: Prefixed, Name: "orders.", Operation: Consume},
		Rule{Principal: "User:*", Resource: Topic, Name: "*", Operation: Describe},
		Rule{Principal: "User:bob", Resource: Topic, Name: "orders.secret", Operation: All, Permission: Deny},
		Rule{Principal: "carol", Host: "10.0.0.9", Resource: Group, Name: "billing", Operation: Consume},
		Rule{Principal: "dave", Resource: Cluster, Operation: Admin},
	)
	cases := []struct {
		q    Request
		want bool
	}{
		{q("alice", Topic, "orders", Publish), true},
		{q("alice", Topic, "orders", Describe), true}, // implied
		{q("alice", Topic, "orders", Consume), false},
		{q("alice", Topic, "orders2", Publish), false}, // literal
		{q("bob", Topic, "orders.eu", Consume), true},  // prefixed
		{q("bob", Topic, "orders", Consume), false},
		{q("bob", Topic, "orders.secret", Consume), false},  // deny wins
		{q("bob", Topic, "orders.secret", Describe), false}, // deny all covers describe
		{q("zed", Topic, "anything", Describe), true},       // wildcard principal and name
		{q("", Topic, "anything", Describe), true},          // anonymous is a principal too (User:*)
		{q("zed", Topic, "anything", Publish), false},
		{q("carol", Group, "billing", Consume), false}, // wrong host
		{Request{Principal: "carol", Host: "10.0.0.9", Resource: Group, Name: "billing", Operation: Consume}, true},
		{q("dave", Cluster, ClusterName, Admin), true},
		{q("dave", Topic, "orders", Admin), false}, // the cluster is not every topic
	}
	for _, c := range cases {
		if got := az.Allowed(c.q); got != c.want {
			t.Errorf("%+v: allowed %v, want %v", c.q, got, c.want)
		}
	}
	if ops := az.Operations("alice", "1.2.3.4", Topic, "orders"); len(ops) != 2 || ops[0] != Publish || ops[1] != Describe {
		t.Errorf("alice's operations on orders: %v", ops)
	}
	ctx := auth.WithHost(auth.WithPrincipal(context.Background(), "alice"), "10.0.0.1")
	if err := az.Check(ctx, Topic, "orders", Consume); !errs.Is(err, errs.PermissionDenied) {
		t.Errorf("check: %v", err)
	}
	var none *Authorizer
	if err := none.Check(ctx, Topic, "x", Admin); err != nil {
		t.Errorf("authorization off: %v", err)
	}
}

func TestStoreChanges(t *testing.T) {
	e := newEnv(t)
	r := Rule{Principal: "alice", Resource: Topic, Name: "orders", Operation: Publish}
	e.add(t, r, r) // the same rule twice is one
	e.add(t, r)
	e.add(t, Rule{Principal: "alice", Resource: Topic, Name: "orders", Operation: Admin, KafkaOperation: "CREATE"},
		Rule{Principal: "bob", Resource: Subject, Pattern: Prefixed, Name: "orders-", Operation: Describe})
	if got := e.s.Rules(Filter{}); len(got) != 3 {
		t.Fatalf("rules: %+v", got)
	}
	if got := e.s.Rules(Filter{KafkaOperation: "CREATE"}); len(got) != 1 || got[0].Operation != Admin {
		t.Fatalf("by Kafka operation: %+v", got)
	}
	if got := e.s.Rules(Filter{KafkaOperation: "WRITE"}); len(got) != 1 || got[0].Operation != Publish {
		t.Fatalf("by canonical Kafka operation: %+v", got)
	}
	if got := e.s.Rules(Filter{Resource: Subject, Pattern: "match", Name: "orders-value"}); len(got) != 1 {
		t.Fatalf("match filter: %+v", got)
	}
	if got := e.s.Rules(Filter{Resource: Subject, Pattern: "literal"}); len(got) != 0 {
		t.Fatalf("literal filter: %+v", got)
	}

	e.close()
	e.open(t)
	if got := e.s.Rules(Filter{}); len(got) != 3 {
		t.Fatalf("after a restart: %+v", got)
	}
	if !e.s.Authorizer().Allowed(q("alice", Topic, "orders", Publish)) {
		t.Fatal("a stored rule is not applied after a restart")
	}
	per, err := e.s.Delete([]Filter{{Principal: "User:alice"}, {Principal: "User:nobody"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(per[0]) != 2 || len(per[1]) != 0 {
		t.Fatalf("deleted: %+v", per)
	}
	if e.s.Authorizer().Allowed(q("alice", Topic, "orders", Publish)) {
		t.Fatal("a deleted rule still allows (stale cache?)")
	}
	if got := e.s.Rules(Filter{}); len(got) != 1 {
		t.Fatalf("after delete: %+v", got)
	}
}

func TestNormalizeRefuses(t *testing.T) {
	bad := []Rule{
		{Resource: Topic, Name: "x", Operation: Publish},
		{Principal: "Group:x", Resource: Topic, Name: "x", Operation: Publish},
		{Principal: "a", Host: "not-an-ip", Resource: Topic, Name: "x", Operation: Publish},
		{Principal: "a", Resource: "queue", Name: "x", Operation: Publish},
		{Principal: "a", Resource: Topic, Pattern: "regex", Name: "x", Operation: Publish},
		{Principal: "a", Resource: Topic, Name: "", Operation: Publish},
		{Principal: "a", Resource: Topic, Name: "x", Operation: "write"},
		{Principal: "a", Resource: Topic, Name: "x", Operation: Publish, Permission: "maybe"},
		{Principal: "a", Resource: Cluster, Name: "other", Operation: Admin},
		{Principal: "a", Resource: Topic, Name: "x", Operation: Publish, KafkaOperation: "READ"},
	}
	for _, r := range bad {
		if _, err := r.Normalize(); !errs.Is(err, errs.InvalidArgument) {
			t.Errorf("%+v: %v, want invalid_argument", r, err)
		}
	}
	r, err := Rule{Principal: "a", Host: "::ffff:10.0.0.1", Resource: Cluster, Operation: Admin}.Normalize()
	if err != nil || r.Host != "10.0.0.1" || r.Name != ClusterName || r.Principal != "User:a" || r.Permission != Allow {
		t.Errorf("normalized: %+v %v", r, err)
	}
}

func BenchmarkAllowed(b *testing.B) {
	dir := b.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, _ := state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet})
	br, _ := broker.Open(broker.Config{DataDir: dir, State: st, Logger: quiet})
	defer st.Close()
	defer br.Close()
	s, _ := New(Config{Space: br.Space("acl"), Enabled: true})
	var rules []Rule
	for i := range 200 {
		rules = append(rules, Rule{Principal: "u" + string(rune('a'+i%26)), Resource: Topic, Pattern: Prefixed, Name: "t" + string(rune('a'+i%26)), Operation: Publish})
	}
	s.Add(rules)
	az := s.Authorizer()
	r := q("ua", Topic, "ta.orders", Publish)
	b.ReportAllocs()
	for b.Loop() {
		if !az.Allowed(r) {
			b.Fatal("denied")
		}
	}
}

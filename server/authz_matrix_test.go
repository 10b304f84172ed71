package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/auth/acl"
)

// The authorization matrix: every request of every protocol the server
// speaks — each native RPC (enumerated from the proto's descriptors), each
// Kafka API it advertises, each schema registry route (sreg.Routes) and
// the HTTP routes of the catalog, user and rule management and the
// console — sent once by a principal the rules allow and once by one they
// do not. A request added without a row fails the test.
//
// The principals:
//   - root is a super user; it creates what the requests need.
//   - alice may do everything on the resources named "orders…" (topics,
//     groups, subjects) and on the cluster.
//   - bob may do everything on the resources named "bobs" — a check that
//     ignored the name it was given would let him through — and is
//     allowed everything on the "ord…" prefix but denied it on the
//     "orders…" prefix: a deny beats an allow.
//   - dave may describe the cluster, nothing more (the authorized
//     operations Kafka's DescribeCluster reports).
//
// Allowed means "not refused for authorization" (a request may fail for
// other reasons: cluster RPCs on a single node); denied means the
// protocol's authorization error.

const (
	mxTopic    = "orders"       // alice's topic, with messages
	mxSub      = "orders-sub"   // alice's subscription on it
	mxSubject  = "orders-value" // alice's subject
	mxBobTopic = "bobs"         // bob's own resources: the wrong names
)

// mxVerbose lists every answer, not only the wrong ones
// (SPOOL_MATRIX_VERBOSE=1).
var mxVerbose = os.Getenv("SPOOL_MATRIX_VERBOSE") != ""

// mxUsers are the principals and their passwords.
var mxUsers = map[string]string{"root": "root-secret-1", "alice": "alice-secret", "bob": "bob-secret-1", "dave": "dave-secret-1", "carol": "carol-secret"}

// mxEnv is the server of the matrix and its principals' API keys.
type mxEnv struct {
	srv  *Server
	keys map[string]string // user → API key

	mu   sync.Mutex
	rows []mxResult
}

// mxResult is one request of the matrix as a principal.
type mxResult struct {
	proto, request, principal, want, got string
	ok                                   bool
}

// record adds a result to the table.
func (e *mxEnv) record(proto, request, principal, want, got string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rows = append(e.rows, mxResult{proto, request, principal, want, got, ok})
}

// report fails t with a table of the wrong answers.
func (e *mxEnv) report(t *testing.T) {
	t.Helper()
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROTOCOL\tREQUEST\tPRINCIPAL\tWANT\tGOT")
	failed, counts := 0, map[string]int{}
	for _, r := range e.rows {
		counts[r.proto]++
		if !r.ok || mxVerbose {
			if !r.ok {
				failed++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.proto, r.request, r.principal, r.want, oneLine(r.got))
		}
	}
	tw.Flush()
	t.Logf("authorization matrix: %d answers checked %v", len(e.rows), counts)
	if failed > 0 {
		t.Errorf("%d of %d answers are wrong:\n%s", failed, len(e.rows), b.String())
	} else if mxVerbose {
		t.Logf("every answer:\n%s", b.String())
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// startMatrix starts a server with authorization on, its users, keys and
// rules.
func startMatrix(t *testing.T, authorization bool) *mxEnv {
	t.Helper()
	srv, err := New(Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", KafkaAddr: "127.0.0.1:0", SchemaRegistryAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Auth:   AuthConfig{Enabled: true, Authorization: authorization, SuperUsers: []string{"root"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	e := &mxEnv{srv: srv, keys: map[string]string{}}
	for name, pass := range mxUsers {
		if err := srv.users.AddUser(name, pass); err != nil {
			t.Fatal(err)
		}
		tok, _, err := srv.users.NewKey(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		e.keys[name] = tok
	}
	if !authorization {
		return e
	}
	var rules []acl.Rule
	for _, res := range []acl.Resource{acl.Topic, acl.Group, acl.Subject} {
		rules = append(rules,
			acl.Rule{Principal: "User:alice", Resource: res, Pattern: acl.Prefixed, Name: "orders", Operation: acl.All},
			acl.Rule{Principal: "User:bob", Resource: res, Pattern: acl.Prefixed, Name: "ord", Operation: acl.All},
			acl.Rule{Principal: "User:bob", Resource: res, Pattern: acl.Prefixed, Name: "orders", Operation: acl.All, Permission: acl.Deny},
			acl.Rule{Principal: "User:bob", Resource: res, Pattern: acl.Prefixed, Name: mxBobTopic, Operation: acl.All})
	}
	rules = append(rules,
		acl.Rule{Principal: "User:alice", Resource: acl.Cluster, Operation: acl.All},
		acl.Rule{Principal: "User:dave", Resource: acl.Cluster, Operation: acl.Describe},
		acl.Rule{Principal: "User:dave", Resource: acl.Group, Name: mxSub, Operation: acl.Describe})
	if _, err := srv.acls.Add(rules); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestAuthorizationMatrix sends every request of every protocol as an
// allowed and as a refused principal.
func TestAuthorizationMatrix(t *testing.T) {
	start := time.Now()
	e := startMatrix(t, true)
	e.nativeSetup(t)
	// A deny beats an allow: bob's prefixed allow on "ord" does not reach
	// "orders", denied to him by prefix.
	az := e.srv.acls.Authorizer()
	for _, q := range []struct {
		name string
		want bool
	}{{"ordinal", true}, {"orders", false}, {"orders-x", false}, {"bobs", true}} {
		got := az.Allowed(acl.Request{Principal: "bob", Host: "127.0.0.1", Resource: acl.Topic, Name: q.name, Operation: acl.Consume})
		e.record("acl", "consume topic "+q.name, "bob", fmt.Sprint(q.want), fmt.Sprint(got), got == q.want)
	}
	t.Run("native", func(t *testing.T) { e.nativeMatrix(t) })
	t.Run("kafka", func(t *testing.T) { e.kafkaMatrix(t) })
	t.Run("registry", func(t *testing.T) { e.registryMatrix(t) })
	t.Run("http", func(t *testing.T) { e.httpMatrix(t) })
	e.report(t)
	t.Logf("in %v", time.Since(start).Round(time.Millisecond))
}

// TestAuthorizationMatrixOff: with auth.authorization off an
// authenticated principal without any rule is allowed.
func TestAuthorizationMatrixOff(t *testing.T) {
	e := startMatrix(t, false)
	ctx := context.Background()
	c := e.native("bob")
	if _, err := c.topics.CreateTopic(ctx, req(&spoolv1.CreateTopicRequest{Name: "bobs-off"})); err != nil {
		t.Fatalf("CreateTopic without authorization: %v", err)
	}
	if _, err := c.cluster.ClusterStatus(ctx, req(&spoolv1.ClusterStatusRequest{})); err != nil {
		t.Fatalf("ClusterStatus without authorization: %v", err)
	}
	if code := e.httpStatus(t, "bob", http.MethodGet, "/spool/auth/acls", ""); code != http.StatusOK {
		t.Fatalf("GET /spool/auth/acls without authorization: %d", code)
	}
	if code, _ := e.registryDo(t, "bob", http.MethodGet, "/config", ""); code != http.StatusOK {
		t.Fatalf("GET /config without authorization: %d", code)
	}
	kc := e.kafka(t, "bob")
	dc := kmsg.NewPtrDescribeClusterRequest()
	resp, err := kc.SeedBrokers()[0].Request(ctx, dc)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.DescribeClusterResponse).ErrorCode; code != 0 {
		t.Fatalf("DescribeCluster without authorization: error %d", code)
	}
}

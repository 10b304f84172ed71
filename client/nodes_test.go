package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// subsNode is a node's SubscriptionService that either answers resets and
// describes or refuses them naming a coordinator (coord() != "").
type subsNode struct {
	spoolv1connect.UnimplementedSubscriptionServiceHandler
	spoolv1connect.UnimplementedTopicServiceHandler
	coord     func() (uint64, string) // the coordinator this node names; 0: it coordinates (or a single node)
	cluster   *spoolv1.ClusterInfo    // answered by DescribeSubscription
	resets    atomic.Int64
	describes atomic.Int64
	lists     atomic.Int64
}

func (n *subsNode) refusal() error {
	id, addr := n.coord()
	if id == 0 && addr == "" {
		return nil
	}
	ce := connect.NewError(connect.CodeUnavailable, errors.New("this node does not coordinate subscriptions"))
	d, err := connect.NewErrorDetail(&spoolv1.ErrorInfo{Code: CodeUnavailable, Retriable: true,
		NotCoordinator: &spoolv1.NotCoordinator{Coordinator: id, CoordinatorAddr: addr}})
	if err != nil {
		return err
	}
	ce.AddDetail(d)
	return ce
}

func (n *subsNode) ResetSubscription(context.Context, *connect.Request[spoolv1.ResetSubscriptionRequest]) (*connect.Response[spoolv1.ResetSubscriptionResponse], error) {
	n.resets.Add(1)
	if err := n.refusal(); err != nil {
		return nil, err
	}
	return connect.NewResponse(&spoolv1.ResetSubscriptionResponse{}), nil
}

func (n *subsNode) DescribeSubscription(context.Context, *connect.Request[spoolv1.DescribeSubscriptionRequest]) (*connect.Response[spoolv1.DescribeSubscriptionResponse], error) {
	n.describes.Add(1)
	return connect.NewResponse(&spoolv1.DescribeSubscriptionResponse{
		Subscription: &spoolv1.Subscription{Topic: "t", Name: "s"}, Cluster: n.cluster}), nil
}

func (n *subsNode) ListTopics(context.Context, *connect.Request[spoolv1.ListTopicsRequest]) (*connect.Response[spoolv1.ListTopicsResponse], error) {
	n.lists.Add(1)
	return connect.NewResponse(&spoolv1.ListTopicsResponse{}), nil
}

// serveNode serves n on a loopback listener and returns its host:port.
func serveNode(t *testing.T, n *subsNode) (string, *httptest.Server) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(spoolv1connect.NewSubscriptionServiceHandler(n))
	mux.Handle(spoolv1connect.NewTopicServiceHandler(n))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), srv
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// A node that does not coordinate names the coordinator: the call goes
// there, later ones directly; when the coordinator cannot be reached the
// client asks its home node again and follows the next one it names.
func TestCoordinatorFollowed(t *testing.T) {
	var coordAddr atomic.Value
	home := &subsNode{}
	homeAddr, _ := serveNode(t, home)
	b := &subsNode{coord: func() (uint64, string) { return 0, "" }}
	bAddr, bSrv := serveNode(t, b)
	c3 := &subsNode{coord: func() (uint64, string) { return 0, "" }}
	cAddr, _ := serveNode(t, c3)
	coordAddr.Store(bAddr)
	home.coord = func() (uint64, string) { return 2, coordAddr.Load().(string) }

	cl, err := New("http://" + homeAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if _, err := cl.ResetSubscription(ctx, "t", "s", Earliest()); err != nil {
		t.Fatal(err)
	}
	if home.resets.Load() != 1 || b.resets.Load() != 1 || cl.coordinator() != bAddr {
		t.Fatalf("first reset: home %d, coordinator %d calls; coordinator known as %q", home.resets.Load(), b.resets.Load(), cl.coordinator())
	}
	if _, err := cl.ResetSubscription(ctx, "t", "s", Earliest()); err != nil {
		t.Fatal(err)
	}
	if home.resets.Load() != 1 || b.resets.Load() != 2 {
		t.Fatalf("second reset: home %d, coordinator %d calls", home.resets.Load(), b.resets.Load())
	}

	// The coordinator stops; the home node names the next.
	bSrv.Close()
	coordAddr.Store(cAddr)
	if _, err := cl.ResetSubscription(ctx, "t", "s", Earliest()); err != nil {
		t.Fatal(err)
	}
	if home.resets.Load() != 2 || c3.resets.Load() != 1 || cl.coordinator() != cAddr {
		t.Fatalf("after the move: home %d, new coordinator %d calls; coordinator known as %q", home.resets.Load(), c3.resets.Load(), cl.coordinator())
	}

	// During an election the refusal is retried after a backoff, and the
	// error returned when it lasts.
	cl.forgetCoordinator(cAddr)
	home.coord = func() (uint64, string) { return 0, "x" } // coordinator 0, an unusable address
	_, err = cl.ResetSubscription(ctx, "t", "s", Earliest())
	if !errors.Is(err, ErrUnavailable) || coordOf(err) == nil {
		t.Fatalf("reset during an election: %v", err)
	}
	if n := home.resets.Load(); n != 2+coordRefusalAttempts {
		t.Errorf("%d attempts during an election, want %d", n-2, coordRefusalAttempts)
	}
}

// DescribeSubscription on a cluster node that does not coordinate asks
// the coordinator it names, and learns the cluster's nodes; on a single
// node it is one call and names nothing.
func TestDescribeFindsCoordinator(t *testing.T) {
	single := &subsNode{coord: func() (uint64, string) { return 0, "" }}
	sAddr, _ := serveNode(t, single)
	cl, err := New("http://" + sAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.DescribeSubscription(context.Background(), "t", "s"); err != nil {
		t.Fatal(err)
	}
	if single.describes.Load() != 1 || cl.coordinator() != "" || len(cl.knownRoutes()) != 1 {
		t.Errorf("single node: %d calls, coordinator %q, nodes %v", single.describes.Load(), cl.coordinator(), cl.knownRoutes())
	}

	coord := &subsNode{coord: func() (uint64, string) { return 0, "" }}
	coordAddr, _ := serveNode(t, coord)
	other := &subsNode{coord: func() (uint64, string) { return 1, coordAddr }}
	otherAddr, _ := serveNode(t, other)
	info := &spoolv1.ClusterInfo{Coordinator: 1, CoordinatorAddr: coordAddr, NodeAddrs: []string{coordAddr, otherAddr, "127.0.0.1:1", "not an address"}}
	coord.cluster, other.cluster = info, info
	cc, err := New("http://" + otherAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := cc.DescribeSubscription(context.Background(), "t", "s"); err != nil {
		t.Fatal(err)
	}
	if other.describes.Load() != 1 || coord.describes.Load() != 1 || cc.coordinator() != coordAddr {
		t.Errorf("cluster: %d + %d calls, coordinator %q", other.describes.Load(), coord.describes.Load(), cc.coordinator())
	}
	if got := cc.knownRoutes(); len(got) != 3 {
		t.Errorf("nodes known: %v", got)
	}
	if _, err := cc.DescribeSubscription(context.Background(), "t", "s"); err != nil {
		t.Fatal(err)
	}
	if other.describes.Load() != 1 || coord.describes.Load() != 2 {
		t.Errorf("second describe: %d + %d calls", other.describes.Load(), coord.describes.Load())
	}
}

// A client given several addresses goes on through the next when the first
// cannot be reached, and keeps the one that answered.
func TestSeedsFailOver(t *testing.T) {
	n := &subsNode{}
	nAddr, _ := serveNode(t, n)
	down := closedAddr(t)
	for _, mk := range []func() (*Client, error){
		func() (*Client, error) { return New("http://" + down + ", http://" + nAddr) },
		func() (*Client, error) { return New("http://"+down, WithServers("http://"+nAddr)) },
	} {
		cl, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.ListTopics(context.Background()); err != nil {
			t.Fatalf("first address down: %v", err)
		}
		if cl.homeRoute() != nAddr {
			t.Errorf("home %q, want %q", cl.homeRoute(), nAddr)
		}
		cl.Close()
	}
	if n.lists.Load() != 2 {
		t.Errorf("%d calls reached the live node, want 2", n.lists.Load())
	}
	// Every address down: the first one's error.
	cl, err := New("http://" + down + ",http://" + closedAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.ListTopics(context.Background()); !errors.Is(err, ErrUnavailable) || !notSent(err) || !strings.Contains(err.Error(), down) {
		t.Errorf("every address down: %v", err)
	}
}

func TestParseSeeds(t *testing.T) {
	addrs, hosts, scheme, err := parseSeeds("http://a:1/, http://b:2,http://a:1", []string{"http://c:3"})
	if err != nil || scheme != "http" || strings.Join(addrs, " ") != "http://a:1 http://b:2 http://c:3" || strings.Join(hosts, " ") != "a:1 b:2 c:3" {
		t.Errorf("got %v %v %q %v", addrs, hosts, scheme, err)
	}
	for _, bad := range []string{"", "a:1", "http://a:1,https://b:2", "http://a:1,,ftp://b", "http://", "http://a:1,nohost"} {
		if _, _, _, err := parseSeeds(bad, nil); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := New("http://a:1", WithServers("")); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("WithServers(\"\"): %v", err)
	}
	if _, err := New("http://a:1", WithServers("https://b:2")); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("mixed schemes: %v", err)
	}
}

// After the home node refused a Publish, the keyless messages of the call
// go to a partition it leads, whatever the call, so that a retry with the
// same ids reaches the same de-duplication window.
func TestKeylessPrefersHome(t *testing.T) {
	cl, err := New("http://a:1", WithServers("http://b:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tl := &topicLeaders{n: 3, routes: []string{"c:1", "a:1", "b:1"}, led: []bool{true, true, true}}
	for range 5 {
		if p := cl.keylessPartition(tl, true); p != 1 {
			t.Fatalf("partition %d, want 1 (led by the home node)", p)
		}
	}
	cl.setHome("b:1")
	if p := cl.keylessPartition(tl, true); p != 2 {
		t.Fatalf("partition %d, want 2 (led by the new home node)", p)
	}
	seen := map[int32]bool{}
	for range 6 {
		seen[cl.keylessPartition(tl, false)] = true
	}
	if len(seen) != 3 {
		t.Errorf("without preferSelf the partitions rotate: %v", seen)
	}
}

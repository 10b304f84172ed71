package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/spoolmq/spool/client"
	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/tlsutil"
)

// freeLoopback returns n distinct free loopback addresses, held until all
// are chosen.
func freeLoopback(t *testing.T, n int) []string {
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

// startTLSCluster starts three in-process nodes whose every listener, the
// peer listener included, speaks TLS with certificates of f (node i's
// certificate files from certs(i)).
func startTLSCluster(t *testing.T, f tlsutil.DevFiles, certs func(i int) (string, string, string)) ([]*Server, []string) {
	t.Helper()
	addrs := freeLoopback(t, 6)
	var peers []string
	for i := range 3 {
		peers = append(peers, fmt.Sprintf("%d=%s", i+1, addrs[2*i+1]))
	}
	srvs := make([]*Server, 3)
	https := make([]string, 3)
	for i := range 3 {
		cert, key, ca := certs(i)
		srv, err := New(Config{DataDir: t.TempDir(), HTTPAddr: addrs[2*i], KafkaAddr: "127.0.0.1:0", SchemaRegistryAddr: "-", Logger: quiet,
			TLS:     TLSConfig{CertFile: cert, KeyFile: key, CAFile: ca, ClientAuth: tlsutil.ClientAuthRequest},
			Cluster: ClusterConfig{NodeID: uint64(i + 1), Peers: strings.Join(peers, ",")}})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Shutdown(context.Background()) })
		srvs[i], https[i] = srv, addrs[2*i]
	}
	return srvs, https
}

func clusterStatus(t *testing.T, tc *tls.Config, addr string) (*spoolv1.ClusterStatusResponse, error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc.Clone(), ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	cs := spoolv1connect.NewClusterServiceClient(hc, "https://"+addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cs.ClusterStatus(ctx, connect.NewRequest(&spoolv1.ClusterStatusRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// connectedPeers counts the nodes a status shows connected to the node
// asked.
func connectedPeers(st *spoolv1.ClusterStatusResponse) int {
	n := 0
	for _, nd := range st.GetNodes() {
		if nd.GetConnected() {
			n++
		}
	}
	return n
}

// TestClusterTLS: three nodes speaking TLS on every listener, the peer
// listener with mutual TLS: they connect, elect, replicate, and a client
// publishing to every partition through one node and reading back gets
// everything; a client certificate (no server usage) cannot speak to the
// peer listener.
func TestClusterTLS(t *testing.T) {
	f, err := tlsutil.GenerateDev(tlsutil.DevOptions{Dir: t.TempDir(), Hosts: []string{"localhost", "127.0.0.1"}, Clients: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	_, https := startTLSCluster(t, f, func(int) (string, string, string) { return f.Server, f.ServerKey, f.CA })
	tc := clientTLS(t, f.CA, f.Clients["alice"][0], f.Clients["alice"][1])
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := clusterStatus(t, tc, https[0])
		if err == nil && connectedPeers(st) >= 2 && st.GetCoordinator() != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the TLS cluster did not form: %v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var servers []string
	for _, a := range https {
		servers = append(servers, "https://"+a)
	}
	c, err := client.New(servers[0], client.WithTLS(tc), client.WithServers(servers[1:]...), client.WithPublishAttempts(20))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	const n = 60
	for i := range n {
		if _, err := c.Publish(ctx, "orders", client.Message{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint("m", i))}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	// The node read may be a replica a moment behind its leader: read
	// again until every message is there.
	got := map[string]bool{}
	for len(got) < n && ctx.Err() == nil {
		for m, err := range c.ReadTopic(ctx, "orders", client.ReadCount(2*n)) {
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			got[string(m.Value)] = true
		}
		if len(got) < n {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(got) != n {
		t.Fatalf("read back %d distinct messages, want %d", len(got), n)
	}

	// A user's client certificate (client usage only) is refused by the
	// peer listener.
	st, err := clusterStatus(t, tc, https[0])
	if err != nil {
		t.Fatal(err)
	}
	raft := ""
	for _, nd := range st.GetNodes() {
		if nd.GetId() == 2 {
			raft = nd.GetClusterAddr()
		}
	}
	if raft == "" {
		t.Fatalf("no cluster address of node 2 in %v", st)
	}
	conn, err := tls.Dial("tcp", raft, tc)
	if err == nil {
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client certificate spoke to the peer listener: %v", err)
	}
}

// TestClusterTLSForeignCA: a node whose certificate another CA signed is
// never connected to the others.
func TestClusterTLSForeignCA(t *testing.T) {
	f, err := tlsutil.GenerateDev(tlsutil.DevOptions{Dir: t.TempDir(), Hosts: []string{"localhost", "127.0.0.1"}, Clients: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := tlsutil.GenerateDev(tlsutil.DevOptions{Dir: t.TempDir(), Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	_, https := startTLSCluster(t, f, func(i int) (string, string, string) {
		if i == 2 {
			return g.Server, g.ServerKey, g.CA
		}
		return f.Server, f.ServerKey, f.CA
	})
	tc := clientTLS(t, f.CA, f.Clients["alice"][0], f.Clients["alice"][1])
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := clusterStatus(t, tc, https[0])
		if err == nil && st.GetCoordinator() != 0 {
			for _, nd := range st.GetNodes() {
				if nd.GetId() == 3 && nd.GetConnected() {
					t.Fatalf("node 3, of another CA, is connected: %v", st)
				}
			}
			if connectedPeers(st) >= 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes 1 and 2 did not form a cluster: %v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // retries of node 3 keep failing
	st, err := clusterStatus(t, tc, https[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range st.GetNodes() {
		if nd.GetId() == 3 && nd.GetConnected() {
			t.Fatalf("node 3, of another CA, is connected: %v", st)
		}
	}
}

package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/auth"
	"github.com/spoolmq/spool/internal/tlsutil"
)

// devCerts writes development certificates (the `spool cert dev` code
// path) with a client certificate for alice.
func devCerts(t *testing.T) tlsutil.DevFiles {
	t.Helper()
	f, err := tlsutil.GenerateDev(tlsutil.DevOptions{Dir: t.TempDir(), Hosts: []string{"localhost", "127.0.0.1"}, Clients: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func startTLS(t *testing.T, tc TLSConfig, logger *slog.Logger) *Server {
	t.Helper()
	srv, err := New(Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", Logger: logger, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv
}

func clientTLS(t *testing.T, ca, cert, key string) *tls.Config {
	t.Helper()
	c, err := tlsutil.ClientConfig(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func certSerial(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// TestTLSListeners: every listener speaks TLS; the SDK publishes and
// consumes over it, a plaintext client is refused, a Kafka client produces
// and fetches, the registry answers over HTTPS, and a rotated certificate
// is served without a restart.
func TestTLSListeners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dev := devCerts(t)
	// The server's files are copies, rotated below.
	sdir := t.TempDir()
	certFile, keyFile := filepath.Join(sdir, "server.pem"), filepath.Join(sdir, "server-key.pem")
	copyTo(t, dev.Server, certFile)
	copyTo(t, dev.ServerKey, keyFile)
	srv := startTLS(t, TLSConfig{CertFile: certFile, KeyFile: keyFile}, quiet)
	tcfg := clientTLS(t, dev.CA, "", "")

	// The SDK: publish, then consume over HTTP/2 (a bidirectional stream).
	c, err := client.New("https://"+srv.HTTPAddr(), client.WithTLS(tcfg))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{Start: client.Earliest()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "orders", client.Message{Value: []byte("over tls")}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	cctx, ccancel := context.WithCancel(ctx)
	k, err := c.NewConsumer("orders", "billing", func(_ context.Context, m *client.Message) error {
		select {
		case got <- string(m.Value):
		default:
		}
		ccancel()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Run(cctx); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "over tls" {
		t.Fatalf("consumed %q", v)
	}

	// A plaintext client is refused.
	plain, err := client.New("http://"+srv.HTTPAddr(), client.WithPublishAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	if _, err := plain.ListTopics(pctx); err == nil {
		t.Fatal("a plaintext client was served by a TLS listener")
	}
	pcancel()
	plain.Close()

	// Kafka: produce and fetch over TLS.
	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DialTLSConfig(tcfg.Clone()),
		kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if err := kc.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("kafka over tls")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var values []string
	for len(values) < 2 {
		fs := kc.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
	}
	if values[0] != "over tls" || values[1] != "kafka over tls" {
		t.Fatalf("fetched %q", values)
	}

	// The schema registry over HTTPS.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tcfg.Clone()}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + srv.SchemaRegistryAddr() + "/subjects")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Fatalf("registry: %d %s", resp.StatusCode, body)
	}

	// Rotation: new files (of another CA) are served at the next handshake.
	serial := func(trust *tls.Config) string {
		conn, err := tls.Dial("tcp", srv.HTTPAddr(), trust)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if s := serial(tcfg.Clone()); s != certSerial(t, dev.Server) {
		t.Fatalf("serial %s, want %s", s, certSerial(t, dev.Server))
	}
	dev2 := devCerts(t)
	copyTo(t, dev2.Server, certFile)
	copyTo(t, dev2.ServerKey, keyFile)
	if s := serial(clientTLS(t, dev2.CA, "", "")); s != certSerial(t, dev2.Server) {
		t.Fatalf("after rotation: serial %s, want %s", s, certSerial(t, dev2.Server))
	}
}

// TestMutualTLS: with client-auth require, a client without a certificate
// is refused and one with a certificate is served with its principal, on
// the native API and on Kafka.
func TestMutualTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dev := devCerts(t)
	logs := &recordLogs{}
	srv := startTLS(t, TLSConfig{CertFile: dev.Server, KeyFile: dev.ServerKey, CAFile: dev.CA, ClientAuth: "require"},
		slog.New(logs))
	seen := make(chan string, 1)
	srv.api.Handle("GET /test/principal", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- auth.Principal(r.Context())
	}))

	anon, err := client.New("https://"+srv.HTTPAddr(), client.WithTLS(clientTLS(t, dev.CA, "", "")))
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithTimeout(ctx, 3*time.Second)
	if _, err := anon.ListTopics(actx); err == nil {
		t.Fatal("a client without a certificate was served under client-auth require")
	}
	acancel()
	anon.Close()

	alice := clientTLS(t, dev.CA, dev.Clients["alice"][0], dev.Clients["alice"][1])
	c, err := client.New("https://"+srv.HTTPAddr(), client.WithTLS(alice))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ListTopics(ctx); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: alice.Clone(), ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + srv.HTTPAddr() + "/test/principal")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if p := <-seen; p != "alice" {
		t.Fatalf("native principal %q, want alice", p)
	}

	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DialTLSConfig(alice.Clone()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if err := kc.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if !logs.has("kafka connection", "alice") {
		t.Fatal("the Kafka connection's principal was not logged")
	}
	kanon, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.DialTLSConfig(clientTLS(t, dev.CA, "", "")))
	if err != nil {
		t.Fatal(err)
	}
	defer kanon.Close()
	kctx, kcancel := context.WithTimeout(ctx, 2*time.Second)
	defer kcancel()
	if err := kanon.Ping(kctx); err == nil {
		t.Fatal("a Kafka client without a certificate was served under client-auth require")
	}
}

func TestTLSConfigChecks(t *testing.T) {
	for _, tc := range []TLSConfig{
		{CertFile: "c"},
		{CertFile: "c", KeyFile: "k", ClientAuth: "require"},
		{CAFile: "ca"},
		{CertFile: "c", KeyFile: "k", MinVersion: "1.0"},
	} {
		if _, err := New(Config{DataDir: t.TempDir(), TLS: tc, Logger: quiet}); err == nil || !strings.Contains(err.Error(), "tls") {
			t.Errorf("%+v: %v", tc, err)
		}
	}
	_, err := New(Config{DataDir: t.TempDir(), TLS: TLSConfig{CertFile: "c", KeyFile: "k"}, Logger: quiet, // no ca-file
		Cluster: ClusterConfig{NodeID: 1, Peers: "1=127.0.0.1:7946"}})
	if err == nil || !strings.Contains(err.Error(), "cluster") {
		t.Errorf("tls on a cluster: %v", err)
	}
}

func copyTo(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// recordLogs keeps every log record's message and attribute values.
type recordLogs struct {
	mu    sync.Mutex
	lines []string
}

func (l *recordLogs) Enabled(context.Context, slog.Level) bool { return true }
func (l *recordLogs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *recordLogs) WithGroup(string) slog.Handler            { return l }
func (l *recordLogs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

func (l *recordLogs) has(msg, principal string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.HasPrefix(line, msg) && strings.Contains(line, "principal="+principal) {
			return true
		}
	}
	return false
}

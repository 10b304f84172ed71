package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects a logger's lines, safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

func TestNonLoopbackWithoutAuthRefused(t *testing.T) {
	_, err := New(Config{HTTPAddr: "0.0.0.0:7070", KafkaAddr: "127.0.0.1:9092", SchemaRegistryAddr: ":8081", Logger: quiet})
	if err == nil {
		t.Fatal("non-loopback addresses without authentication accepted")
	}
	msg := err.Error()
	for _, want := range []string{"without authentication", "http 0.0.0.0:7070", "schema-registry :8081", "auth.enabled: true", "--insecure", "SPOOL_INSECURE"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "kafka") {
		t.Errorf("refusal %q names the loopback Kafka listener", msg)
	}
	for _, loop := range []string{"127.0.0.1:0", "127.0.0.5:0", "[::1]:0", "localhost:0"} {
		if _, err := New(Config{HTTPAddr: loop, Logger: quiet}); err != nil {
			t.Errorf("%s: %v", loop, err)
		}
	}
}

func TestNonLoopbackAccepted(t *testing.T) {
	for name, cfg := range map[string]Config{
		"insecure":           {Insecure: true},
		"allow-non-loopback": {AllowNonLoopback: true},
		"auth.enabled":       {Auth: AuthConfig{Enabled: true}},
	} {
		cfg.HTTPAddr, cfg.KafkaAddr, cfg.SchemaRegistryAddr, cfg.Logger = "0.0.0.0:7070", "0.0.0.0:9092", "0.0.0.0:8081", quiet
		srv, err := New(cfg)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "allow-non-loopback" && !srv.Config().Insecure {
			t.Errorf("allow-non-loopback does not mean insecure")
		}
	}
}

func TestClusterNonLoopbackNeedsInsecure(t *testing.T) {
	cfg := Config{Logger: quiet, Cluster: ClusterConfig{NodeID: 1, Peers: "1=0.0.0.0:7001,2=192.0.2.2:7001,3=127.0.0.1:7003"}}
	_, err := New(cfg)
	if err == nil {
		t.Fatal("a cluster node on non-loopback addresses accepted without insecure")
	}
	msg := err.Error()
	for _, want := range []string{"cluster 0.0.0.0:7001", "cluster peer 2 192.0.2.2:7001", "tls.client-auth", "--insecure"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "peer 3") {
		t.Errorf("refusal %q names a loopback peer", msg)
	}
	cfg.Insecure = true
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
}

func TestDebugAddrNeedsInsecure(t *testing.T) {
	if _, err := New(Config{DebugAddr: "127.0.0.1:6060", Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	// Authentication does not cover the profiles.
	_, err := New(Config{DebugAddr: "0.0.0.0:6060", Auth: AuthConfig{Enabled: true}, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "debug listener") || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("non-loopback debug address: %v, want a refusal", err)
	}
	if strings.Contains(err.Error(), "http") {
		t.Errorf("refusal %q names the (loopback) native API", err)
	}
	if _, err := New(Config{DebugAddr: "0.0.0.0:6060", Insecure: true, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{DebugAddr: "nonsense", Logger: quiet}); err == nil || !strings.Contains(err.Error(), "debug address") {
		t.Fatalf("malformed debug address: %v", err)
	}
}

// TestInsecureWarnsPeriodically: an insecure server exposing a listener
// warns at start and again every interval until it stops.
func TestInsecureWarnsPeriodically(t *testing.T) {
	var logs logBuffer
	srv, err := New(Config{DataDir: t.TempDir(), HTTPAddr: "0.0.0.0:0", KafkaAddr: "-", SchemaRegistryAddr: "-",
		DebugAddr: "0.0.0.0:6060", AllowNonLoopback: true, Logger: logs.logger(), insecureWarnEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	count := func() int { return strings.Count(logs.String(), "insecure: listening without authentication") }
	deadline := time.Now().Add(10 * time.Second)
	for count() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if n := count(); n < 3 {
		t.Fatalf("%d insecure warnings, want one at start and more every interval:\n%s", n, out)
	}
	_, port, _ := net.SplitHostPort(srv.HTTPAddr())
	for _, want := range []string{"http 0.0.0.0:" + port, "debug 0.0.0.0:6060", "allow-non-loopback is deprecated"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs do not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "http 0.0.0.0:0") {
		t.Errorf("the warning names the configured port 0, not the bound one:\n%s", out)
	}
	n := count()
	time.Sleep(100 * time.Millisecond)
	if count() != n {
		t.Errorf("warnings go on after shutdown")
	}
}

// TestExposureWarningsAtStart: on loopback, or with authentication and TLS,
// nothing is said about exposure; with authentication but no TLS on a
// non-loopback listener, one warning.
func TestExposureWarningsAtStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		want    string // "" no warning
		notWant string
	}{
		{"loopback", Config{HTTPAddr: "127.0.0.1:0"}, "", "insecure"},
		{"insecure on loopback", Config{HTTPAddr: "127.0.0.1:0", Insecure: true}, "", "insecure"},
		{"auth without TLS", Config{HTTPAddr: "0.0.0.0:0", Auth: AuthConfig{Enabled: true}}, "TLS is off", "insecure"},
		{"auth on loopback", Config{HTTPAddr: "127.0.0.1:0", Auth: AuthConfig{Enabled: true}}, "", "TLS is off"},
	} {
		var logs logBuffer
		cfg := tc.cfg
		cfg.DataDir, cfg.KafkaAddr, cfg.SchemaRegistryAddr, cfg.Logger = t.TempDir(), "-", "-", logs.logger()
		srv, err := New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := srv.Start(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		srv.Shutdown(context.Background())
		out := logs.String()
		if tc.want != "" && strings.Count(out, tc.want) != 1 {
			t.Errorf("%s: want one warning %q:\n%s", tc.name, tc.want, out)
		}
		if tc.want == "" && strings.Contains(out, "level=WARN") {
			t.Errorf("%s: a warning:\n%s", tc.name, out)
		}
		if strings.Contains(out, tc.notWant) {
			t.Errorf("%s: logs say %q:\n%s", tc.name, tc.notWant, out)
		}
	}
}

// TestMutualTLSIsAuthentication: with client certificates required, a
// non-loopback listener needs neither auth.enabled nor insecure; a
// cluster's peer listener with TLS is mutually authenticated too.
func TestMutualTLSIsAuthentication(t *testing.T) {
	mtls := TLSConfig{CertFile: "c", KeyFile: "k", CAFile: "ca", ClientAuth: "require"}
	c := Config{HTTPAddr: "0.0.0.0:7070", KafkaAddr: "-", SchemaRegistryAddr: "-", TLS: mtls}
	if got := c.exposed(); len(got) != 0 {
		t.Errorf("mutual TLS required: exposed %v", got)
	}
	c.TLS.ClientAuth = "request"
	if got := c.exposed(); len(got) != 1 {
		t.Errorf("client certificates only requested: exposed %v, want the http listener", got)
	}
	cl := Config{HTTPAddr: "127.0.0.1:7070", KafkaAddr: "-", SchemaRegistryAddr: "-", TLS: TLSConfig{CertFile: "c", KeyFile: "k", CAFile: "ca"},
		Cluster: ClusterConfig{NodeID: 1, Addr: "0.0.0.0:7001", Peers: "1=10.0.0.1:7001,2=10.0.0.2:7001,3=10.0.0.3:7001"}}
	if got := cl.exposed(); len(got) != 0 {
		t.Errorf("a TLS cluster's peer listener: exposed %v", got)
	}
}

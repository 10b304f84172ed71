package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func startAuth(t *testing.T, ac AuthConfig, tc TLSConfig) *Server {
	t.Helper()
	srv, err := New(Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", KafkaAddr: "127.0.0.1:0", SchemaRegistryAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Auth: ac, TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	if err := srv.users.AddUser("alice", "alice-secret"); err != nil {
		t.Fatal(err)
	}
	return srv
}

func kafkaClient(t *testing.T, srv *Server, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	kc, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(srv.KafkaAddr()), kgo.RetryTimeout(2 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

func ping(kc *kgo.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return kc.Ping(ctx)
}

// produceConsume produces a record to topic and consumes it back.
func produceConsume(t *testing.T, srv *Server, topic string, mech sasl.Mechanism) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kc := kafkaClient(t, srv, kgo.SASL(mech), kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := kc.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatalf("%s: produce: %v", mech.Name(), err)
	}
	fs := kc.PollFetches(ctx)
	if errs := fs.Errors(); len(errs) > 0 {
		t.Fatalf("%s: fetch: %v", mech.Name(), errs)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "hello" {
		t.Fatalf("%s: consumed %d records", mech.Name(), len(recs))
	}
}

func TestKafkaSASL(t *testing.T) {
	srv := startAuth(t, AuthConfig{Enabled: true}, TLSConfig{})
	good := scram.Auth{User: "alice", Pass: "alice-secret"}
	produceConsume(t, srv, "t256", good.AsSha256Mechanism())
	produceConsume(t, srv, "t512", good.AsSha512Mechanism())

	bad := scram.Auth{User: "alice", Pass: "wrong-secret"}
	for _, m := range []sasl.Mechanism{bad.AsSha256Mechanism(), bad.AsSha512Mechanism(),
		scram.Auth{User: "nobody", Pass: "alice-secret"}.AsSha256Mechanism()} {
		if err := ping(kafkaClient(t, srv, kgo.SASL(m))); err == nil || !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
			t.Errorf("%s with a bad password: %v", m.Name(), err)
		}
	}
	// No SASL: Metadata is refused (the connection closed).
	if err := ping(kafkaClient(t, srv)); err == nil {
		t.Error("an unauthenticated client was served")
	}
	// PLAIN without TLS is not offered.
	pl := plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()
	if err := ping(kafkaClient(t, srv, kgo.SASL(pl))); err == nil || !strings.Contains(err.Error(), "UNSUPPORTED_SASL_MECHANISM") {
		t.Errorf("PLAIN without TLS: %v", err)
	}
}

func TestKafkaSASLPlain(t *testing.T) {
	srv := startAuth(t, AuthConfig{Enabled: true, AllowPlainWithoutTLS: true}, TLSConfig{})
	produceConsume(t, srv, "plain", plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism())
	if err := ping(kafkaClient(t, srv, kgo.SASL(plain.Auth{User: "alice", Pass: "nope-nope"}.AsMechanism()))); err == nil ||
		!strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
		t.Errorf("PLAIN with a bad password: %v", err)
	}
}

func TestKafkaSASLOverTLS(t *testing.T) {
	dev := devCerts(t)
	srv := startAuth(t, AuthConfig{Enabled: true}, TLSConfig{CertFile: dev.Server, KeyFile: dev.ServerKey, CAFile: dev.CA, ClientAuth: "request"})
	anon := clientTLS(t, dev.CA, "", "")
	// PLAIN over TLS is offered.
	if err := ping(kafkaClient(t, srv, kgo.DialTLSConfig(anon.Clone()), kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()))); err != nil {
		t.Fatalf("PLAIN over TLS: %v", err)
	}
	// A client certificate is a principal: no SASL needed.
	cert := clientTLS(t, dev.CA, dev.Clients["alice"][0], dev.Clients["alice"][1])
	if err := ping(kafkaClient(t, srv, kgo.DialTLSConfig(cert))); err != nil {
		t.Fatalf("client certificate: %v", err)
	}
	if err := ping(kafkaClient(t, srv, kgo.DialTLSConfig(anon.Clone()))); err == nil {
		t.Fatal("TLS without a certificate or SASL was served")
	}
}

// TestRegistryAuth: with auth.enabled the schema registry's listener wants
// a user's password (Basic, as Confluent's serializers send it) or an API
// key.
func TestRegistryAuth(t *testing.T) {
	srv := startAuth(t, AuthConfig{Enabled: true}, TLSConfig{})
	tok, _, err := srv.users.NewKey("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	get := func(set func(*http.Request)) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+srv.SchemaRegistryAddr()+"/subjects", nil)
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, c := range map[string]struct {
		set  func(*http.Request)
		want int
	}{
		"none":       {func(*http.Request) {}, 401},
		"basic":      {func(r *http.Request) { r.SetBasicAuth("alice", "alice-secret") }, 200},
		"bad basic":  {func(r *http.Request) { r.SetBasicAuth("alice", "wrong-secret") }, 401},
		"bearer":     {func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, 200},
		"bad bearer": {func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok+"x") }, 401},
	} {
		if got := get(c.set); got != c.want {
			t.Errorf("%s: %d, want %d", name, got, c.want)
		}
	}
}

package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func start(t *testing.T, dir string) *Server {
	t.Helper()
	srv, err := New(Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	return srv
}

// h2c returns an HTTP client speaking cleartext HTTP/2, as Connect's bidi
// streams need.
func h2c() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

func TestRestartKeepsDataAndOffsets(t *testing.T) {
	dir := t.TempDir()
	srv := start(t, dir)
	b := serverhook.Broker(srv)
	if _, err := b.CreateTopic("orders", catalog.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription("orders", "billing", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	var ms []broker.Message
	for i := range 30 {
		ms = append(ms, broker.Message{Key: []byte{byte(i)}, Value: []byte("v"), Partition: -1})
	}
	if _, err := b.Publish("orders", ms); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv = start(t, dir)
	defer srv.Shutdown(context.Background())
	info, err := serverhook.Broker(srv).DescribeTopic("orders")
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 30 || len(info.Subscriptions) != 1 {
		t.Fatalf("after restart: %+v", info)
	}
}

func TestNativeAPIEndToEnd(t *testing.T) {
	srv := start(t, t.TempDir())
	defer srv.Shutdown(context.Background())
	base := "http://" + srv.HTTPAddr()
	ctx := context.Background()
	hc := h2c()
	topics := spoolv1connect.NewTopicServiceClient(hc, base)
	subs := spoolv1connect.NewSubscriptionServiceClient(hc, base)
	pub := spoolv1connect.NewPublishServiceClient(hc, base)
	con := spoolv1connect.NewConsumeServiceClient(hc, base)

	if _, err := topics.CreateTopic(ctx, connect.NewRequest(&spoolv1.CreateTopicRequest{Name: "t", Config: &spoolv1.TopicConfig{Partitions: 2}})); err != nil {
		t.Fatal(err)
	}
	_, err := topics.CreateTopic(ctx, connect.NewRequest(&spoolv1.CreateTopicRequest{Name: "t"}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeAlreadyExists {
		t.Fatalf("duplicate topic: %v", err)
	}
	if info := errorInfoOf(ce); info == nil || info.Code != "topic_exists" || info.Retriable {
		t.Fatalf("error detail: %+v", info)
	}
	if _, err := subs.CreateSubscription(ctx, connect.NewRequest(&spoolv1.CreateSubscriptionRequest{Topic: "t", Name: "s"})); err != nil {
		t.Fatal(err)
	}
	// Pipelined publish.
	ps := pub.PublishStream(ctx)
	for i := range 10 {
		if err := ps.Send(&spoolv1.PublishRequest{Topic: "t", RequestId: uint64(i), Messages: []*spoolv1.Message{{Value: []byte("m"), Id: "id-" + string(rune('a'+i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	ps.CloseRequest()
	got := 0
	for {
		resp, err := ps.Receive()
		if err != nil {
			break
		}
		if resp.Error != nil {
			t.Fatalf("publish error: %v", resp.ErrorMessage)
		}
		got++
	}
	ps.CloseResponse()
	if got != 10 {
		t.Fatalf("%d responses", got)
	}
	// Consume them.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cs := con.Consume(cctx)
	cs.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: &spoolv1.ConsumeStart{Topic: "t", Subscription: "s", Credits: 100}}})
	var gen int64
	n := 0
	for n < 10 {
		resp, err := cs.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if a := resp.GetAssignment(); a != nil {
			gen = a.Generation
		}
		if d := resp.GetDeliveries(); d != nil {
			n += len(d.Messages)
		}
	}
	cs.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Commit{Commit: &spoolv1.Commit{Generation: gen, CommitId: 7,
		Offsets: []*spoolv1.PartitionOffset{{Partition: 0, Offset: 0}}}}})
	for {
		resp, err := cs.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.GetCommitResult(); r != nil {
			if r.CommitId != 7 || r.Error != nil {
				t.Fatalf("commit result %+v", r)
			}
			break
		}
	}
	cs.CloseRequest()
	cs.CloseResponse()
	// Unknown topic: NotFound with code topic_not_found.
	_, err = pub.Publish(ctx, connect.NewRequest(&spoolv1.PublishRequest{Topic: "nope", Messages: []*spoolv1.Message{{Value: []byte("x")}}}))
	if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound || errorInfoOf(ce).GetCode() != "topic_not_found" {
		t.Fatalf("unknown topic: %v", err)
	}
	// JSON over plain HTTP/1.1, as curl would send it.
	resp, err := http.Post(base+"/spool.v1.TopicService/ListTopics", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"name":"t"`) {
		t.Fatalf("JSON list topics: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		r, err := http.Get(base + path)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, r, err)
		}
		r.Body.Close()
	}
	hc.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
}

func errorInfoOf(ce *connect.Error) *spoolv1.ErrorInfo {
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if info, ok := v.(*spoolv1.ErrorInfo); ok {
				return info
			}
		}
	}
	return nil
}

func TestDataDirectoryLock(t *testing.T) {
	dir := t.TempDir()
	a := start(t, dir)
	b, _ := New(Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: quiet})
	if err := b.Start(); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second server on the same directory: %v", err)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := start(t, dir)
	c.Shutdown(context.Background())
}

func TestMalformedAndOversizeRequests(t *testing.T) {
	srv := start(t, t.TempDir())
	defer srv.Shutdown(context.Background())
	base := "http://" + srv.HTTPAddr()
	post := func(ctype string, body io.Reader) (int, string) {
		resp, err := http.Post(base+"/spool.v1.PublishService/Publish", ctype, body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("application/json", strings.NewReader(`{"topic": 5`)); code != 400 || !strings.Contains(body, "invalid_argument") {
		t.Fatalf("malformed JSON: %d %s", code, body)
	}
	if code, body := post("application/proto", strings.NewReader("\xff\xff\xff\xff\x0f garbage")); code != 400 || !strings.Contains(body, "invalid_argument") {
		t.Fatalf("malformed protobuf: %d %s", code, body)
	}
	// 9 MiB of JSON: refused while being read, not buffered.
	big := io.MultiReader(strings.NewReader(`{"topic":"t","messages":[{"value":"`), strings.NewReader(strings.Repeat("A", 9<<20)), strings.NewReader(`"}]}`))
	if code, body := post("application/json", big); code == 200 || !strings.Contains(body, "resource_exhausted") {
		t.Fatalf("oversize request: %d %.200s", code, body)
	}
	// The server keeps serving.
	if _, err := serverhook.Broker(srv).CreateTopic("ok", catalog.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
}

// The same handlers answer gRPC and gRPC-Web clients.
func TestGRPCAndGRPCWeb(t *testing.T) {
	srv := start(t, t.TempDir())
	defer srv.Shutdown(context.Background())
	base := "http://" + srv.HTTPAddr()
	hc := h2c()
	defer hc.CloseIdleConnections()
	for name, opt := range map[string]connect.ClientOption{"grpc": connect.WithGRPC(), "grpc-web": connect.WithGRPCWeb()} {
		topics := spoolv1connect.NewTopicServiceClient(hc, base, opt)
		pub := spoolv1connect.NewPublishServiceClient(hc, base, opt)
		if _, err := topics.CreateTopic(context.Background(), connect.NewRequest(&spoolv1.CreateTopicRequest{Name: "t-" + name})); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp, err := pub.Publish(context.Background(), connect.NewRequest(&spoolv1.PublishRequest{Topic: "t-" + name, Messages: []*spoolv1.Message{{Value: []byte("x")}}}))
		if err != nil || len(resp.Msg.Results) != 1 {
			t.Fatalf("%s publish: %v", name, err)
		}
		_, err = topics.DescribeTopic(context.Background(), connect.NewRequest(&spoolv1.DescribeTopicRequest{Name: "missing"}))
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != connect.CodeNotFound || errorInfoOf(ce).GetCode() != "topic_not_found" {
			t.Fatalf("%s error mapping: %v", name, err)
		}
	}
}

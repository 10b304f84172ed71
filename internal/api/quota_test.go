package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/spoolmq/spool/client"
	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

// setQuota sets keys of the default user's quota over the REST API.
func setQuota(t *testing.T, base string, set map[string]float64) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"set": set})
	resp, err := http.Post(base+"/spool/auth/quotas/default", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set quota: %s", resp.Status)
	}
}

func retryAfterOf(err error) time.Duration {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return 0
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if info, ok := v.(*spoolv1.ErrorInfo); ok && info.RetryAfter != nil {
				return info.RetryAfter.AsDuration()
			}
		}
	}
	return 0
}

// Over its producer_byte_rate a principal's Publish is refused with
// resource_exhausted, retriable, with ErrorInfo.retry_after and a
// Retry-After header, and stores nothing; the SDK waits that long and
// its retry succeeds.
func TestQuotaPublishRefused(t *testing.T) {
	ts := spooltest.StartServer(t, spooltest.Config(func(c *server.Config) { c.KafkaAddr = "-" }))
	base := ts.URL()
	createTopic(t, base, "t")
	setQuota(t, base, map[string]float64{"producer_byte_rate": 2000})
	pc := spoolv1connect.NewPublishServiceClient(h2c(), base)
	ctx := context.Background()
	msg := func() *connect.Request[spoolv1.PublishRequest] {
		return connect.NewRequest(&spoolv1.PublishRequest{Topic: "t", Messages: []*spoolv1.Message{{Value: make([]byte, 5000)}}})
	}
	// The first goes through (a full bucket) and leaves a debt of 3000 bytes.
	if _, err := pc.Publish(ctx, msg()); err != nil {
		t.Fatal(err)
	}
	_, err := pc.Publish(ctx, msg())
	if errorCode(err) != "resource_exhausted" || connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("over quota: %v", err)
	}
	// A debt of about 3000 bytes at 2000 B/s: at most 1.5 s.
	ra := retryAfterOf(err)
	if ra <= 0 || ra > 1600*time.Millisecond {
		t.Fatalf("retry_after %v, want at most 1.5 s", ra)
	}
	var ce *connect.Error
	errors.As(err, &ce)
	if got, want := ce.Meta().Get("Retry-After"), strconv.Itoa(int(math.Ceil(ra.Seconds()))); got != want {
		t.Fatalf("Retry-After header %q, want %s", got, want)
	}
	// Over plain HTTP (Connect's JSON): 429 with the header.
	resp, herr := http.Post(base+publishPath, "application/json", bytes.NewReader([]byte(`{"topic":"t","messages":[{"value":"eA=="}]}`)))
	if herr != nil {
		t.Fatal(herr)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("JSON publish over quota: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	// Nothing of the refused publishes was stored.
	d, derr := ts.Client().DescribeTopic(ctx, "t")
	if derr != nil {
		t.Fatal(derr)
	}
	if n := d.Partitions[0].EndOffset; n != 1 {
		t.Fatalf("end offset %d after one accepted publish", n)
	}
	// The SDK honours retry_after: its Publish succeeds after waiting.
	start := time.Now()
	if _, err := ts.Client().Publish(ctx, "t", client.Message{Value: make([]byte, 1000)}); err != nil {
		t.Fatalf("SDK publish: %v", err)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("the SDK's publish took %v: it did not wait for the quota", took)
	}
}

// request_rate refuses any unary call beyond it; a stream's opening
// counts as one request.
func TestQuotaRequestRate(t *testing.T) {
	base := startServer(t)
	createTopic(t, base, "t")
	setQuota(t, base, map[string]float64{"request_rate": 1})
	tc := spoolv1connect.NewTopicServiceClient(h2c(), base)
	ctx := context.Background()
	refused := 0
	for range 20 {
		_, err := tc.ListTopics(ctx, connect.NewRequest(&spoolv1.ListTopicsRequest{}))
		if err != nil {
			if errorCode(err) != "resource_exhausted" || retryAfterOf(err) <= 0 {
				t.Fatalf("refusal: %v", err)
			}
			refused++
		}
	}
	if refused < 10 {
		t.Fatalf("%d of 20 calls refused at 1 a second", refused)
	}
	var serr error
	for range 10 {
		stream, err := tc.ReadTopic(ctx, connect.NewRequest(&spoolv1.ReadTopicRequest{Topic: "t"}))
		if err != nil {
			t.Fatal(err)
		}
		for stream.Receive() {
		}
		if serr = stream.Err(); serr != nil {
			break
		}
	}
	if errorCode(serr) != "resource_exhausted" {
		t.Fatalf("stream over the request rate: %v", serr)
	}
}

// consumer_byte_rate paces streams: a ReadTopic's responses are not sent
// while the principal is over its quota, whichever stream made the debt.
func TestQuotaReadPaced(t *testing.T) {
	ts := spooltest.StartServer(t, spooltest.Config(func(c *server.Config) { c.KafkaAddr = "-" }))
	base := ts.URL()
	createTopic(t, base, "t")
	ctx := context.Background()
	const n, size = 40, 1000
	for range n {
		if _, err := ts.Client().Publish(ctx, "t", client.Message{Value: make([]byte, size)}); err != nil {
			t.Fatal(err)
		}
	}
	setQuota(t, base, map[string]float64{"consumer_byte_rate": 10_000})
	tc := spoolv1connect.NewTopicServiceClient(h2c(), base)
	read := func() (int, time.Duration) {
		start := time.Now()
		stream, err := tc.ReadTopic(ctx, connect.NewRequest(&spoolv1.ReadTopicRequest{Topic: "t"}))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for stream.Receive() {
			got += len(stream.Msg().Messages)
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		return got, time.Since(start)
	}
	// The first read is sent at once (a full bucket) and leaves a debt of
	// about 30 KB: three seconds at 10 KB/s, which the second waits out.
	if got, _ := read(); got != n {
		t.Fatalf("first read: %d messages", got)
	}
	got, took := read()
	if got != n || took < 2*time.Second {
		t.Fatalf("second read: %d messages in %v under a quota of 10 KB/s", got, took)
	}
}

// consumer_byte_rate paces a Consume stream's deliveries (the SDK's
// consumer), while the session itself goes on.
func TestQuotaConsumePaced(t *testing.T) {
	ts := spooltest.StartServer(t, spooltest.Config(func(c *server.Config) { c.KafkaAddr = "-" }))
	base := ts.URL()
	createTopic(t, base, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := ts.Client()
	if _, err := c.CreateSubscription(ctx, "t", "s", client.SubscriptionConfig{}); err != nil {
		t.Fatal(err)
	}
	const n, size = 40, 1000
	for range n {
		if _, err := c.Publish(ctx, "t", client.Message{Value: make([]byte, size)}); err != nil {
			t.Fatal(err)
		}
	}
	setQuota(t, base, map[string]float64{"consumer_byte_rate": 10_000})
	got := make(chan time.Time, n+1)
	k, err := c.NewConsumer("t", "s", func(_ context.Context, m *client.Message) error {
		got <- time.Now()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- k.Run(rctx) }()
	defer func() { stop(); <-done }()
	for i := range n {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("%d of %d messages consumed", i, n)
		}
	}
	// The 40 KB delivered leave a debt of about 30 KB: the next message
	// waits about 3 s at 10 KB/s.
	start := time.Now()
	if _, err := c.Publish(ctx, "t", client.Message{Value: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-got:
		if d := at.Sub(start); d < time.Second {
			t.Fatalf("the next message came after %v, over the quota", d)
		}
	case <-ctx.Done():
		t.Fatal("the next message never came")
	}
}

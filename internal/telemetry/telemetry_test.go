package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/internal/vfs"
	"github.com/spoolmq/spool/server"
)

func scrape(t *testing.T, srv *spooltest.Server) string {
	t.Helper()
	return scrapeURL(t, srv.URL())
}

func scrapeURL(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// value returns the value of the series whose line starts with prefix
// (name and labels as the exposition writes them).
func value(t *testing.T, body, prefix string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("no series %s in:\n%s", prefix, grepLines(body, strings.SplitN(prefix, "{", 2)[0]))
	return 0
}

func grepLines(body, name string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func start(t *testing.T, opts ...spooltest.Option) *spooltest.Server {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	return spooltest.StartServer(t, append([]spooltest.Option{spooltest.Config(func(c *server.Config) {
		c.KafkaAddr = "127.0.0.1:0"
		c.SchemaRegistryAddr = "-"
	})}, opts...)...)
}

// Publishing natively and through Kafka, and consuming a queue, shows up
// in the counters and histograms of every layer: the API's and Kafka's
// requests, the topic's publishes, the storage's fsyncs, the
// subscription's deliveries, acks and end-to-end latencies, connections.
func TestMetricsCountEveryLayer(t *testing.T) {
	srv := start(t)
	b := srv.Broker()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := srv.Client()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription("orders", "billing", catalog.SubConfig{Mode: catalog.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Publish(ctx, "orders", client.Message{Value: []byte("native " + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Publish(ctx, "nope", client.Message{Value: []byte("x")}); err == nil {
		t.Fatal("publish to an unknown topic succeeded")
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(srv.Server().KafkaAddr()), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := kc.ProduceSync(ctx, &kgo.Record{Value: []byte("kafka " + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.Join(broker.JoinRequest{Topic: "orders", Subscription: "billing", Credits: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Leave()
	for n := 0; n < 5; {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rs []broker.OffsetRange
		for _, d := range ev.Deliveries {
			rs = append(rs, broker.OffsetRange{Partition: d.Partition, From: d.Offset, To: d.Offset + 1})
		}
		if len(rs) > 0 {
			if err := s.Ack(1, rs); err != nil {
				t.Fatal(err)
			}
		}
		n += len(ev.Deliveries)
	}
	body := scrape(t, srv)
	kc.Close()

	checks := []struct {
		series string
		min    float64
	}{
		{`spool_publish_messages_total{topic="orders"}`, 5},
		{`spool_publish_duration_seconds_count{topic="orders"}`, 5},
		{`spool_api_requests_total{code="ok",procedure="/spool.v1.PublishService/Publish"}`, 3},
		{`spool_api_requests_total{code="topic_not_found",procedure="/spool.v1.PublishService/Publish"}`, 1},
		{`spool_api_request_duration_seconds_count{procedure="/spool.v1.PublishService/Publish"}`, 4},
		{`spool_kafka_requests_total{api="Produce"}`, 2},
		{`spool_kafka_request_duration_seconds_count{api="Produce"}`, 2},
		{`spool_kafka_requests_total{api="Metadata"}`, 1},
		{`spool_connections{protocol="kafka"}`, 1},
		{`spool_connections_accepted_total{protocol="http"}`, 1},
		{`spool_storage_fsync_seconds_count`, 5},
		{`spool_storage_group_commit_batches_count`, 5},
		{`spool_subscription_delivered_total{mode="queue",subscription="billing",topic="orders"}`, 5},
		{`spool_subscription_acked_total{mode="queue",subscription="billing",topic="orders"}`, 5},
		{`spool_e2e_delivery_seconds_count{subscription="billing",topic="orders"}`, 5},
		{`spool_e2e_ack_seconds_count{subscription="billing",topic="orders"}`, 5},
		{`spool_e2e_processing_seconds_count{subscription="billing",topic="orders"}`, 5},
		{`spool_recovery_partitions_total`, 0},
		{`spool_ready`, 1},
	}
	for _, c := range checks {
		if v := value(t, body, c.series); v < c.min {
			t.Errorf("%s = %v, want at least %v", c.series, v, c.min)
		}
	}
	if v := value(t, body, `spool_subscription_redelivered_total{mode="queue",subscription="billing",topic="orders"}`); v != 0 {
		t.Errorf("redelivered %v", v)
	}
	// Every latency histogram has the same buckets, in seconds.
	if !regexp.MustCompile(`spool_e2e_ack_seconds_bucket\{subscription="billing",topic="orders",le="0\.001"\} \d`).MatchString(body) {
		t.Errorf("no 1 ms bucket in:\n%s", grepLines(body, "spool_e2e_ack_seconds_bucket"))
	}
}

// /readyz says why it fails, and spool_ready and spool_unready_reasons
// say the same: here the data directory is below its free-space
// watermark.
func TestReadyzDiskWatermark(t *testing.T) {
	srv := start(t, spooltest.Config(func(c *server.Config) { c.Storage.MinFreeBytes = 1 << 62 }))
	resp, err := http.Get(srv.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not ready: disk:") || !strings.Contains(string(body), "storage.min-free-bytes") {
		t.Fatalf("readyz %d %q", resp.StatusCode, body)
	}
	m := scrape(t, srv)
	if value(t, m, "spool_ready") != 0 || value(t, m, `spool_unready_reasons{reason="disk"}`) != 1 {
		t.Fatalf("metrics disagree:\n%s", grepLines(m, "spool_"+"unready"))
	}
}

// A partition log that failed an fsync refuses writes until restart:
// /readyz fails with reason storage, naming the partition, and the
// storage error counter and spool_ready agree.
func TestReadyzStorageError(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.Default, nil)
	srv, err := server.New(server.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", KafkaAddr: "-", SchemaRegistryAddr: "-",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	serverhook.SetFS(srv, efs)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		srv.Shutdown(context.Background()) // reports the log's sticky error
	})
	url := "http://" + srv.HTTPAddr()
	b := serverhook.Broker(srv)
	if _, err := b.CreateTopic("fragile", catalog.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	efs.SetInjector(vfs.InjectorFunc(func(op vfs.Op) error {
		if op.Kind == vfs.OpFileSync && strings.Contains(op.Path, "fragile") && strings.HasSuffix(op.Path, ".log") {
			return &vfs.InjectedError{Op: op}
		}
		return nil
	}))
	if _, err := b.Publish("fragile", []broker.Message{{Value: []byte("x"), Partition: -1}}); err == nil {
		t.Fatal("a publish whose fsync failed was acknowledged")
	}
	efs.SetInjector(nil)
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not ready: storage:") || !strings.Contains(string(body), "fragile/0") {
		t.Fatalf("readyz %d %q", resp.StatusCode, body)
	}
	m := scrapeURL(t, url)
	if value(t, m, "spool_ready") != 0 || value(t, m, `spool_unready_reasons{reason="storage"}`) != 1 || value(t, m, `spool_storage_errors_total{op="sync"}`) < 1 {
		t.Fatalf("metrics disagree:\n%s\n%s", grepLines(m, "spool_unready"), grepLines(m, "spool_storage_errors"))
	}
	if v := value(t, m, `spool_publish_rejected_total{reason="storage",topic="fragile"}`); v != 1 {
		t.Fatalf("rejected for storage: %v", v)
	}
}

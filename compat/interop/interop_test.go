// Package interop checks that Spool's native API and its Kafka protocol see
// the same messages: published natively (Go SDK, spool CLI) and consumed by a
// Kafka client (franz-go kgo), and the reverse, with key, value, headers and
// timestamp unchanged. Spool's own headers (spool.id, spool.subject) are
// visible to Kafka consumers, and a Kafka producer may set them.
package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/compat/check"
)

const partitions = 3

func TestSDKToKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newSDK(t)
	topic := createTopic(ctx, t, c)

	sent := check.Records(100)
	ts := time.UnixMilli(1_700_000_000_000)
	msgs := make([]client.Message, len(sent))
	for i, r := range sent {
		msgs[i] = client.Message{
			ID: fmt.Sprintf("id-%d", i), Subject: fmt.Sprintf("compat.sdk.%d", i%3),
			Key: r.Key, Value: r.Value, Timestamp: ts.Add(time.Duration(i) * time.Millisecond),
		}
		for _, h := range r.Headers {
			msgs[i].Headers = append(msgs[i].Headers, client.Header{Key: h.Key, Value: h.Value})
		}
	}
	if _, err := c.Publish(ctx, topic, msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}

	recs := consumeKafka(ctx, t, topic, len(sent))
	got := make([]check.Record, len(recs))
	for i, kr := range recs {
		got[i] = fromKgo(kr)
		n := indexOf(t, kr.Value, len(msgs))
		if id := header(kr, "spool.id"); id != msgs[n].ID {
			t.Errorf("value %q: spool.id header %q, published with id %q", kr.Value, id, msgs[n].ID)
		}
		if s := header(kr, "spool.subject"); s != msgs[n].Subject {
			t.Errorf("value %q: spool.subject header %q, published with subject %q", kr.Value, s, msgs[n].Subject)
		}
		if !kr.Timestamp.Equal(msgs[n].Timestamp) {
			t.Errorf("value %q: timestamp %v, published with %v", kr.Value, kr.Timestamp, msgs[n].Timestamp)
		}
	}
	check.Same(t, sent, got)
	check.InKeyOrder(t, sent, got)
}

func TestKafkaToSDK(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newSDK(t)
	topic := createTopic(ctx, t, c)

	sent := check.Records(100)
	ts := time.UnixMilli(1_700_000_000_000)
	recs := make([]*kgo.Record, len(sent))
	for i, r := range sent {
		recs[i] = toKgo(topic, r)
		recs[i].Timestamp = ts.Add(time.Duration(i) * time.Millisecond)
		if i%2 == 0 { // a Kafka producer can give a message Spool's id and subject
			recs[i].Headers = append(recs[i].Headers,
				kgo.RecordHeader{Key: "spool.id", Value: []byte(fmt.Sprintf("id-%d", i))},
				kgo.RecordHeader{Key: "spool.subject", Value: []byte("compat.kafka")})
		}
	}
	produceKafka(ctx, t, recs)

	sub := check.Name("sub", "sdk")
	if _, err := c.CreateSubscription(ctx, topic, sub, client.SubscriptionConfig{Start: client.Earliest()}); err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	var (
		mu  sync.Mutex
		got []*client.Message
	)
	cctx, stop := context.WithCancel(ctx)
	consumer, err := c.NewConsumer(topic, sub, func(_ context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) == len(sent) {
			stop()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	if err := consumer.Run(cctx); err != nil {
		t.Fatalf("consume: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if ctx.Err() != nil {
		t.Fatalf("consume: %v (received %d of %d)", ctx.Err(), len(got), len(sent))
	}

	var gotRecs []check.Record
	for _, m := range got {
		r := check.Record{Key: m.Key, Value: m.Value}
		for _, h := range m.Headers {
			r.Headers = append(r.Headers, check.Header{Key: h.Key, Value: h.Value})
		}
		r.Headers = check.WithoutSpool(r.Headers)
		gotRecs = append(gotRecs, r)

		n := indexOf(t, m.Value, len(recs))
		if want := recs[n].Timestamp; !m.Timestamp.Equal(want) {
			t.Errorf("value %q: timestamp %v, produced with %v", m.Value, m.Timestamp, want)
		}
		wantID, wantSubject := "", ""
		if n%2 == 0 {
			wantID, wantSubject = fmt.Sprintf("id-%d", n), "compat.kafka"
		}
		if m.ID != wantID || m.Subject != wantSubject {
			t.Errorf("value %q: id %q and subject %q, produced with spool.id %q and spool.subject %q",
				m.Value, m.ID, m.Subject, wantID, wantSubject)
		}
	}
	check.Same(t, sent, gotRecs)
	check.InKeyOrder(t, sent, gotRecs)
}

func TestCLIToKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic := createTopic(ctx, t, newSDK(t))

	values := []string{"one", "two", "", "three"}
	spool(ctx, t, strings.Join(values, "\n")+"\n", "pub", topic,
		"--key", "k", "--subject", "compat.cli", "--id", "cli", "-H", "trace=cli", "-H", "trace=again", "-H", "empty=")

	recs := consumeKafka(ctx, t, topic, len(values))
	for i, kr := range recs {
		want := check.Record{
			Key:   []byte("k"),
			Value: []byte(values[i]),
			Headers: []check.Header{
				{Key: "spool.id", Value: []byte(fmt.Sprintf("cli-%d", i+1))},
				{Key: "spool.subject", Value: []byte("compat.cli")},
				{Key: "trace", Value: []byte("cli")},
				{Key: "trace", Value: []byte("again")},
				{Key: "empty", Value: nil},
			},
		}
		got := check.Record{Key: kr.Key, Value: kr.Value}
		for _, h := range kr.Headers {
			got.Headers = append(got.Headers, check.Header{Key: h.Key, Value: h.Value})
		}
		check.Same(t, []check.Record{want}, []check.Record{got})
	}
}

func TestKafkaToCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topic := createTopic(ctx, t, newSDK(t))

	sent := check.Records(20)
	recs := make([]*kgo.Record, len(sent))
	for i, r := range sent {
		recs[i] = toKgo(topic, r)
	}
	produceKafka(ctx, t, recs)

	sub := check.Name("sub", "cli")
	spool(ctx, t, "", "sub", "create", topic, sub)
	out := spool(ctx, t, "", "consume", topic, "--sub", sub, "--count", fmt.Sprint(len(sent)), "--timeout", "15s", "--output", "json")

	var got []check.Record
	for line := range strings.Lines(out) {
		var m struct {
			Key, Value    *string
			KeyEncoding   string `json:"key_encoding"`
			ValueEncoding string `json:"value_encoding"`
			Headers       []struct {
				Key, Value    string
				ValueEncoding string `json:"value_encoding"`
			}
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("spool consume printed %q: %v", line, err)
		}
		r := check.Record{Key: decode(t, m.Key, m.KeyEncoding), Value: decode(t, m.Value, m.ValueEncoding)}
		for _, h := range m.Headers {
			r.Headers = append(r.Headers, check.Header{Key: h.Key, Value: decode(t, &h.Value, h.ValueEncoding)})
		}
		r.Headers = check.WithoutSpool(r.Headers)
		got = append(got, r)
	}
	check.Same(t, sent, got)
	check.InKeyOrder(t, sent, got)
}

// decode undoes `spool consume --output json`'s encoding of bytes: text as
// is, anything else base64 with a *_encoding field saying so.
func decode(t *testing.T, s *string, encoding string) []byte {
	t.Helper()
	switch {
	case s == nil:
		return nil
	case encoding == "base64":
		b, err := base64.StdEncoding.DecodeString(*s)
		if err != nil {
			t.Fatalf("base64 %q: %v", *s, err)
		}
		return b
	}
	return []byte(*s)
}

func newSDK(t *testing.T) *client.Client {
	t.Helper()
	// Patient on a cluster: a new topic's partitions may still change
	// leaders (elections, hand-back to preferred leaders) as the test
	// publishes, and the default 3 attempts span about 150 ms.
	c, err := client.New(check.HTTPAddr(), client.WithPublishAttempts(20))
	if err != nil {
		t.Fatalf("SDK client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// createTopic creates a topic through the SDK and waits until Kafka's
// Metadata on every node shows a leader for each of its partitions: on a
// cluster a new partition has none for a moment, and the SDK refuses a
// publish to it (retriable: unavailable, "no leader right now") without
// retrying itself.
func createTopic(ctx context.Context, t *testing.T, c *client.Client) string {
	t.Helper()
	topic := check.Name("topic", "interop")
	if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: partitions}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	cl := newKgo(t)
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = &topic
	req.Topics = []kmsg.MetadataRequestTopic{rt}
	// led counts the partitions with a leader in the answer of every node.
	led := func() (int, error) {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return 0, err
		}
		n := partitions
		for _, b := range resp.Brokers {
			r, err := cl.Broker(int(b.NodeID)).Request(ctx, req)
			if err != nil {
				return 0, err
			}
			led := 0
			for _, rt := range r.(*kmsg.MetadataResponse).Topics {
				for _, p := range rt.Partitions {
					if rt.ErrorCode == 0 && p.ErrorCode == 0 && p.Leader >= 0 {
						led++
					}
				}
			}
			n = min(n, led)
		}
		return n, nil
	}
	for {
		n, err := led()
		if n == partitions {
			return topic
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topic %s: %d of %d partitions have a leader on every node (%v)", topic, n, partitions, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// spool runs the spool command line against the server under test and
// returns its stdout.
func spool(ctx context.Context, t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, check.SpoolBin(t), append(args, "--server", check.HTTPAddr())...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spool %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out)
}

func newKgo(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(check.KafkaAddrs()...), kgo.ClientID("spool-compat-interop"))...)
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produceKafka(ctx context.Context, t *testing.T, recs []*kgo.Record) {
	t.Helper()
	if err := newKgo(t).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("kafka produce: %v", err)
	}
}

// consumeKafka reads n records of topic from the start, without a group.
func consumeKafka(ctx context.Context, t *testing.T, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := newKgo(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kafka consume: %v (received %d of %d)", ctx.Err(), len(recs), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("kafka fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	if len(recs) != n {
		t.Errorf("kafka consume: received %d records, want %d", len(recs), n)
	}
	return recs
}

func toKgo(topic string, r check.Record) *kgo.Record {
	kr := &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return kr
}

// fromKgo converts a record a Kafka consumer received, without Spool's
// headers.
func fromKgo(kr *kgo.Record) check.Record {
	r := check.Record{Key: kr.Key, Value: kr.Value}
	for _, h := range kr.Headers {
		r.Headers = append(r.Headers, check.Header{Key: h.Key, Value: h.Value})
	}
	r.Headers = check.WithoutSpool(r.Headers)
	return r
}

func header(kr *kgo.Record, key string) string {
	for _, h := range kr.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// indexOf returns N of a check.Records value "value-N …", which must be
// below count.
func indexOf(t *testing.T, value []byte, count int) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(string(value), "value-%d", &n); err != nil || n < 0 || n >= count {
		t.Fatalf("received a record that was not sent: value %q", value)
	}
	return n
}

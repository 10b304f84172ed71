package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"regexp"
	"testing"
	"time"
)

func TestNewValidatesAddressAndOptions(t *testing.T) {
	for _, tc := range []struct {
		addr string
		opts []Option
	}{
		{"127.0.0.1:7070", nil},
		{"ftp://host:1", nil},
		{"http://", nil},
		{DefaultAddr, []Option{WithRequestTimeout(-1)}},
		{DefaultAddr, []Option{WithBackoff(0, time.Second)}},
		{DefaultAddr, []Option{WithBackoff(time.Second, time.Millisecond)}},
		{DefaultAddr, []Option{WithPublishAttempts(0)}},
		{DefaultAddr, []Option{WithHTTPClient(nil)}},
		{DefaultAddr, []Option{WithTLS(nil)}},
		{"https://127.0.0.1:7070", []Option{WithTLS(&tls.Config{}), WithHTTPClient(&http.Client{})}},
		{DefaultAddr, []Option{WithPropagator(nil)}},
		{DefaultAddr, []Option{WithAPIKey("")}},
		{DefaultAddr, []Option{WithAPIKey("a b")}},
	} {
		c, err := New(tc.addr, tc.opts...)
		if !errors.Is(err, ErrInvalidOption) {
			t.Errorf("New(%q, %d options) = %v, %v; want ErrInvalidOption", tc.addr, len(tc.opts), c, err)
		}
	}
	c, err := New(DefaultAddr+"/", Option{}, WithClientID("x"), WithLogger(nil), WithGRPC(), WithTracerProvider(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Addr() != DefaultAddr {
		t.Errorf("Addr() = %q", c.Addr())
	}
}

func TestProducerAndConsumerOptionValidation(t *testing.T) {
	c, err := New(DefaultAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, o := range []ProducerOption{
		ProducerLinger(-1), ProducerMaxBatchMessages(0), ProducerMaxBatchBytes(0),
		ProducerMaxInFlight(0), ProducerMaxBufferedBytes(0), ProducerDeliveryTimeout(0),
	} {
		if _, err := c.NewProducer("t", o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("producer option %d: %v", i, err)
		}
	}
	h := func(context.Context, *Message) error { return nil }
	for i, o := range []ConsumerOption{
		ConsumerPrefetch(0), ConsumerPrefetch(2_000_000), ConsumerConcurrency(0), ConsumerSessionTimeout(-1),
		ConsumerCommitInterval(0), ConsumerCommitEvery(0), ConsumerHandlerRetries(-1), ConsumerShutdownTimeout(0),
		ConsumerMaxInFlight(-1), ConsumerAckInterval(-1), ConsumerAckEvery(0), ConsumerAckEvery(1<<16 + 1),
		ConsumerMaxExtension(-time.Second),
	} {
		if _, err := c.NewConsumer("t", "s", h, o); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("consumer option %d: %v", i, err)
		}
	}
	if _, err := c.NewConsumer("t", "s", nil); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("nil handler: %v", err)
	}
	// Several bad options are all reported.
	_, err = c.NewProducer("t", ProducerLinger(-1), ProducerMaxInFlight(0))
	if n := len(regexp.MustCompile("invalid option").FindAllString(err.Error(), -1)); n != 2 {
		t.Errorf("want both errors reported, got %v", err)
	}
}

func TestClosedClient(t *testing.T) {
	c, err := New(DefaultAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close() // idempotent
	if _, err := c.NewProducer("t"); !errors.Is(err, ErrClosed) {
		t.Errorf("NewProducer after Close: %v", err)
	}
	if _, err := c.ListTopics(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("ListTopics after Close: %v", err)
	}
	if _, err := c.NewConsumer("t", "s", func(context.Context, *Message) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("NewConsumer after Close: %v", err)
	}
}

func TestMessageToProto(t *testing.T) {
	m := Message{Key: []byte("k"), Value: []byte("v"), Headers: []Header{{"a", []byte("1")}}, Subject: "orders.eu", TTL: time.Minute}
	pm, err := m.toProto()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(pm.Id) {
		t.Errorf("generated id %q is not 128-bit hex", pm.Id)
	}
	if pm.Partition != nil {
		t.Error("partition set without ToPartition")
	}
	pm2, _ := m.toProto()
	if pm2.Id == pm.Id {
		t.Error("two conversions of an id-less message share an id")
	}
	m.ID = "mine"
	pm, _ = m.toProto()
	if pm.Id != "mine" || pm.Ttl.AsDuration() != time.Minute || pm.Headers[0].Key != "a" {
		t.Errorf("got %v", pm)
	}
	delivered := Message{Partition: 7}
	if pm, _ := delivered.toProto(); pm.Partition != nil {
		t.Error("a delivered message's partition must not pin republishing")
	}
	pinned := delivered.ToPartition(3)
	if pm, _ := pinned.toProto(); pm.GetPartition() != 3 || pm.Partition == nil {
		t.Error("ToPartition ignored")
	}
	for _, bad := range []Message{
		{DeliverAt: time.Now(), Delay: time.Second},
		{Delay: -1},
		{TTL: -1},
		Message{}.ToPartition(-1),
	} {
		if _, err := bad.toProto(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestOrderKey(t *testing.T) {
	if k := (&Message{}).orderKey(); k != "" {
		t.Errorf("no key: %q", k)
	}
	a, b := Message{Key: []byte("x")}, Message{}.ToPartition(12)
	if a.orderKey() == b.orderKey() || a.orderKey() == "" || b.orderKey() == "" {
		t.Error("order keys collide or are empty")
	}
	p1, p2 := Message{}.ToPartition(1), Message{Key: []byte("1")}
	if p1.orderKey() == p2.orderKey() {
		t.Error("partition 1 and key \"1\" share an order key")
	}
}

func TestPositionString(t *testing.T) {
	ts := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for p, want := range map[Position]string{
		{}: "default", Earliest(): "earliest", Latest(): "latest", AtOffset(42): "offset:42", AtTime(ts): "time:2030-01-02T03:04:05Z",
	} {
		if p.String() != want {
			t.Errorf("%v: want %s", p, want)
		}
		back := positionFromProto(must(p.toProto()))
		if back.String() != want {
			t.Errorf("round trip of %s gave %s", want, back)
		}
	}
	if _, err := AtOffset(-1).toProto(); !errors.Is(err, ErrInvalidArgument) {
		t.Error("negative offset accepted")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestWithAPIKey: every request carries the bearer token, through a
// caller's HTTP client too.
func TestWithAPIKey(t *testing.T) {
	seen := make(chan string, 1)
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		select {
		case seen <- r.Header.Get("Authorization"):
		default:
		}
		return nil, errors.New("no server")
	})}
	c, err := New(DefaultAddr, WithHTTPClient(hc), WithAPIKey("spool_k"), WithRequestTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ListTopics(context.Background())
	if got := <-seen; got != "Bearer spool_k" {
		t.Fatalf("Authorization %q", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

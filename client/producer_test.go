package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

func newProducer(t *testing.T, c *Client, opts ...ProducerOption) *Producer {
	t.Helper()
	p, err := c.NewProducer("orders", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func waitAll(t *testing.T, fs []*Future) []PublishResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := make([]PublishResult, len(fs))
	for i, f := range fs {
		r, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		out[i] = r
	}
	return out
}

func sendN(p *Producer, n int, key string) []*Future {
	fs := make([]*Future, n)
	for i := range fs {
		m := Message{Value: []byte(key + strconv.Itoa(i))}
		if key != "" {
			m.Key = []byte(key)
		}
		fs[i] = p.Send(context.Background(), m)
	}
	return fs
}

func TestProducerBatchesWithinLinger(t *testing.T) {
	fake := newFakePublish(nil)
	p := newProducer(t, serve(t, fake, nil), ProducerLinger(50*time.Millisecond))
	res := waitAll(t, sendN(p, 10, ""))
	for i, r := range res {
		if r.Offset != int64(i) || r.Duplicate {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if n, _, _ := fake.counts(); n != 1 {
		t.Fatalf("10 messages inside the linger took %d requests, want 1", n)
	}
}

func TestProducerRetriesWithTheSameIDs(t *testing.T) {
	var mu sync.Mutex
	var ids [][]string
	fake := newFakePublish(func(n int, req *spoolv1.PublishRequest) verdict {
		mu.Lock()
		defer mu.Unlock()
		var batch []string
		for _, m := range req.Messages {
			batch = append(batch, m.Id)
		}
		ids = append(ids, batch)
		if n == 1 {
			return verdict{fail: &spoolv1.ErrorInfo{Code: CodeTopicFull, Retriable: true, RetryAfter: durationpb.New(30 * time.Millisecond)}}
		}
		return verdict{}
	})
	p := newProducer(t, serve(t, fake, nil), ProducerLinger(20*time.Millisecond))
	start := time.Now()
	waitAll(t, sendN(p, 5, ""))
	if time.Since(start) < 30*time.Millisecond {
		t.Error("retry-after was not honoured")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || !slices.Equal(ids[0], ids[1]) {
		t.Fatalf("attempts carried ids %v; want two identical attempts", ids)
	}
	if got := len(fake.storedValues()); got != 5 {
		t.Fatalf("stored %d messages, want 5", got)
	}
}

func TestProducerStreamBreakDoesNotDuplicate(t *testing.T) {
	fake := newFakePublish(func(n int, req *spoolv1.PublishRequest) verdict {
		if n == 1 {
			return verdict{breakStream: true, storeFirst: true} // stored, but the answer is lost
		}
		return verdict{}
	})
	p := newProducer(t, serve(t, fake, nil), ProducerLinger(20*time.Millisecond))
	res := waitAll(t, sendN(p, 4, ""))
	for i, r := range res {
		if !r.Duplicate || r.Offset != int64(i) {
			t.Fatalf("result %d = %+v; want the original offset, marked duplicate", i, r)
		}
	}
	if got := fake.storedValues(); len(got) != 4 {
		t.Fatalf("stored %v", got)
	}
	if _, n, _ := fake.counts(); n < 2 {
		t.Fatalf("streams opened: %d", n)
	}
}

func TestProducerKeepsKeyOrderAcrossRetries(t *testing.T) {
	fake := newFakePublish(func(n int, req *spoolv1.PublishRequest) verdict {
		switch n {
		case 1:
			return verdict{fail: &spoolv1.ErrorInfo{Code: CodeUnavailable, Retriable: true}, delay: 20 * time.Millisecond}
		case 3:
			return verdict{breakStream: true}
		}
		return verdict{delay: time.Duration(n%3) * time.Millisecond}
	})
	p := newProducer(t, serve(t, fake, nil), ProducerLinger(0), ProducerMaxBatchMessages(1), ProducerMaxInFlight(8))
	var fs []*Future
	for i := range 30 {
		key := []string{"a", "b", ""}[i%3]
		fs = append(fs, p.Send(context.Background(), Message{Key: []byte(key), Value: []byte(fmt.Sprintf("%s%02d", key, i))}))
	}
	waitAll(t, fs)
	perKey := map[byte][]string{}
	for _, v := range fake.storedValues() {
		if v[0] == 'a' || v[0] == 'b' {
			perKey[v[0]] = append(perKey[v[0]], v)
		}
	}
	for k, vs := range perKey {
		if !slices.IsSorted(vs) || len(vs) != 10 {
			t.Errorf("key %c stored as %v", k, vs)
		}
	}
}

func TestProducerIsolatesARejectedMessage(t *testing.T) {
	fake := newFakePublish(func(n int, req *spoolv1.PublishRequest) verdict {
		for _, m := range req.Messages {
			if string(m.Value) == "bad" {
				return verdict{fail: &spoolv1.ErrorInfo{Code: CodeMessageTooLarge}}
			}
		}
		return verdict{}
	})
	p := newProducer(t, serve(t, fake, nil), ProducerLinger(20*time.Millisecond))
	var fs []*Future
	for _, v := range []string{"a", "b", "bad", "c"} {
		fs = append(fs, p.Send(context.Background(), Message{Value: []byte(v)}))
	}
	for i, f := range fs {
		_, err := f.Wait(context.Background())
		if bad := i == 2; bad != errors.Is(err, ErrMessageTooLarge) || (!bad && err != nil) {
			t.Errorf("message %d: %v", i, err)
		}
	}
	got := fake.storedValues()
	slices.Sort(got) // no keys: no order
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("stored %v", got)
	}
}

func TestProducerDeliveryTimeout(t *testing.T) {
	fake := newFakePublish(func(int, *spoolv1.PublishRequest) verdict {
		return verdict{fail: &spoolv1.ErrorInfo{Code: CodeUnavailable, Retriable: true}}
	})
	p := newProducer(t, serve(t, fake, nil), ProducerDeliveryTimeout(time.Second)) // room for two attempts under load
	_, err := p.PublishSync(context.Background(), Message{Value: []byte("x")})
	if !errors.Is(err, ErrDeliveryTimeout) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v; want ErrDeliveryTimeout wrapping the last error", err)
	}
	if n, _, _ := fake.counts(); n < 2 {
		t.Fatalf("only %d attempts", n)
	}
}

func TestProducerFailsFastOnAPermanentStreamError(t *testing.T) {
	p := newProducer(t, serve(t, nil, nil)) // PublishStream unimplemented
	start := time.Now()
	_, err := p.PublishSync(context.Background(), Message{Value: []byte("x")})
	var e *Error
	if !errors.As(err, &e) || e.Code != "unimplemented" {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("a permanent error was retried")
	}
}

func TestProducerBoundsInFlightRequests(t *testing.T) {
	fake := newFakePublish(func(int, *spoolv1.PublishRequest) verdict { return verdict{delay: 30 * time.Millisecond} })
	p := newProducer(t, serve(t, fake, nil), ProducerLinger(0), ProducerMaxBatchMessages(1), ProducerMaxInFlight(3))
	waitAll(t, sendN(p, 12, ""))
	if _, _, n := fake.counts(); n > 3 || n < 2 {
		t.Fatalf("max requests in flight %d; want 2–3", n)
	}
}

func TestProducerSendBlocksWhenTheBufferIsFull(t *testing.T) {
	fake := newFakePublish(func(int, *spoolv1.PublishRequest) verdict { return verdict{delay: 300 * time.Millisecond} })
	p := newProducer(t, serve(t, fake, nil), ProducerLinger(0), ProducerMaxBufferedBytes(150))
	first := p.Send(context.Background(), Message{Value: []byte("0123456789")})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	second := p.Send(ctx, Message{Value: []byte("0123456789")})
	if _, err := second.Wait(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Send: %v; want it to block until its context ended", err)
	}
	waitAll(t, []*Future{first})
	third := p.Send(context.Background(), Message{Value: []byte("0123456789")})
	waitAll(t, []*Future{third}) // space was released
}

func TestProducerFlushAndClose(t *testing.T) {
	fake := newFakePublish(nil)
	p := newProducer(t, serve(t, fake, nil), ProducerLinger(time.Hour))
	fs := sendN(p, 3, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		select {
		case <-f.Done():
		default:
			t.Fatalf("message %d not done after Flush", i)
		}
	}
	more := sendN(p, 2, "")
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitAll(t, more) // Close flushed them despite the linger
	if _, err := p.PublishSync(ctx, Message{}); !errors.Is(err, ErrProducerClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestProducerCloseGivesUpWithItsContext(t *testing.T) {
	fake := newFakePublish(func(int, *spoolv1.PublishRequest) verdict { return verdict{delay: time.Hour} })
	c := serve(t, fake, nil)
	p := newProducer(t, c, ProducerLinger(0))
	f := p.Send(context.Background(), Message{Value: []byte("x")})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	if _, err := f.Wait(context.Background()); !errors.Is(err, ErrProducerClosed) {
		t.Fatalf("pending message: %v", err)
	}
}

func TestClientCloseClosesProducers(t *testing.T) {
	c := serve(t, newFakePublish(nil), nil)
	p, err := c.NewProducer("orders", ProducerLinger(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f := p.Send(context.Background(), Message{Value: []byte("x")})
	c.Close()
	if _, err := f.Wait(context.Background()); !errors.Is(err, ErrProducerClosed) {
		t.Fatalf("got %v", err)
	}
	if err := p.Close(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Close after Client.Close: %v", err)
	}
}

func TestClientPublishRetries(t *testing.T) {
	fake := newFakePublish(func(n int, _ *spoolv1.PublishRequest) verdict {
		if n == 1 {
			return verdict{fail: &spoolv1.ErrorInfo{Code: CodeUnavailable, Retriable: true}}
		}
		return verdict{}
	})
	c := serve(t, fake, nil)
	res, err := c.Publish(context.Background(), "orders", Message{Value: []byte("a")}, Message{Value: []byte("b")}.ToPartition(3))
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _ := fake.counts(); res[0].Partition != 0 || res[1].Partition != 3 || n != 2 {
		t.Fatalf("results %+v after %d requests", res, n)
	}
	if res, err := c.Publish(context.Background(), "orders"); res != nil || err != nil {
		t.Fatal("publishing nothing must be a no-op")
	}
}

package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/spooltest"
)

// stored is one record as read back from a partition log.
type stored struct {
	offset     int64
	ts         int64
	key, value string
	headers    []batch.RecordHeader
	producer   int64
}

// readAll reads every record of partition p of topic from the broker.
func readAll(t *testing.T, b *broker.Broker, topic string, p int32) []stored {
	t.Helper()
	var out []stored
	for off := int64(0); ; {
		raw, err := b.ReadRaw(topic, p, off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if raw.OutOfRange || len(raw.Data) == 0 {
			return out
		}
		for bt, err := range batch.Batches(raw.Data) {
			if err != nil {
				t.Fatal(err)
			}
			for r, err := range bt.Records(0) {
				if err != nil {
					t.Fatal(err)
				}
				o := bt.Header.RecordOffset(r)
				if o < off {
					continue
				}
				out = append(out, stored{offset: o, ts: bt.Header.RecordTimestamp(r), key: string(r.Key), value: string(r.Value),
					headers: slices.Clone(r.Headers), producer: bt.Header.ProducerID})
			}
			off = bt.Header.LastOffset() + 1
		}
	}
}

// The Producer's batches store exactly the records the message form
// stores for the same messages (Spool's headers first, user headers,
// timestamps), without an id; messages with an id or a delay go by the
// message form, where the de-duplication window applies as before.
func TestIntegrationProducerBatchForm(t *testing.T) {
	srv := spooltest.StartServer(t)
	c := srv.Client()
	ctx := context.Background()
	for _, name := range []string{"orders", "ref"} {
		if _, err := c.CreateTopic(ctx, name, client.TopicConfig{Partitions: 3}); err != nil {
			t.Fatal(err)
		}
	}
	deliverAt := time.UnixMilli(1767225600123)
	ts := time.UnixMilli(1767225000456)
	msgs := []client.Message{
		{Key: []byte("k1"), Value: []byte("plain")},
		{Value: []byte("no key")},
		{Key: []byte("k2"), Value: []byte("all of it"), Subject: "orders.eu.created", DeliverAt: deliverAt, TTL: 90 * time.Second,
			Headers: []client.Header{{Key: "a", Value: []byte("1")}, {Key: "empty"}}},
		{Key: []byte("k1"), Value: []byte("timestamped"), Timestamp: ts},
		client.Message{Value: []byte("pinned")}.ToPartition(2),
		{Key: []byte("k3"), Value: nil},
	}
	p, err := c.NewProducer("orders")
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	var fs []*client.Future
	for _, m := range msgs {
		fs = append(fs, p.Send(ctx, m))
	}
	res := make([]client.PublishResult, len(fs))
	for i, f := range fs {
		if res[i], err = f.Wait(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixMilli()

	// The same messages through the message form (the broker's Publish),
	// to the partitions the producer chose.
	b := srv.Broker()
	for i, m := range msgs {
		bm := broker.Message{Key: m.Key, Value: m.Value, Subject: m.Subject, DeliverAt: m.DeliverAt, TTL: m.TTL, Timestamp: m.Timestamp, Partition: res[i].Partition}
		for _, h := range m.Headers {
			bm.Headers = append(bm.Headers, batch.RecordHeader{Key: h.Key, Value: h.Value})
		}
		if len(bm.Key) == 0 {
			bm.Key = nil
		}
		if _, err := b.Publish("ref", []broker.Message{bm}); err != nil {
			t.Fatal(err)
		}
	}
	for part := range int32(3) {
		got, want := readAll(t, b, "orders", part), readAll(t, b, "ref", part)
		if len(got) != len(want) {
			t.Fatalf("partition %d: %d records, the message form %d", part, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if g.key != w.key || g.value != w.value || fmt.Sprint(g.headers) != fmt.Sprint(w.headers) {
				t.Errorf("partition %d record %d: %+v; the message form stores %+v", part, i, g, w)
			}
			if g.producer < 0 {
				t.Errorf("partition %d record %d: no producer id", part, i)
			}
			for _, h := range g.headers {
				if h.Key == broker.HeaderID {
					t.Errorf("partition %d record %d carries an id", part, i)
				}
			}
			if g.value == "timestamped" {
				if g.ts != ts.UnixMilli() {
					t.Errorf("timestamp %d, want %d", g.ts, ts.UnixMilli())
				}
			} else if g.ts < before || g.ts > after {
				t.Errorf("partition %d record %d: timestamp %d not the broker's time of acceptance [%d, %d]", part, i, g.ts, before, after)
			}
		}
	}
	for i, r := range res {
		if r.Duplicate {
			t.Errorf("message %d: duplicate", i)
		}
		if i == 4 && r.Partition != 2 {
			t.Errorf("pinned message in partition %d", r.Partition)
		}
	}
	if res[0].Partition != res[3].Partition || res[3].Offset <= res[0].Offset {
		t.Errorf("k1's messages out of order: %+v %+v", res[0], res[3])
	}

	// Messages with an id keep the de-duplication window: a second publish
	// of an id is answered with the original, marked duplicate; delayed
	// messages are held by the broker's clock. Both keep their key's
	// order with the batches around them.
	p, err = c.NewProducer("orders")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var seq []*client.Future
	for i := range 30 {
		m := client.Message{Key: []byte("ordered"), Value: []byte(fmt.Sprintf("%02d", i))}
		switch i % 5 {
		case 1:
			m.ID = "id-" + strconv.Itoa(i)
		case 3:
			m.Delay = time.Minute
		}
		seq = append(seq, p.Send(ctx, m))
	}
	var offsets []int64
	for i, f := range seq {
		r, err := f.Wait(ctx)
		if err != nil || r.Duplicate {
			t.Fatalf("ordered %d: %+v %v", i, r, err)
		}
		offsets = append(offsets, r.Offset)
	}
	if !slices.IsSorted(offsets) {
		t.Errorf("one key's offsets out of order: %v", offsets)
	}
	again, err := p.PublishSync(ctx, client.Message{Key: []byte("ordered"), Value: []byte("again"), ID: "id-1"})
	first, _ := seq[1].Wait(ctx)
	if err != nil || !again.Duplicate || again.Offset != first.Offset || again.Partition != first.Partition {
		t.Errorf("id-1 again: %+v %v; first %+v", again, err, first)
	}
	for _, r := range readAll(t, b, "orders", first.Partition) {
		if r.offset == offsets[1] && (len(r.headers) == 0 || r.headers[0].Key != broker.HeaderID) {
			t.Errorf("the message with an id stored as %+v", r)
		}
		if r.offset == offsets[3] {
			at, ok := headerValue(r.headers, broker.HeaderDeliverAt)
			if n, _ := strconv.ParseInt(at, 10, 64); !ok || n < before+int64(time.Minute/time.Millisecond) {
				t.Errorf("the delayed message stored as %+v", r)
			}
		}
	}
}

func headerValue(hs []batch.RecordHeader, key string) (string, bool) {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// cutProxy forwards TCP connections to target and cuts them all on demand.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	n      int // connections accepted
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &cutProxy{ln: ln, target: target}
	px.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			px.mu.Lock()
			to := px.target
			px.mu.Unlock()
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			px.mu.Lock()
			px.conns = append(px.conns, c, s)
			px.n++
			px.mu.Unlock()
			px.wg.Go(func() { io.Copy(s, c); s.Close() })
			px.wg.Go(func() { io.Copy(c, s); c.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		px.cut()
		px.wg.Wait()
	})
	return px
}

// retarget sends new connections to target and cuts the others.
func (px *cutProxy) retarget(target string) {
	px.mu.Lock()
	px.target = target
	px.mu.Unlock()
	px.cut()
}

func (px *cutProxy) cut() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for _, c := range px.conns {
		c.Close()
	}
	px.conns = nil
}

// Broken connections in the middle of pipelined publishing neither lose
// nor duplicate a message, nor reorder a key's messages: batches in flight
// are resent with their producer id and sequences, and the server answers
// the repeats with the original offsets.
func TestIntegrationProducerBatchRetries(t *testing.T) {
	srv := spooltest.StartServer(t)
	ctx := context.Background()
	if _, err := srv.Client().CreateTopic(ctx, "t", client.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	px := newCutProxy(t, srv.Server().HTTPAddr())
	c, err := client.New("http://"+px.ln.Addr().String(), client.WithBackoff(time.Millisecond, 10*time.Millisecond),
		client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.NewProducer("t", client.ProducerLinger(time.Millisecond), client.ProducerMaxBatchMessages(50), client.ProducerDeliveryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var cutter sync.WaitGroup
	cutter.Go(func() {
		for range 40 {
			time.Sleep(7 * time.Millisecond)
			px.cut()
		}
	})
	const n, keys = 30000, 7
	fs := make([]*client.Future, n)
	for i := range n {
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // publish across many cuts
		}
		m := client.Message{Value: []byte(fmt.Sprintf("%d/%05d", i%keys, i))}
		if i%keys != 0 {
			m.Key = []byte(strconv.Itoa(i % keys))
		}
		fs[i] = p.Send(ctx, m)
	}
	for i, f := range fs {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := f.Wait(wctx)
		cancel()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	cutter.Wait()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for part := range int32(3) {
		last := map[byte]string{}
		for _, r := range readAll(t, srv.Broker(), "t", part) {
			seen[r.value]++
			k := r.value[0]
			if k != '0' && r.value < last[k] {
				t.Errorf("key %c: %s after %s", k, r.value, last[k])
			}
			last[k] = r.value
		}
	}
	px.mu.Lock()
	conns := px.n
	px.mu.Unlock()
	if conns < 10 {
		t.Errorf("only %d connections: the stream was hardly broken", conns)
	}
	t.Logf("%d connections", conns)
	if len(seen) != n {
		t.Errorf("%d distinct messages stored, want %d", len(seen), n)
	}
	for v, k := range seen {
		if k != 1 {
			t.Errorf("%s stored %d times", v, k)
		}
	}
}

// A server restarting while a Producer publishes: batches in flight are
// resent to the restarted server, which knows the producer's sequences
// again (its snapshot and the log), so nothing is stored twice.
func TestIntegrationProducerBatchServerRestart(t *testing.T) {
	srv := spooltest.StartServer(t)
	ctx := context.Background()
	if _, err := srv.Client().CreateTopic(ctx, "t", client.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	px := newCutProxy(t, srv.Server().HTTPAddr())
	c, err := client.New("http://"+px.ln.Addr().String(), client.WithBackoff(time.Millisecond, 20*time.Millisecond),
		client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.NewProducer("t", client.ProducerLinger(time.Millisecond), client.ProducerMaxBatchMessages(20))
	if err != nil {
		t.Fatal(err)
	}
	const n = 6000
	fs := make([]*client.Future, n)
	for i := range n {
		if i == n/3 || i == 2*n/3 {
			px.cut() // the stream's end lets the server shut down at once
			srv.Restart()
			px.retarget(srv.Server().HTTPAddr())
		}
		if i%200 == 0 {
			time.Sleep(time.Millisecond)
		}
		fs[i] = p.Send(ctx, client.Message{Key: []byte(strconv.Itoa(i % 5)), Value: []byte(fmt.Sprintf("%d/%05d", i%5, i))})
	}
	for i, f := range fs {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := f.Wait(wctx)
		cancel()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for part := range int32(2) {
		last := map[byte]string{}
		for _, r := range readAll(t, srv.Broker(), "t", part) {
			seen[r.value]++
			if k := r.value[0]; r.value < last[k] {
				t.Errorf("key %c: %s after %s", k, r.value, last[k])
			} else {
				last[k] = r.value
			}
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct messages stored, want %d", len(seen), n)
	}
	for v, k := range seen {
		if k != 1 {
			t.Errorf("%s stored %d times", v, k)
		}
	}
}

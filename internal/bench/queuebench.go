package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/server"
)

// QueueConfig configures RunQueue.
type QueueConfig struct {
	Dir       string
	Server    string // a running server; empty: start one in Dir
	Size      int    // message value size
	Messages  int    // backlog size for the consume+ack measurement
	Consumers int    // SDK consumers for the consume+ack measurement
	NackRatio float64
	// ProcessedKey is the subscription's processed key (its ledger of
	// acknowledged messages, docs/idempotent-consumer.md); empty: none.
	ProcessedKey string
	Progress     io.Writer
}

// QueueResult is what RunQueue measured.
type QueueResult struct {
	ConsumeAckRate float64 // messages acked per second (first deliveries and redeliveries of nacked ones until all acked)
	Nacked         int64
}

// startOrDial starts an in-process server in dir unless addr is given.
func startOrDial(dir, addr string) (string, func(), error) {
	if addr != "" {
		return addr, func() {}, nil
	}
	d, err := os.MkdirTemp(dir, "queue-")
	if err != nil {
		return "", nil, err
	}
	srv, err := server.New(server.Config{DataDir: filepath.Join(d, "data"), HTTPAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return "", nil, err
	}
	if err := srv.Start(); err != nil {
		return "", nil, err
	}
	return "http://" + srv.HTTPAddr(), func() { srv.Shutdown(context.Background()); os.RemoveAll(d) }, nil
}

func quietClient(addr string) (*client.Client, error) {
	return client.New(addr, client.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
}

// fill publishes n messages of size bytes (pipelined) to topic.
func fill(ctx context.Context, c *client.Client, topic string, n, size int) error {
	p, err := c.NewProducer(topic)
	if err != nil {
		return err
	}
	value := make([]byte, size)
	futures := make([]*client.Future, 0, 4096)
	for i := range n {
		v := append([]byte(nil), value...)
		binary.BigEndian.PutUint64(v[:8:8], uint64(i))
		futures = append(futures, p.Send(ctx, client.Message{Value: v}))
		if len(futures) == cap(futures) || i == n-1 {
			for _, f := range futures {
				if _, err := f.Wait(ctx); err != nil {
					return err
				}
			}
			futures = futures[:0]
		}
	}
	return p.Close(ctx)
}

// RunQueue measures consume + ack of a backlog through the SDK with a
// queue subscription (1 % nacks, redelivered after a 1–10 ms backoff).
func RunQueue(cfg QueueConfig) (QueueResult, error) {
	var res QueueResult
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	addr, stop, err := startOrDial(cfg.Dir, cfg.Server)
	if err != nil {
		return res, err
	}
	defer stop()
	c, err := quietClient(addr)
	if err != nil {
		return res, err
	}
	defer c.Close()
	ctx := context.Background()
	topic := fmt.Sprintf("qbench-%d", time.Now().UnixNano())
	if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
		return res, err
	}
	defer c.DeleteTopic(ctx, topic)
	if _, err := c.CreateSubscription(ctx, topic, "work", client.SubscriptionConfig{Mode: client.ModeQueue,
		MaxDeliveries: 100, MaxInFlight: 20000, ProcessedKey: cfg.ProcessedKey,
		Backoff: client.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Jitter: client.JitterNone}}); err != nil {
		return res, err
	}
	fmt.Fprintf(progress, "publishing a backlog of %d × %d B...\n", cfg.Messages, cfg.Size)
	if err := fill(ctx, c, topic, cfg.Messages, max(cfg.Size, 8)); err != nil {
		return res, err
	}
	fmt.Fprintf(progress, "consume + ack with %d consumer(s), %.0f%% nacks...\n", cfg.Consumers, 100*cfg.NackRatio)
	var acked, nacked atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	nackEvery := uint64(0)
	if cfg.NackRatio > 0 {
		nackEvery = uint64(1 / cfg.NackRatio)
	}
	errNack := errors.New("benchmark nack")
	h := func(_ context.Context, m *client.Message) error {
		if nackEvery > 0 && m.DeliveryCount == 1 && binary.BigEndian.Uint64(m.Value[:8])%nackEvery == 0 {
			nacked.Add(1)
			return errNack
		}
		if acked.Add(1) == int64(cfg.Messages) {
			once.Do(func() { close(done) })
		}
		return nil
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, cfg.Consumers)
	t0 := time.Now()
	for range cfg.Consumers {
		k, err := c.NewConsumer(topic, "work", h, client.ConsumerPrefetch(5000), client.ConsumerConcurrency(4))
		if err != nil {
			return res, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := k.Run(runCtx); err != nil {
				errc <- err
			}
		}()
	}
	select {
	case <-done:
	case err := <-errc:
		return res, fmt.Errorf("consumer stopped: %w", err)
	case <-time.After(10 * time.Minute):
		return res, fmt.Errorf("acked %d of %d in 10 minutes", acked.Load(), cfg.Messages)
	}
	res.ConsumeAckRate = float64(cfg.Messages) / time.Since(t0).Seconds()
	res.Nacked = nacked.Load()
	cancel()
	wg.Wait()
	return res, nil
}

// LatencyResult is an end-to-end latency measurement.
type LatencyResult struct {
	Rate           int
	Sent, Received int64
	P50, P99, P999 time.Duration
	Max            time.Duration
	RawSyncP50     time.Duration
}

// RunLatency publishes at a fixed rate for d (each message carrying its send
// time) to a queue subscription consumed by one SDK consumer that acks, and
// reports publish → delivery latency at the consumer.
func RunLatency(dir, addrIn string, rate int, d time.Duration, progress io.Writer) (LatencyResult, error) {
	res := LatencyResult{Rate: rate}
	if progress == nil {
		progress = io.Discard
	}
	raw, err := RawSync(dir, 4096, time.Second)
	if err != nil {
		return res, err
	}
	res.RawSyncP50 = raw.P50
	addr, stop, err := startOrDial(dir, addrIn)
	if err != nil {
		return res, err
	}
	defer stop()
	c, err := quietClient(addr)
	if err != nil {
		return res, err
	}
	defer c.Close()
	ctx := context.Background()
	topic := fmt.Sprintf("lat-%d", time.Now().UnixNano())
	if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
		return res, err
	}
	defer c.DeleteTopic(ctx, topic)
	if _, err := c.CreateSubscription(ctx, topic, "q", client.SubscriptionConfig{Mode: client.ModeQueue}); err != nil {
		return res, err
	}
	var mu sync.Mutex
	h := hdrhistogram.New(1, int64(10*time.Second), 3)
	var received atomic.Int64
	k, err := c.NewConsumer(topic, "q", func(_ context.Context, m *client.Message) error {
		lat := time.Now().UnixNano() - int64(binary.BigEndian.Uint64(m.Value[:8]))
		mu.Lock()
		h.RecordValue(lat)
		mu.Unlock()
		received.Add(1)
		return nil
	}, client.ConsumerConcurrency(4))
	if err != nil {
		return res, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go k.Run(runCtx)
	p, err := c.NewProducer(topic, client.ProducerLinger(0))
	if err != nil {
		return res, err
	}
	fmt.Fprintf(progress, "publishing %d msg/s for %s...\n", rate, d)
	time.Sleep(200 * time.Millisecond) // let the consumer join
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	value := make([]byte, 256)
	for i := 0; time.Since(start) < d; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		v := append([]byte(nil), value...)
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		p.Send(ctx, client.Message{Value: v})
		res.Sent++
	}
	p.Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() < res.Sent && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	res.Received = received.Load()
	mu.Lock()
	res.P50, res.P99 = time.Duration(h.ValueAtQuantile(50)), time.Duration(h.ValueAtQuantile(99))
	res.P999, res.Max = time.Duration(h.ValueAtQuantile(99.9)), time.Duration(h.Max())
	mu.Unlock()
	return res, nil
}

// DelayedResult is the memory cost of pending delayed messages.
type DelayedResult struct {
	Messages  int
	Parked    int64
	HeapDelta int64 // bytes of live heap added (after GC), server and client together
}

// RunDelayed publishes n messages delayed by an hour to a queue subscription
// with a connected consumer (so the server reads and parks them) and
// measures the growth of the live heap of this process (in-process server).
func RunDelayed(dir string, n int, progress io.Writer) (DelayedResult, error) {
	res := DelayedResult{Messages: n}
	if progress == nil {
		progress = io.Discard
	}
	addr, stop, err := startOrDial(dir, "")
	if err != nil {
		return res, err
	}
	defer stop()
	c, err := quietClient(addr)
	if err != nil {
		return res, err
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "delayed", client.TopicConfig{Partitions: 1}); err != nil {
		return res, err
	}
	if _, err := c.CreateSubscription(ctx, "delayed", "q", client.SubscriptionConfig{Mode: client.ModeQueue}); err != nil {
		return res, err
	}
	k, err := c.NewConsumer("delayed", "q", func(context.Context, *client.Message) error { return nil })
	if err != nil {
		return res, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go k.Run(runCtx)
	before := liveHeap()
	fmt.Fprintf(progress, "publishing %d messages delayed by an hour...\n", n)
	p, err := c.NewProducer("delayed")
	if err != nil {
		return res, err
	}
	value := make([]byte, 256)
	for i := range n {
		f := p.Send(ctx, client.Message{Value: value, Delay: time.Hour})
		if i == n-1 {
			if _, err := f.Wait(ctx); err != nil {
				return res, err
			}
		}
	}
	if err := p.Close(ctx); err != nil {
		return res, err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		info, err := c.DescribeSubscription(ctx, "delayed", "q")
		if err != nil {
			return res, err
		}
		var parked int64
		for _, pt := range info.Partitions {
			if pt.Queue != nil {
				parked += pt.Queue.Parked
			}
		}
		res.Parked = parked
		if parked >= int64(n) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.HeapDelta = liveHeap() - before
	return res, nil
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaResult is one run of the Kafka client benchmark against one broker.
type KafkaResult struct {
	ProduceRate      float64 // records/s, idempotent producer, acks=all
	GroupConsumeRate float64 // records/s, group consumer committing after every poll
	// GroupFirst is the time from the consumer's start to its first
	// records (joining the group, finding the offsets): included in
	// GroupConsumeRate. GroupSteadyRate is the rate after the first
	// records arrived.
	GroupFirst       time.Duration
	GroupSteadyRate  float64
	ShareConsumeRate float64 // records/s, share consumer accepting every record; 0 if not run
	ShareErr         error
}

// StartKfake starts franz-go's in-memory fake cluster (one broker, no
// fsync): the client-bound ceiling of the same client code on this machine.
func StartKfake() (addr string, stop func(), err error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return "", nil, err
	}
	return c.ListenAddrs()[0], c.Close, nil
}

// RunKafka measures franz-go clients against the broker at addr: an
// idempotent producer (acks=all, default linger, 4,096 buffered records)
// producing n records of size bytes, a group consumer reading them and
// committing after every poll, and (with share) a share consumer accepting
// every record.
// profile, if not nil, is called as each phase starts ("produce", "group",
// "share") and the function it returns as the phase ends (to profile it).
func RunKafka(addr string, size, n int, share bool, progress io.Writer, profile func(phase string) func()) (KafkaResult, error) {
	var res KafkaResult
	if progress == nil {
		progress = io.Discard
	}
	if profile == nil {
		profile = func(string) func() { return func() {} }
	}
	ctx := context.Background()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return res, err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	topic := fmt.Sprintf("kbench-%d", time.Now().UnixNano())
	// Replication factor -1: the broker's default (a cluster replicates).
	if _, err := adm.CreateTopic(ctx, 1, -1, nil, topic); err != nil {
		return res, err
	}
	defer adm.DeleteTopics(ctx, topic)

	fmt.Fprintf(progress, "  produce %d × %d B...\n", n, size)
	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(4096))
	if err != nil {
		return res, err
	}
	// Values are slices of a 64 MiB random pool at varying offsets, so
	// that the client's default compression (snappy) finds nothing to
	// squeeze: the bytes stored and fetched are the records' own size.
	pool := randomPool(64<<20 + size)
	var failed atomic.Int64
	var wg sync.WaitGroup
	stop := profile("produce")
	t0 := time.Now()
	for i := range n {
		value := pool[(i*size+i*7)%(len(pool)-size):][:size]
		wg.Add(1)
		p.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	res.ProduceRate = float64(n) / time.Since(t0).Seconds()
	stop()
	p.Close()
	if f := failed.Load(); f > 0 {
		return res, fmt.Errorf("%d records failed to produce", f)
	}

	fmt.Fprintf(progress, "  group consume...\n")
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(topic+"-g"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return res, err
	}
	got, first, polls := 0, 0, 0
	stop = profile("group")
	t0 = time.Now()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	for got < n {
		fs := c.PollFetches(cctx)
		if err := fs.Err0(); err != nil {
			cancel()
			c.Close()
			return res, fmt.Errorf("group consume: %w", err)
		}
		if got == 0 && fs.NumRecords() > 0 {
			res.GroupFirst = time.Since(t0)
			first = fs.NumRecords()
		}
		got += fs.NumRecords()
		polls++
		if err := c.CommitUncommittedOffsets(cctx); err != nil {
			cancel()
			c.Close()
			return res, fmt.Errorf("commit: %w", err)
		}
	}
	res.GroupConsumeRate = float64(n) / time.Since(t0).Seconds()
	res.GroupSteadyRate = float64(got-first) / (time.Since(t0) - res.GroupFirst).Seconds()
	fmt.Fprintf(progress, "  %d polls, %d records each on average\n", polls, got/max(polls, 1))
	stop()
	cancel()
	c.Close()

	if share {
		fmt.Fprintf(progress, "  share consume...\n")
		// Share groups start at the latest offset by default (Kafka's
		// share.auto.offset.reset); these records were produced before.
		if err := setShareReset(ctx, admin, topic+"-s"); err != nil {
			res.ShareErr = err
			return res, nil
		}
		stop = profile("share")
		res.ShareConsumeRate, res.ShareErr = shareConsume(addr, topic, n)
		stop()
	}
	return res, nil
}

// RunKafkaProduce measures an idempotent franz-go producer (acks=all, the
// client's defaults but for buffered records and produce requests in
// flight per broker, where > 0) producing n keyless records
// of size bytes to a new topic of partitions partitions (replication
// factor: the broker's default), and returns records/s.
func RunKafkaProduce(addr string, size, n int, partitions int32, buffered, inflight int) (float64, error) {
	ctx := context.Background()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	topic := fmt.Sprintf("kprod-%d", time.Now().UnixNano())
	if _, err := adm.CreateTopic(ctx, partitions, -1, nil, topic); err != nil {
		return 0, err
	}
	defer adm.DeleteTopics(ctx, topic)
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic)}
	if buffered > 0 {
		opts = append(opts, kgo.MaxBufferedRecords(buffered))
	}
	if inflight > 1 {
		// franz-go allows one request in flight per broker with
		// idempotence; more means plain acks=all.
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(inflight))
	}
	p, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	// Every partition's leader known before the clock starts.
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("w")}).FirstErr(); err != nil {
		return 0, err
	}
	pool := randomPool(64<<20 + size)
	var failed atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		value := pool[(i*size+i*7)%(len(pool)-size):][:size]
		wg.Add(1)
		p.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	rate := float64(n) / time.Since(t0).Seconds()
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d records failed to produce", f)
	}
	return rate, nil
}

// setShareReset sets a share group's share.auto.offset.reset to earliest.
func setShareReset(ctx context.Context, cl *kgo.Client, group string) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op, c.Value = "share.auto.offset.reset", kmsg.IncrementalAlterConfigOpSet, kmsg.StringPtr("earliest")
	res.Configs = append(res.Configs, c)
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("set share.auto.offset.reset: %w", err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("set share.auto.offset.reset: %w", err)
		}
	}
	return nil
}

// randomPool returns n random bytes.
func randomPool(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func shareConsume(addr, topic string, n int) (float64, error) {
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ShareGroup(topic+"-s"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	got := 0
	t0 := time.Now()
	for got < n {
		fs := c.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return 0, fmt.Errorf("share consume after %d records: %w", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			r.Ack(kgo.AckAccept)
			got++
		})
	}
	rate := float64(n) / time.Since(t0).Seconds()
	c.FlushAcks(ctx)
	return rate, nil
}

// RunKafkaLatency produces at a fixed rate for d with a linger-free
// producer (each record carrying its send time) and measures produce →
// delivery latency at a group consumer.
func RunKafkaLatency(addr string, rate int, d time.Duration) (LatencyResult, error) {
	res := LatencyResult{Rate: rate}
	ctx := context.Background()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return res, err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	topic := fmt.Sprintf("klat-%d", time.Now().UnixNano())
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		return res, err
	}
	defer adm.DeleteTopics(ctx, topic)
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(time.Second))
	if err != nil {
		return res, err
	}
	defer c.Close()
	h := hdrhistogram.New(1, int64(10*time.Second), 3)
	var received atomic.Int64
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for cctx.Err() == nil {
			fs := c.PollFetches(cctx)
			now := time.Now().UnixNano()
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) < 8 {
					return // the warm-up record
				}
				h.RecordValue(now - int64(binary.BigEndian.Uint64(r.Value)))
				received.Add(1)
			})
		}
	}()
	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		return res, err
	}
	// One record first, answered before the clock starts: the topic is
	// new, and on a cluster its partition elects a leader first.
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("w")}).FirstErr(); err != nil {
		return res, err
	}
	time.Sleep(500 * time.Millisecond)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			time.Sleep(w)
		}
		v := make([]byte, 256)
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		p.Produce(ctx, &kgo.Record{Value: v}, nil)
		res.Sent++
	}
	p.Flush(ctx)
	p.Close()
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() < res.Sent && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-consumed
	res.Received = received.Load()
	res.P50, res.P99 = time.Duration(h.ValueAtQuantile(50)), time.Duration(h.ValueAtQuantile(99))
	res.P999, res.Max = time.Duration(h.ValueAtQuantile(99.9)), time.Duration(h.Max())
	return res, nil
}

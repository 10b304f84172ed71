package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spoolmq/spool/client"
)

// kafkaFetchWait is the consumer's fetch.max.wait in the Kafka latency
// measurements.
const kafkaFetchWait = 100 * time.Millisecond

// onePause is the pause between one-at-a-time publishes.
const onePause = 2 * time.Millisecond

// e2eRecords is the number of records a measurement at rate sends.
func (r *e2eRun) e2eRecords(rate int) int {
	return max(1, int(float64(rate)*r.cfg.Duration.Seconds()))
}

// nativeE2E measures the SDK: a Producer without linger and one Consumer
// on a new one-partition topic's stream (or queue) subscription.
func (r *e2eRun) nativeE2E(ctx context.Context, rate int, queue bool) (E2EResult, error) {
	c := r.native
	topic := topicName("lat-native")
	if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
		return E2EResult{}, err
	}
	defer c.DeleteTopic(context.WithoutCancel(ctx), topic)
	scfg := client.SubscriptionConfig{Mode: client.ModeStream, Start: client.Earliest()}
	var copts []client.ConsumerOption
	if queue {
		scfg.Mode = client.ModeQueue
		copts = append(copts, client.ConsumerConcurrency(4))
		defer c.DeleteTopic(context.WithoutCancel(ctx), "dlq."+topic+".e2e")
	}
	if _, err := c.CreateSubscription(ctx, topic, "e2e", scfg); err != nil {
		return E2EResult{}, err
	}
	rec := newRecorder(r.e2eRecords(rate))
	k, err := c.NewConsumer(topic, "e2e", func(_ context.Context, m *client.Message) error {
		rec.record(m.Value, mono())
		return nil
	}, copts...)
	if err != nil {
		return E2EResult{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- k.Run(runCtx) }()
	defer func() { cancel(); <-errc }()
	p, err := c.NewProducer(topic, client.ProducerLinger(0))
	if err != nil {
		return E2EResult{}, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		p.Close(cctx)
	}()
	fc := newFutureChecker(ctx)
	send := func(v []byte) { fc.add(p.Send(ctx, client.Message{Value: v})) }
	flush := func(ctx context.Context) (int64, error) {
		ferr := p.Flush(ctx)
		n, err := fc.wait()
		return n, errors.Join(err, ferr)
	}
	res, err := r.measure(ctx, rate, rec, send, flush)
	select {
	case err2 := <-errc: // the consumer stopped by itself
		errc <- err2
		if err == nil && err2 != nil {
			err = err2
		}
	default:
	}
	return res, err
}

// futureChecker waits for the SDK's futures off the sending goroutine,
// 1,024 at a time, counting failures.
type futureChecker struct {
	ctx    context.Context
	chunk  []*client.Future
	ch     chan []*client.Future
	done   chan struct{}
	failed int64
	first  error
}

func newFutureChecker(ctx context.Context) *futureChecker {
	fc := &futureChecker{ctx: ctx, chunk: make([]*client.Future, 0, 1024), ch: make(chan []*client.Future, 1024),
		done: make(chan struct{})}
	go func() {
		defer close(fc.done)
		for chunk := range fc.ch {
			for _, f := range chunk {
				if _, err := f.Wait(fc.ctx); err != nil {
					fc.failed++
					if fc.first == nil {
						fc.first = err
					}
				}
			}
		}
	}()
	return fc
}

func (fc *futureChecker) add(f *client.Future) {
	fc.chunk = append(fc.chunk, f)
	if len(fc.chunk) == cap(fc.chunk) {
		fc.ch <- fc.chunk
		fc.chunk = make([]*client.Future, 0, 1024)
	}
}

// wait waits for every future added and returns the number that failed
// and the first error.
func (fc *futureChecker) wait() (int64, error) {
	if len(fc.chunk) > 0 {
		fc.ch <- fc.chunk
		fc.chunk = nil
	}
	close(fc.ch)
	<-fc.done
	return fc.failed, fc.first
}

// kafkaE2E measures franz-go against the Kafka broker at addr: a producer
// without linger and a direct consumer with a 100 ms fetch wait, on a new
// one-partition topic.
func (r *e2eRun) kafkaE2E(ctx context.Context, addr string, rate int) (E2EResult, error) {
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return E2EResult{}, err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	topic := topicName("lat-kafka")
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		return E2EResult{}, err
	}
	defer adm.DeleteTopics(context.WithoutCancel(ctx), topic)
	rec := newRecorder(r.e2eRecords(rate))
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(kafkaFetchWait))
	if err != nil {
		return E2EResult{}, err
	}
	defer cons.Close()
	cctx, cancel := context.WithCancel(ctx)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			now := mono()
			fs.EachRecord(func(rc *kgo.Record) { rec.record(rc.Value, now) })
		}
	}()
	defer func() { cancel(); <-consumed }()
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		return E2EResult{}, err
	}
	defer prod.Close()
	var failed atomic.Int64
	var firstMu sync.Mutex
	var first error
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			firstMu.Lock()
			if first == nil {
				first = err
			}
			firstMu.Unlock()
		}
	}
	var recs []kgo.Record // records are allocated 1,024 at a time
	send := func(v []byte) {
		if len(recs) == 0 {
			recs = make([]kgo.Record, 1024)
		}
		rc := &recs[0]
		recs = recs[1:]
		rc.Value = v
		prod.Produce(ctx, rc, promise)
	}
	flush := func(ctx context.Context) (int64, error) {
		ferr := prod.Flush(ctx)
		firstMu.Lock()
		defer firstMu.Unlock()
		return failed.Load(), errors.Join(first, ferr)
	}
	return r.measure(ctx, rate, rec, send, flush)
}

// oneAtATime publishes one record, waits for its acknowledgement, pauses
// 2 ms and repeats for the configured time, after a few unmeasured
// publishes.
func (r *e2eRun) oneAtATime(ctx context.Context, path string) (Quantiles, error) {
	var publish func(v []byte) error
	switch path {
	case OneNativePublish, OneNativePublishSync:
		c := r.native
		topic := topicName("one-native")
		if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
			return Quantiles{}, err
		}
		defer c.DeleteTopic(context.WithoutCancel(ctx), topic)
		if path == OneNativePublish {
			publish = func(v []byte) error {
				_, err := c.Publish(ctx, topic, client.Message{Value: v})
				return err
			}
			break
		}
		p, err := c.NewProducer(topic, client.ProducerLinger(0))
		if err != nil {
			return Quantiles{}, err
		}
		defer p.Close(context.WithoutCancel(ctx))
		publish = func(v []byte) error {
			_, err := p.PublishSync(ctx, client.Message{Value: v})
			return err
		}
	default:
		addr := r.kafka
		if path == OneKfake {
			addr = r.kfake
		}
		admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			return Quantiles{}, err
		}
		defer admin.Close()
		adm := kadm.NewClient(admin)
		topic := topicName("one-kafka")
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			return Quantiles{}, err
		}
		defer adm.DeleteTopics(context.WithoutCancel(ctx), topic)
		prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
		if err != nil {
			return Quantiles{}, err
		}
		defer prod.Close()
		publish = func(v []byte) error { return prod.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr() }
	}
	values := newValueSource(r.pool, r.cfg.Size)
	for range 5 {
		if err := publish(values.next()); err != nil {
			return Quantiles{}, err
		}
	}
	h := newLatHist()
	start := time.Now()
	for time.Since(start) < r.cfg.OneAtATime {
		v := values.next()
		t0 := mono()
		if err := publish(v); err != nil {
			return Quantiles{}, err
		}
		h.record(mono() - t0)
		select {
		case <-ctx.Done():
			return Quantiles{}, ctx.Err()
		case <-time.After(onePause):
		}
	}
	return h.quantiles(), nil
}

// throughput publishes the configured number of records, pipelined, from
// one producer with default options to a new one-partition topic on the
// server, and returns acknowledged records per second (until the last
// acknowledgement).
func (r *e2eRun) throughput(ctx context.Context, name string) (float64, error) {
	n, size := r.cfg.ThroughputMessages, r.cfg.Size
	// Values are slices of the random pool at varying offsets: no
	// allocation, nothing for a compressing client to squeeze.
	value := func(i int) []byte { return r.pool[(i*size+i*7)%(len(r.pool)-size):][:size:size] }
	if name == ThroughputNative {
		c := r.native
		topic := topicName("tput-native")
		if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
			return 0, err
		}
		defer c.DeleteTopic(context.WithoutCancel(ctx), topic)
		p, err := c.NewProducer(topic)
		if err != nil {
			return 0, err
		}
		// Connect before the clock starts, as franz-go's does below.
		if _, err := p.PublishSync(ctx, client.Message{Value: value(0)}); err != nil {
			p.Close(ctx)
			return 0, err
		}
		fc := newFutureChecker(ctx)
		t0 := time.Now()
		for i := range n {
			fc.add(p.Send(ctx, client.Message{Value: value(i)}))
		}
		failed, ferr := fc.wait()
		d := time.Since(t0)
		if err := p.Close(ctx); err != nil {
			return 0, err
		}
		if failed > 0 {
			return 0, errors.Join(errors.New("sends failed"), ferr)
		}
		return float64(n) / d.Seconds(), nil
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(r.kafka))
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	topic := topicName("tput-kafka")
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		return 0, err
	}
	defer adm.DeleteTopics(context.WithoutCancel(ctx), topic)
	prod, err := kgo.NewClient(kgo.SeedBrokers(r.kafka), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return 0, err
	}
	defer prod.Close()
	var failed atomic.Int64
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	// Connect and load the topic's metadata before the clock starts.
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: value(0)}).FirstErr(); err != nil {
		return 0, err
	}
	var recs []kgo.Record
	t0 := time.Now()
	for i := range n {
		if len(recs) == 0 {
			recs = make([]kgo.Record, 1024)
		}
		rc := &recs[0]
		recs = recs[1:]
		rc.Value = value(i)
		prod.Produce(ctx, rc, promise)
	}
	if err := prod.Flush(ctx); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if f := failed.Load(); f > 0 {
		return 0, errors.New("produces failed")
	}
	return float64(n) / d.Seconds(), nil
}

package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spoolmq/spool/client"
)

// OverloadConfig configures RunOverload.
type OverloadConfig struct {
	// Start starts the server under test (a separate process: its RSS is
	// measured from /proc); its memory limit is MemoryLimit.
	Start ServerStarter
	// Dir holds the server's data.
	Dir string
	// MemoryLimit is the server's memory.limit (passed by Start), the
	// budget its peak RSS is compared with.
	MemoryLimit int64
	// Cgroup, when the cgroup v1 memory controller is writable, runs the
	// server in a memory cgroup limited to CgroupLimit (default twice
	// MemoryLimit) and reports its peak usage, failures and OOM kills.
	Cgroup      bool
	CgroupLimit int64
	// Calibrate is how long the sustainable publish rate is measured
	// (closed loop, Publishers connections, one request each at a time).
	Calibrate time.Duration
	// Duration is how long the overload lasts.
	Duration time.Duration
	// Factor is the offered load in multiples of the sustainable rate.
	Factor float64
	// Conns is the number of client connections opened during the
	// overload: Publishers publish, KafkaProducers produce, the rest
	// (native and Kafka, half each) stay idle.
	Conns          int
	Publishers     int
	KafkaProducers int
	// MaxOutstanding bounds the publish requests one publishing
	// connection has unanswered; an offered request beyond it is counted
	// as held back at the client (backpressure reached the producer).
	MaxOutstanding int
	// Batch is the messages of one publish request, Size their value
	// bytes.
	Batch, Size int
	// Partitions of the loaded topic; RetentionBytes per partition keeps
	// the disk bounded.
	Partitions     int32
	RetentionBytes int64
	// ConsumerDelay is what the slow consumers (a stream and a queue
	// subscription) spend on each message.
	ConsumerDelay time.Duration
	// ProbeEvery is the probe client's period: one small publish and one
	// describe each time.
	ProbeEvery time.Duration
	Progress   io.Writer
}

func (c OverloadConfig) withDefaults() OverloadConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Conns, 300)
	def(&c.Publishers, 64)
	def(&c.MaxOutstanding, 8)
	def(&c.Batch, 256)
	def(&c.Size, 1024)
	if c.KafkaProducers < 0 {
		c.KafkaProducers = 0
	}
	if c.MemoryLimit <= 0 {
		c.MemoryLimit = 512 << 20
	}
	if c.CgroupLimit <= 0 {
		c.CgroupLimit = 2 * c.MemoryLimit
	}
	if c.Calibrate <= 0 {
		c.Calibrate = 10 * time.Second
	}
	if c.Duration <= 0 {
		c.Duration = 5 * time.Minute
	}
	if c.Factor <= 0 {
		c.Factor = 10
	}
	if c.Partitions <= 0 {
		c.Partitions = 4
	}
	if c.RetentionBytes <= 0 {
		c.RetentionBytes = 256 << 20
	}
	if c.ConsumerDelay <= 0 {
		c.ConsumerDelay = 5 * time.Millisecond
	}
	if c.ProbeEvery <= 0 {
		c.ProbeEvery = 200 * time.Millisecond
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// OverloadReport is what RunOverload measured.
type OverloadReport struct {
	MemoryLimit int64 // the configured budget
	PID         int

	// The server's resident memory: the largest VmRSS sampled (every
	// 100 ms) and VmHWM (the kernel's own peak) at the end.
	PeakRSS, HWM int64
	// Go heap in use at its largest (go_memstats_heap_inuse_bytes).
	PeakHeapInuse int64

	// The cgroup's numbers, when it ran in one.
	Cgroup                 string
	CgroupLimit            int64
	CgroupMaxUsage         int64
	CgroupFailcnt          int64
	CgroupOOMKills         int64
	CgroupUnderOOM         bool
	ServerExitedDuringLoad bool

	// SustainableRate is the calibrated publish rate (messages/s);
	// Offered the overload's offered rate, Accepted what was acknowledged.
	SustainableRate, OfferedRate, AcceptedRate float64
	AcceptedKafkaRate                          float64
	// HeldBack counts offered requests never sent because the connection
	// had MaxOutstanding unanswered (the server's backpressure).
	HeldBack int64
	// Errors counts failed publish requests by kind (Spool codes,
	// "deadline_exceeded", ...), Kafka produce errors under "kafka: ...".
	Errors map[string]int64
	// Consumed by the slow consumers.
	StreamConsumed, QueueConsumed int64
	// ConnsOpen is the largest spool_connections sum seen.
	ConnsOpen int64

	// Probe latencies (publish of one small message, then a describe),
	// before the load (Baseline) and during it; failures during it.
	Baseline, Probe         Percentiles
	ProbeOK, ProbeFailed    int64
	ProbeErrors             map[string]int64
	BackpressureCounters    map[string]float64 // deltas over the overload
	BudgetPeakInUse         map[string]float64
	DurationRun, Calibrated time.Duration
}

// Percentiles of a latency sample.
type Percentiles struct {
	N             int
	P50, P99, Max time.Duration
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(math.Ceil(q*float64(len(d))))-1)] }
	return Percentiles{N: len(d), P50: at(0.50), P99: at(0.99), Max: d[len(d)-1]}
}

// WithinBudget reports whether the peak RSS stayed within the budget.
func (r *OverloadReport) WithinBudget() bool {
	return max(r.PeakRSS, r.HWM) <= r.MemoryLimit
}

const (
	overloadTopic = "overload"
	probeTopic    = "overload-probe"
)

// RunOverload starts a server, measures its sustainable publish rate, then
// offers Factor times that rate over many connections with slow consumers
// for Duration, sampling the server's memory and metrics and probing it
// with a small client.
func RunOverload(ctx context.Context, cfg OverloadConfig) (*OverloadReport, error) {
	cfg = cfg.withDefaults()
	rep := &OverloadReport{MemoryLimit: cfg.MemoryLimit, Errors: map[string]int64{}, ProbeErrors: map[string]int64{},
		BackpressureCounters: map[string]float64{}, BudgetPeakInUse: map[string]float64{}}
	srv, stop, err := cfg.Start(ctx, filepath.Join(cfg.Dir, "data"))
	if err != nil {
		return nil, err
	}
	defer stop()
	rep.PID = srv.PID
	if srv.PID == 0 {
		return nil, errors.New("overload: the server must run as its own process (its RSS is measured)")
	}
	if cfg.Cgroup {
		cg, err := joinMemoryCgroup(srv.PID, cfg.CgroupLimit)
		if err != nil {
			fmt.Fprintf(cfg.Progress, "no memory cgroup (%v): measuring RSS from /proc only\n", err)
		} else {
			defer cg.remove()
			rep.Cgroup, rep.CgroupLimit = cg.dir, cfg.CgroupLimit
			defer func() {
				rep.CgroupMaxUsage = cg.readInt("memory.max_usage_in_bytes")
				rep.CgroupFailcnt = cg.readInt("memory.failcnt")
				rep.CgroupOOMKills, rep.CgroupUnderOOM = cg.oom()
			}()
		}
	}
	quiet := slog.New(slog.DiscardHandler)
	admin, err := client.New(srv.URL, client.WithLogger(quiet))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.CreateTopic(ctx, overloadTopic, client.TopicConfig{Partitions: cfg.Partitions, RetentionBytes: cfg.RetentionBytes}); err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	if _, err := admin.CreateTopic(ctx, probeTopic, client.TopicConfig{Partitions: 1, RetentionBytes: 64 << 20}); err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	for _, s := range []struct {
		name string
		mode client.Mode
	}{{"slow-stream", client.ModeStream}, {"slow-queue", client.ModeQueue}} {
		if _, err := admin.CreateSubscription(ctx, overloadTopic, s.name, client.SubscriptionConfig{Mode: s.mode, Start: client.Latest()}); err != nil {
			return nil, fmt.Errorf("create subscription %s: %w", s.name, err)
		}
	}

	// The sampler runs from the start: RSS every 100 ms, /metrics every
	// second.
	samp := &sampler{pid: srv.PID, url: srv.URL, hc: &http.Client{Timeout: 5 * time.Second}}
	sctx, scancel := context.WithCancel(ctx)
	sdone := make(chan struct{})
	go func() { defer close(sdone); samp.run(sctx) }()
	defer func() { scancel(); <-sdone }()

	// Baseline probe: idle server.
	fmt.Fprintf(cfg.Progress, "baseline probe (3 s)\n")
	probe, err := client.New(srv.URL, client.WithLogger(quiet), client.WithRequestTimeout(30*time.Second))
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	base := runProbe(ctx, probe, cfg.ProbeEvery, 3*time.Second)
	rep.Baseline = percentiles(base.lat)

	payload := make([]byte, cfg.Size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	batch := make([]client.Message, cfg.Batch)
	for i := range batch {
		batch[i] = client.Message{Value: payload}
	}

	// Calibration: closed loop, one request at a time per connection.
	fmt.Fprintf(cfg.Progress, "calibrating the sustainable publish rate (%s, %d connections, %d × %d B per request)\n",
		cfg.Calibrate, cfg.Publishers, cfg.Batch, cfg.Size)
	pubs := make([]*client.Client, cfg.Publishers)
	for i := range pubs {
		if pubs[i], err = client.New(srv.URL, client.WithLogger(quiet), client.WithRequestTimeout(0)); err != nil {
			return nil, err
		}
		defer pubs[i].Close()
	}
	{
		var acked atomic.Int64
		cctx, cancel := context.WithTimeout(ctx, cfg.Calibrate)
		var wg sync.WaitGroup
		start := time.Now()
		for _, c := range pubs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for cctx.Err() == nil {
					if _, err := c.Publish(cctx, overloadTopic, batch...); err == nil {
						acked.Add(int64(len(batch)))
					}
				}
			}()
		}
		wg.Wait()
		cancel()
		rep.Calibrated = time.Since(start)
		rep.SustainableRate = float64(acked.Load()) / rep.Calibrated.Seconds()
	}
	if rep.SustainableRate <= 0 {
		return rep, errors.New("overload: nothing was acknowledged during calibration")
	}
	rep.OfferedRate = cfg.Factor * rep.SustainableRate
	fmt.Fprintf(cfg.Progress, "sustainable: %.0f msg/s; offering %.0f msg/s (%.0f×) for %s\n", rep.SustainableRate, rep.OfferedRate, cfg.Factor, cfg.Duration)

	// The rest of the connections: idle native clients (one describe
	// each, then nothing) and idle Kafka connections (ApiVersions, then
	// nothing).
	idle := max(0, cfg.Conns-cfg.Publishers-cfg.KafkaProducers-3)
	var idleNative []*client.Client
	var idleKafka []net.Conn
	for i := range idle {
		if i%2 == 0 {
			c, err := client.New(srv.URL, client.WithLogger(quiet))
			if err != nil {
				return nil, err
			}
			defer c.Close()
			if _, err := c.DescribeTopic(ctx, probeTopic); err != nil {
				rep.Errors["idle describe: "+errKind(err)]++
			}
			idleNative = append(idleNative, c)
		} else {
			nc, err := net.DialTimeout("tcp", srv.KafkaAddr, 5*time.Second)
			if err != nil {
				rep.Errors["idle kafka dial"]++
				continue
			}
			defer nc.Close()
			nc.Write(apiVersionsRequest(int32(i)))
			idleKafka = append(idleKafka, nc)
		}
	}
	_ = idleNative
	go func() {
		// Drain the idle Kafka connections' answers.
		for _, nc := range idleKafka {
			go io.Copy(io.Discard, nc)
		}
	}()

	before := samp.scrape(ctx)
	lctx, lcancel := context.WithTimeout(ctx, cfg.Duration)
	defer lcancel()
	var wg sync.WaitGroup

	// Slow consumers.
	var streamN, queueN atomic.Int64
	for _, s := range []struct {
		name string
		n    *atomic.Int64
	}{{"slow-stream", &streamN}, {"slow-queue", &queueN}} {
		c, err := client.New(srv.URL, client.WithLogger(quiet))
		if err != nil {
			return nil, err
		}
		defer c.Close()
		n := s.n
		k, err := c.NewConsumer(overloadTopic, s.name, func(ctx context.Context, _ *client.Message) error {
			n.Add(1)
			select {
			case <-time.After(cfg.ConsumerDelay):
			case <-ctx.Done():
			}
			return nil
		}, client.ConsumerConcurrency(1))
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = k.Run(lctx) }()
	}

	// Probe during the load.
	var probed probeResult
	wg.Add(1)
	go func() { defer wg.Done(); probed = runProbe(lctx, probe, cfg.ProbeEvery, cfg.Duration) }()

	// Native publishers, open loop: each connection offers its share of
	// the rate as requests on a ticker, with at most MaxOutstanding
	// unanswered.
	var acked, kacked, heldBack atomic.Int64
	var errMu sync.Mutex
	countErr := func(k string) {
		errMu.Lock()
		rep.Errors[k]++
		errMu.Unlock()
	}
	perConn := rep.OfferedRate / float64(len(batch)) / float64(cfg.Publishers+cfg.KafkaProducers) // requests/s
	interval := time.Duration(float64(time.Second) / perConn)
	for _, c := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem := make(chan struct{}, cfg.MaxOutstanding)
			t := time.NewTicker(interval)
			defer t.Stop()
			var inner sync.WaitGroup
			defer inner.Wait()
			for {
				select {
				case <-lctx.Done():
					return
				case <-t.C:
				}
				select {
				case sem <- struct{}{}:
				default:
					heldBack.Add(1)
					continue
				}
				inner.Add(1)
				go func() {
					defer inner.Done()
					defer func() { <-sem }()
					rctx, cancel := context.WithTimeout(lctx, 30*time.Second)
					defer cancel()
					if _, err := c.Publish(rctx, overloadTopic, batch...); err != nil {
						if lctx.Err() == nil {
							countErr(errKind(err))
						}
						return
					}
					acked.Add(int64(len(batch)))
				}()
			}
		}()
	}
	// Kafka producers: franz-go, async, bounded buffer; the same share of
	// the rate each, in batches of cfg.Batch records.
	for i := range cfg.KafkaProducers {
		kc, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr), kgo.DefaultProduceTopic(overloadTopic),
			kgo.MaxBufferedRecords(cfg.Batch*cfg.MaxOutstanding), kgo.ProducerBatchMaxBytes(1<<20),
			kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ClientID(fmt.Sprintf("overload-%d", i)))
		if err != nil {
			return nil, err
		}
		defer kc.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-lctx.Done():
					return
				case <-t.C:
				}
				for range len(batch) {
					r := &kgo.Record{Value: payload}
					kc.TryProduce(lctx, r, func(_ *kgo.Record, err error) {
						switch {
						case err == nil:
							kacked.Add(1)
						case errors.Is(err, kgo.ErrMaxBuffered):
							heldBack.Add(1)
						case lctx.Err() == nil:
							countErr("kafka: " + err.Error())
						}
					})
				}
			}
		}()
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				s := samp.snapshot()
				fmt.Fprintf(cfg.Progress, "%3.0fs: rss %s (peak %s) heap %s; acked %d native + %d kafka; held back %d; consumed %d stream, %d queue\n",
					time.Since(start).Seconds(), mib(s.rss), mib(s.peakRSS), mib(s.heap), acked.Load(), kacked.Load(), heldBack.Load(), streamN.Load(), queueN.Load())
			}
		}
	}()
	start := time.Now()
	<-lctx.Done()
	rep.DurationRun = time.Since(start)
	wg.Wait()
	<-progressDone
	after := samp.scrape(ctx)

	rep.AcceptedRate = float64(acked.Load()+kacked.Load()) / rep.DurationRun.Seconds()
	rep.AcceptedKafkaRate = float64(kacked.Load()) / rep.DurationRun.Seconds()
	rep.HeldBack = heldBack.Load()
	rep.StreamConsumed, rep.QueueConsumed = streamN.Load(), queueN.Load()
	rep.Probe = percentiles(probed.lat)
	rep.ProbeOK, rep.ProbeFailed, rep.ProbeErrors = probed.ok, probed.failed, probed.errs
	for k, v := range after {
		if isBackpressure(k) && v-before[k] != 0 {
			rep.BackpressureCounters[k] = v - before[k]
		}
	}
	s := samp.snapshot()
	rep.PeakRSS, rep.PeakHeapInuse, rep.ConnsOpen = s.peakRSS, s.peakHeap, s.peakConns
	rep.BudgetPeakInUse = s.peakBudget
	rep.HWM = readStatusKB(srv.PID, "VmHWM")
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", srv.PID)); err != nil {
		rep.ServerExitedDuringLoad = true
	}
	return rep, nil
}

// isBackpressure picks the counters the report shows.
func isBackpressure(series string) bool {
	for _, p := range []string{"spool_memory_budget_waits_total", "spool_memory_budget_wait_seconds_total", "spool_memory_budget_refused_total",
		"spool_publish_rejected_total", "spool_quota_throttled_total", "spool_kafka_errors_total"} {
		if strings.HasPrefix(series, p) {
			return true
		}
	}
	return strings.HasPrefix(series, "spool_api_requests_total") && !strings.Contains(series, `code="ok"`) &&
		!strings.Contains(series, `code="canceled"`)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// errKind names an error for the report: its Spool code, else a short
// description.
func errKind(err error) string {
	var e *client.Error
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

type probeResult struct {
	lat        []time.Duration
	ok, failed int64
	errs       map[string]int64
}

// runProbe publishes one small message and describes the topic every
// period, for d, timing each pair.
func runProbe(ctx context.Context, c *client.Client, every, d time.Duration) probeResult {
	r := probeResult{errs: map[string]int64{}}
	end := time.Now().Add(d)
	t := time.NewTicker(every)
	defer t.Stop()
	msg := client.Message{Value: []byte("probe")}
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return r
		case <-t.C:
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.Publish(pctx, probeTopic, msg)
		if err == nil {
			_, err = c.DescribeTopic(pctx, probeTopic)
		}
		cancel()
		if err != nil {
			r.failed++
			r.errs[errKind(err)]++
			continue
		}
		r.ok++
		r.lat = append(r.lat, time.Since(start))
	}
	return r
}

// apiVersionsRequest is a Kafka ApiVersions v0 request frame.
func apiVersionsRequest(corr int32) []byte {
	clientID := "overload-idle"
	body := []byte{0, 18, 0, 0} // api key 18, version 0
	body = append(body, byte(corr>>24), byte(corr>>16), byte(corr>>8), byte(corr))
	body = append(body, byte(len(clientID)>>8), byte(len(clientID)))
	body = append(body, clientID...)
	n := len(body)
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// sampler samples a server process's RSS and its /metrics.
type sampler struct {
	pid int
	url string
	hc  *http.Client

	mu sync.Mutex
	s  sample
}

type sample struct {
	rss, peakRSS, heap, peakHeap, peakConns int64
	peakBudget                              map[string]float64
}

func (s *sampler) snapshot() sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.s
	out.peakBudget = map[string]float64{}
	for k, v := range s.s.peakBudget {
		out.peakBudget[k] = v
	}
	return out
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		rss := readStatusKB(s.pid, "VmRSS")
		s.mu.Lock()
		s.s.rss = rss
		s.s.peakRSS = max(s.s.peakRSS, rss)
		s.mu.Unlock()
		if i%10 == 0 {
			m := s.scrape(ctx)
			s.mu.Lock()
			if h, ok := m["go_memstats_heap_inuse_bytes"]; ok {
				s.s.heap = int64(h)
				s.s.peakHeap = max(s.s.peakHeap, int64(h))
			}
			var conns float64
			for k, v := range m {
				if strings.HasPrefix(k, "spool_connections{") {
					conns += v
				}
				if strings.HasPrefix(k, "spool_memory_budget_in_use_bytes") {
					if s.s.peakBudget == nil {
						s.s.peakBudget = map[string]float64{}
					}
					s.s.peakBudget[k] = max(s.s.peakBudget[k], v)
				}
			}
			s.s.peakConns = max(s.s.peakConns, int64(conns))
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// scrape reads the server's /metrics into series → value (nil on error).
func (s *sampler) scrape(ctx context.Context) map[string]float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// readStatusKB reads a "Key: N kB" line of /proc/PID/status, in bytes (0
// when it cannot).
func readStatusKB(pid int, key string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

// memCgroup is a cgroup v1 memory cgroup made for one run.
type memCgroup struct{ dir string }

// cgroupV1Memory is where the cgroup v1 memory controller is mounted.
const cgroupV1Memory = "/sys/fs/cgroup/memory"

// CgroupAvailable reports whether a cgroup v1 memory cgroup can be made
// here (the controller is mounted and writable).
func CgroupAvailable() bool {
	dir, err := os.MkdirTemp(cgroupV1Memory, "spool-probe-")
	if err != nil {
		return false
	}
	os.Remove(dir)
	return true
}

// joinMemoryCgroup makes a memory cgroup limited to limit bytes and moves
// pid into it.
func joinMemoryCgroup(pid int, limit int64) (*memCgroup, error) {
	dir := filepath.Join(cgroupV1Memory, fmt.Sprintf("spool-overload-%d", pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	cg := &memCgroup{dir: dir}
	if err := os.WriteFile(filepath.Join(dir, "memory.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
		cg.remove()
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		cg.remove()
		return nil, err
	}
	return cg, nil
}

func (cg *memCgroup) readInt(name string) int64 {
	data, err := os.ReadFile(filepath.Join(cg.dir, name))
	if err != nil {
		return -1
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}

// oom returns memory.oom_control's oom_kill count (kernels that have it)
// and under_oom.
func (cg *memCgroup) oom() (kills int64, under bool) {
	data, err := os.ReadFile(filepath.Join(cg.dir, "memory.oom_control"))
	if err != nil {
		return -1, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "oom_kill":
			kills, _ = strconv.ParseInt(f[1], 10, 64)
		case "under_oom":
			under = f[1] == "1"
		}
	}
	return kills, under
}

// remove deletes the cgroup, moving any process left in it to the root.
func (cg *memCgroup) remove() {
	if data, err := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs")); err == nil {
		for _, p := range strings.Fields(string(data)) {
			os.WriteFile(filepath.Join(cgroupV1Memory, "cgroup.procs"), []byte(p), 0)
		}
	}
	os.Remove(cg.dir)
}

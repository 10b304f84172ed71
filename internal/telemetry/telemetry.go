package telemetry

import (
	"cmp"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/metric"
)

// Telemetry owns a server's metrics registry and the hooks the core
// packages report events through (seglog.Hooks for storage, the Kafka
// front end's and the native API's Hooks). Make one with New before the
// broker opens, hand its hooks to the packages, then Bind the broker.
type Telemetry struct {
	reg *prometheus.Registry

	fsync, write  prometheus.Histogram
	flushBatches  prometheus.Histogram
	flushBytes    prometheus.Counter
	storageErrors *prometheus.CounterVec
	rolls, drops  prometheus.Counter

	kafkaReqVec *prometheus.CounterVec
	kafkaLatVec *prometheus.HistogramVec
	kafka       [maxKafkaKey + 2]atomic.Pointer[kafkaSeries] // by API key, made at first use; the last for unknown keys
	kafkaErrors *prometheus.CounterVec

	apiCalls   *prometheus.CounterVec
	apiLatency *prometheus.HistogramVec
	apiStreams *prometheus.GaugeVec
	apiOK      sync.Map // procedure → *apiSeries (the success path, looked up once)

	conns    *prometheus.GaugeVec
	accepted *prometheus.CounterVec

	quotas  quotaCollector  // the client quotas' throttles (quota.go)
	budgets budgetCollector // the memory budgets (budget.go)

	own []prometheus.Collector // Spool's own collectors (docs/metrics.md lists their series)
	log *slog.Logger           // request logs, at debug level

	mu sync.Mutex
	bc *brokerCollector // nil until Bind
}

// maxKafkaKey bounds the per-key series: keys above it (none exist
// today) share the "unknown" series.
const maxKafkaKey = 127

// latencyBuckets are metric.LatencyBounds in seconds: every latency
// histogram, ours and the broker's, has the same buckets.
var latencyBuckets = func() []float64 {
	out := make([]float64, len(metric.LatencyBounds))
	for i, b := range metric.LatencyBounds {
		out[i] = float64(b) / 1e9
	}
	return out
}()

var sizeBuckets = func() []float64 {
	out := make([]float64, len(metric.SizeBounds))
	for i, b := range metric.SizeBounds {
		out[i] = float64(b)
	}
	return out
}()

// New returns a Telemetry with the Go runtime and process collectors
// registered (process_start_time_seconds tells when counters reset).
// Requests are logged to logger at debug level (nil: not logged).
func New(logger *slog.Logger) *Telemetry {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Telemetry{reg: prometheus.NewRegistry(), log: logger}
	t.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) {
		t.reg.MustRegister(c)
		t.own = append(t.own, c)
	}
	f(&t.quotas)
	f(&t.budgets)

	t.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "spool_storage_fsync_seconds",
		Help: "Time of one fdatasync of a partition log's group commit.", Buckets: latencyBuckets})
	t.write = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "spool_storage_write_seconds",
		Help: "Time of one group commit's write, before its sync.", Buckets: latencyBuckets})
	t.flushBatches = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "spool_storage_group_commit_batches",
		Help: "Record batches written by one group commit.", Buckets: sizeBuckets})
	t.flushBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "spool_storage_written_bytes_total",
		Help: "Bytes written to partition logs by group commits."})
	t.storageErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_storage_errors_total",
		Help: "Failed partition-log writes and syncs (each makes its log refuse writes: see /readyz)."}, []string{"op"})
	t.rolls = prometheus.NewCounter(prometheus.CounterOpts{Name: "spool_storage_segments_rolled_total", Help: "Segments started."})
	t.drops = prometheus.NewCounter(prometheus.CounterOpts{Name: "spool_storage_segments_deleted_total", Help: "Segments deleted by retention or bounds."})
	f(t.fsync)
	f(t.write)
	f(t.flushBatches)
	f(t.flushBytes)
	f(t.storageErrors)
	f(t.rolls)
	f(t.drops)

	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_kafka_requests_total",
		Help: "Kafka requests answered, by API."}, []string{"api"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spool_kafka_request_duration_seconds",
		Help: "Kafka request latency, read to answered (Produce: to durable and written), by API.", Buckets: latencyBuckets}, []string{"api"})
	t.kafkaErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_kafka_errors_total",
		Help: "Error codes in Kafka responses, by API and Kafka error name."}, []string{"api", "code"})
	t.kafkaReqVec, t.kafkaLatVec = reqs, lat
	f(reqs)
	f(lat)
	f(t.kafkaErrors)

	t.apiCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_api_requests_total",
		Help: "Native API calls (streams counted at their end), by procedure and Spool error code (ok on success)."}, []string{"procedure", "code"})
	t.apiLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spool_api_request_duration_seconds",
		Help: "Native API unary call latency, by procedure.", Buckets: latencyBuckets}, []string{"procedure"})
	t.apiStreams = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spool_api_streams",
		Help: "Native API streams open (consume and read sessions, publish streams), by procedure."}, []string{"procedure"})
	f(t.apiCalls)
	f(t.apiLatency)
	f(t.apiStreams)

	t.conns = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spool_connections",
		Help: "Client connections open, by protocol (http: native API and console; kafka)."}, []string{"protocol"})
	t.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spool_connections_accepted_total",
		Help: "Client connections accepted, by protocol."}, []string{"protocol"})
	f(t.conns)
	f(t.accepted)
	return t
}

func kafkaAPIName(k int16) string {
	if k > maxKafkaKey {
		return "unknown"
	}
	if n := kmsg.NameForKey(k); n != "" {
		return n
	}
	return "key_" + strconv.Itoa(int(k))
}

// Handler returns the /metrics handler.
func (t *Telemetry) Handler() http.Handler {
	return promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Bind exports b's state (topics, subscriptions, queue state, counters and
// latencies, recovery) and health; health may be nil.
func (t *Telemetry) Bind(b *broker.Broker, health func() []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bc != nil {
		return
	}
	t.bc = &brokerCollector{b: b, health: health}
	t.reg.MustRegister(t.bc)
}

// Storage hooks (seglog.Hooks): called from each log's writer goroutine.
type storageHooks struct{ t *Telemetry }

// StorageHooks returns the hooks for the partition logs' options.
func (t *Telemetry) StorageHooks() storageHooks { return storageHooks{t} }

func (h storageHooks) OnFlush(bytes, batches int, write, sync time.Duration, err error) {
	t := h.t
	switch {
	case err != nil && sync == 0 && bytes > 0:
		t.storageErrors.WithLabelValues("write").Inc()
		return
	case err != nil:
		t.storageErrors.WithLabelValues("sync").Inc()
		return
	}
	if bytes > 0 {
		t.write.Observe(write.Seconds())
		t.flushBatches.Observe(float64(batches))
		t.flushBytes.Add(float64(bytes))
	}
	if sync > 0 {
		t.fsync.Observe(sync.Seconds())
	}
}

func (h storageHooks) OnRoll(int64)          { h.t.rolls.Inc() }
func (h storageHooks) OnDelete(int64, int64) { h.t.drops.Inc() }

// Kafka hooks.
type kafkaHooks struct{ t *Telemetry }

// KafkaHooks returns the hooks for the Kafka front end's Config.
func (t *Telemetry) KafkaHooks() kafkaHooks { return kafkaHooks{t} }

func kafkaIndex(key int16) int {
	if key < 0 || key > maxKafkaKey {
		return maxKafkaKey + 1
	}
	return int(key)
}

type kafkaSeries struct {
	reqs    prometheus.Counter
	latency prometheus.Observer
}

func (h kafkaHooks) Request(key int16, d time.Duration) {
	i := kafkaIndex(key)
	s := h.t.kafka[i].Load()
	if s == nil {
		name := kafkaAPIName(int16(i))
		s = &kafkaSeries{reqs: h.t.kafkaReqVec.WithLabelValues(name), latency: h.t.kafkaLatVec.WithLabelValues(name)}
		h.t.kafka[i].Store(s) // a racing store holds the same children
	}
	s.reqs.Inc()
	s.latency.Observe(d.Seconds())
	if h.t.log.Enabled(context.Background(), slog.LevelDebug) {
		h.t.log.Debug("kafka request", "api", kafkaAPIName(int16(i)), "took", d)
	}
}

func (h kafkaHooks) ErrorCode(key, code int16) {
	name := "UNKNOWN_SERVER_ERROR"
	if e := kerr.ErrorForCode(code); e != nil {
		if ke, ok := e.(*kerr.Error); ok {
			name = ke.Message
		}
	}
	h.t.kafkaErrors.WithLabelValues(kafkaAPIName(int16(kafkaIndex(key))), name).Inc()
}

func (h kafkaHooks) Conn(delta int) { h.t.conn("kafka", delta) }

func (t *Telemetry) conn(protocol string, delta int) {
	t.conns.WithLabelValues(protocol).Add(float64(delta))
	if delta > 0 {
		t.accepted.WithLabelValues(protocol).Inc()
	}
}

// HTTPConnState is the native API server's http.Server.ConnState.
func (t *Telemetry) HTTPConnState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		t.conn("http", 1)
	case http.StateClosed, http.StateHijacked:
		t.conn("http", -1)
	}
}

// Native API hooks.
type apiHooks struct{ t *Telemetry }

type apiSeries struct {
	ok      prometheus.Counter
	latency prometheus.Observer
	streams prometheus.Gauge
}

// APIHooks returns the hooks for the native API.
func (t *Telemetry) APIHooks() apiHooks { return apiHooks{t} }

func (h apiHooks) series(proc string) *apiSeries {
	if s, ok := h.t.apiOK.Load(proc); ok {
		return s.(*apiSeries)
	}
	s := &apiSeries{ok: h.t.apiCalls.WithLabelValues(proc, "ok"), latency: h.t.apiLatency.WithLabelValues(proc),
		streams: h.t.apiStreams.WithLabelValues(proc)}
	v, _ := h.t.apiOK.LoadOrStore(proc, s)
	return v.(*apiSeries)
}

func (h apiHooks) Call(proc, code string, stream bool, d time.Duration) {
	s := h.series(proc)
	if code == "" {
		s.ok.Inc()
	} else {
		h.t.apiCalls.WithLabelValues(proc, code).Inc()
	}
	if !stream {
		s.latency.Observe(d.Seconds())
	}
	if h.t.log.Enabled(context.Background(), slog.LevelDebug) {
		h.t.log.Debug("api request", "procedure", proc, "code", cmp.Or(code, "ok"), "stream", stream, "took", d)
	}
}

func (h apiHooks) Stream(proc string, delta int) { h.series(proc).streams.Add(float64(delta)) }

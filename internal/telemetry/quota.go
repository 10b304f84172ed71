package telemetry

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolmq/spool/internal/quota"
)

var (
	quotaThrottled = prometheus.NewDesc("spool_quota_throttled_total",
		"Requests over a client quota, by kind (produce, fetch, request): Kafka responses throttled, native calls refused or stream messages paced.", []string{"kind"}, nil)
	quotaSeconds = prometheus.NewDesc("spool_quota_throttle_seconds_total",
		"Throttle time of the requests over a client quota, by kind.", []string{"kind"}, nil)
)

// quotaCollector reads the quota limiter's totals at scrape time (by kind
// only: per-principal series would be unbounded).
type quotaCollector struct{ l atomic.Pointer[quota.Limiter] }

// BindQuotas reports the throttles of l.
func (t *Telemetry) BindQuotas(l *quota.Limiter) { t.quotas.l.Store(l) }

func (c *quotaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- quotaThrottled
	ch <- quotaSeconds
}

func (c *quotaCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.l.Load()
	for _, k := range quota.Kinds() {
		st := l.Stats(k)
		ch <- prometheus.MustNewConstMetric(quotaThrottled, prometheus.CounterValue, float64(st.Throttled), k.String())
		ch <- prometheus.MustNewConstMetric(quotaSeconds, prometheus.CounterValue, st.Time.Seconds(), k.String())
	}
}

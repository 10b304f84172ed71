// Package telemetry turns the broker's state into Prometheus metrics. Core
// packages do not import metrics libraries: this package reads their state
// through the broker's describe calls at scrape time.
package telemetry

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
)

// Handler returns the /metrics handler: broker state (topics, partitions,
// subscriptions, queue state) plus the Go runtime and process collectors.
func Handler(b *broker.Broker) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &brokerCollector{b: b})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var (
	tl  = []string{"topic"}
	tpl = []string{"topic", "partition"}
	sl  = []string{"topic", "subscription", "mode"}
	spl = []string{"topic", "subscription", "partition"}

	topicMessages  = prometheus.NewDesc("spool_topic_messages", "Messages stored in the topic (end minus start offsets).", tl, nil)
	topicBytes     = prometheus.NewDesc("spool_topic_bytes", "Bytes stored in the topic.", tl, nil)
	partitionEnd   = prometheus.NewDesc("spool_partition_end_offset", "Offset the next message of the partition will get.", tpl, nil)
	partitionStart = prometheus.NewDesc("spool_partition_start_offset", "Offset of the oldest retained message of the partition.", tpl, nil)

	subLag         = prometheus.NewDesc("spool_subscription_lag", "Messages not yet consumed (stream: end minus committed; queue: end minus ack floor).", sl, nil)
	subOldest      = prometheus.NewDesc("spool_subscription_oldest_unconsumed_age_seconds", "Age of the oldest unconsumed message, over partitions.", sl, nil)
	subMembers     = prometheus.NewDesc("spool_subscription_members", "Members connected.", sl, nil)
	subDead        = prometheus.NewDesc("spool_subscription_dead_lettered_total", "Messages dead-lettered since the server started.", sl, nil)
	subDropped     = prometheus.NewDesc("spool_subscription_dropped_total", "Expired messages dropped since the server started.", sl, nil)
	qReady         = prometheus.NewDesc("spool_queue_ready", "Queue messages deliverable now.", spl, nil)
	qWaiting       = prometheus.NewDesc("spool_queue_waiting", "Queue messages backing off or delayed, in memory.", spl, nil)
	qBlocked       = prometheus.NewDesc("spool_queue_blocked", "Queue messages waiting behind their key.", spl, nil)
	qInFlight      = prometheus.NewDesc("spool_queue_in_flight", "Queue messages leased to members.", spl, nil)
	qLimited       = prometheus.NewDesc("spool_queue_in_flight_limited", "1 while delivery is held back because max in flight is reached.", spl, nil)
	qParked        = prometheus.NewDesc("spool_queue_parked", "Queue messages parked in the state store until due.", spl, nil)
	qFloor         = prometheus.NewDesc("spool_queue_ack_floor", "Offset below which every queue message is finished or parked.", spl, nil)
	subCommitted   = prometheus.NewDesc("spool_subscription_committed_offset", "Committed offset (stream) or ack floor (queue) of a partition.", spl, nil)
	subPartitionLg = prometheus.NewDesc("spool_subscription_partition_lag", "Messages not yet consumed in a partition.", spl, nil)
)

// brokerCollector reads the broker's state at scrape time.
type brokerCollector struct{ b *broker.Broker }

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{topicMessages, topicBytes, partitionEnd, partitionStart, subLag, subOldest, subMembers,
		subDead, subDropped, qReady, qWaiting, qBlocked, qInFlight, qLimited, qParked, qFloor, subCommitted, subPartitionLg} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, t := range c.b.Topics() {
		info, err := c.b.DescribeTopic(t.Name)
		if err != nil {
			continue
		}
		gauge(topicMessages, float64(info.Messages), t.Name)
		gauge(topicBytes, float64(info.Bytes), t.Name)
		for _, p := range info.Partitions {
			ps := itoa(p.Partition)
			gauge(partitionEnd, float64(p.EndOffset), t.Name, ps)
			gauge(partitionStart, float64(p.StartOffset), t.Name, ps)
		}
		subs, err := c.b.Subscriptions(t.Name)
		if err != nil {
			continue
		}
		for _, s := range subs {
			si, err := c.b.DescribeSubscription(t.Name, s.Name)
			if err != nil {
				continue
			}
			mode := s.Config.Mode.String()
			gauge(subLag, float64(si.Lag), t.Name, s.Name, mode)
			gauge(subMembers, float64(len(si.Group.Members)), t.Name, s.Name, mode)
			var oldest float64
			for _, p := range si.Partitions {
				ps := itoa(p.Partition)
				oldest = max(oldest, p.OldestUnconsumed.Seconds())
				gauge(subCommitted, float64(p.Committed), t.Name, s.Name, ps)
				gauge(subPartitionLg, float64(p.Lag), t.Name, s.Name, ps)
				if q := p.Queue; q != nil {
					gauge(qReady, float64(q.Ready), t.Name, s.Name, ps)
					gauge(qWaiting, float64(q.Waiting), t.Name, s.Name, ps)
					gauge(qBlocked, float64(q.Blocked), t.Name, s.Name, ps)
					gauge(qInFlight, float64(q.Leased), t.Name, s.Name, ps)
					gauge(qLimited, b2f(q.InFlightLimited), t.Name, s.Name, ps)
					gauge(qParked, float64(q.Parked), t.Name, s.Name, ps)
					gauge(qFloor, float64(q.Floor), t.Name, s.Name, ps)
				}
			}
			gauge(subOldest, oldest, t.Name, s.Name, mode)
			if s.Config.Mode == catalog.ModeQueue {
				counter(subDead, float64(si.DeadLettered), t.Name, s.Name, mode)
				counter(subDropped, float64(si.Dropped), t.Name, s.Name, mode)
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }

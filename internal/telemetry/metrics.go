// Package telemetry turns the broker's state and the events its packages
// report into Prometheus metrics. Core packages do not import metrics
// libraries: they keep counters and histograms (internal/metric) beside
// what they count, which this package reads through the broker's describe
// calls at scrape time, and report events through small hook interfaces
// that this package implements (telemetry.go). docs/metrics.md lists every
// series.
package telemetry

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/metric"
)

var (
	tl  = []string{"topic"}
	tpl = []string{"topic", "partition"}
	sl  = []string{"topic", "subscription", "mode"}
	spl = []string{"topic", "subscription", "partition"}
	sdl = []string{"topic", "subscription", "mode", "reason"}
	trl = []string{"topic", "reason"}
	ts  = []string{"topic", "subscription"}

	pubMessages   = prometheus.NewDesc("spool_publish_messages_total", "Messages published and durable.", tl, nil)
	pubBytes      = prometheus.NewDesc("spool_publish_bytes_total", "Bytes published and durable (messages: key, value, headers; batches and Kafka produces: record batch bytes).", tl, nil)
	pubRejected   = prometheus.NewDesc("spool_publish_rejected_total", "Messages refused, by reason (topic_full, message_too_large, schema_invalid, invalid, unavailable, storage, disk_full, other).", trl, nil)
	pubLatency    = prometheus.NewDesc("spool_publish_duration_seconds", "Publish latency, request accepted to durable (per request; per partition for batches and Kafka produces).", tl, nil)
	dedupHits     = prometheus.NewDesc("spool_dedup_hits_total", "Messages answered as duplicates of an id within the de-duplication window.", tl, nil)
	dedupEvicted  = prometheus.NewDesc("spool_dedup_evictions_total", "Ids forgotten before their window ended, because the window holds at most broker.dedup-max-entries ids.", tl, nil)
	schemaInvalid = prometheus.NewDesc("spool_schema_validation_failures_total", "Messages that failed their topic's schema validation (refused or dead-lettered).", tl, nil)
	schemaDead    = prometheus.NewDesc("spool_schema_dead_lettered_total", "Messages that failed schema validation and went to the topic's dead-letter topic.", tl, nil)

	subDelivered    = prometheus.NewDesc("spool_subscription_delivered_total", "Messages delivered (leased, or sent by a stream session), redeliveries included.", sl, nil)
	subRedelivered  = prometheus.NewDesc("spool_subscription_redelivered_total", "Deliveries that were not a message's first.", sl, nil)
	subAcked        = prometheus.NewDesc("spool_subscription_acked_total", "Queue messages acknowledged.", sl, nil)
	subNacked       = prometheus.NewDesc("spool_subscription_nacked_total", "Queue messages given back (nack).", sl, nil)
	subRejected     = prometheus.NewDesc("spool_subscription_rejected_total", "Queue messages rejected by consumers (dead-lettered at once).", sl, nil)
	subLeaseExpired = prometheus.NewDesc("spool_subscription_lease_expired_total", "Queue leases that expired without an ack.", sl, nil)
	subIdemSkips    = prometheus.NewDesc("spool_subscription_idempotent_skips_total", "Queue messages acknowledged by the server because their processed key was in the subscription's ledger.", sl, nil)
	subLedgerPurged = prometheus.NewDesc("spool_subscription_ledger_purged_total", "Expired processed keys deleted from queue subscriptions' ledgers.", sl, nil)
	subExpired      = prometheus.NewDesc("spool_subscription_expired_total", "Queue messages whose TTL passed before they were acknowledged.", sl, nil)
	subCommits      = prometheus.NewDesc("spool_subscription_commits_total", "Offset commits stored (stream mode).", sl, nil)
	e2eFirst        = prometheus.NewDesc("spool_e2e_delivery_seconds", "Publish (or deliver-at) to first delivery.", ts, nil)
	e2eAck          = prometheus.NewDesc("spool_e2e_ack_seconds", "Publish (or deliver-at) to acknowledgement (queue mode).", ts, nil)
	e2eProcess      = prometheus.NewDesc("spool_e2e_processing_seconds", "Delivery to acknowledgement: the consumer's processing time (queue mode).", ts, nil)

	recPartitions = prometheus.NewDesc("spool_recovery_partitions_total", "Partition logs opened and recovered since the process started.", nil, nil)
	recScanned    = prometheus.NewDesc("spool_recovery_scanned_segments_total", "Segments whose batches recovery checked (those after the last clean checkpoint).", nil, nil)
	recTorn       = prometheus.NewDesc("spool_recovery_torn_tails_total", "Torn tails cut off by recovery (a crash during a write).", nil, nil)
	recTornBytes  = prometheus.NewDesc("spool_recovery_torn_bytes_total", "Bytes cut off by recovery.", nil, nil)

	ready   = prometheus.NewDesc("spool_ready", "1 when /readyz answers ready, else 0.", nil, nil)
	unready = prometheus.NewDesc("spool_unready_reasons", "Reasons /readyz fails (1 each): storage, state_store, disk, starting.", []string{"reason"}, nil)

	topicMessages  = prometheus.NewDesc("spool_topic_messages", "Messages stored in the topic (end minus start offsets).", tl, nil)
	topicBytes     = prometheus.NewDesc("spool_topic_bytes", "Bytes stored in the topic.", tl, nil)
	partitionEnd   = prometheus.NewDesc("spool_partition_end_offset", "Offset the next message of the partition will get.", tpl, nil)
	partitionStart = prometheus.NewDesc("spool_partition_start_offset", "Offset of the oldest retained message of the partition.", tpl, nil)

	subLag         = prometheus.NewDesc("spool_subscription_lag", "Messages not yet consumed (stream: end minus committed; queue: end minus ack floor).", sl, nil)
	subOldest      = prometheus.NewDesc("spool_subscription_oldest_unconsumed_age_seconds", "Age of the oldest unconsumed message, over partitions.", sl, nil)
	subMembers     = prometheus.NewDesc("spool_subscription_members", "Members connected.", sl, nil)
	subDead        = prometheus.NewDesc("spool_subscription_dead_lettered_total", "Messages dead-lettered since the server started, by reason (max-deliveries, rejected, expired).", sdl, nil)
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
type brokerCollector struct {
	b      *broker.Broker
	health func() []string // the reasons /readyz fails; nil: not known
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{topicMessages, topicBytes, partitionEnd, partitionStart, subLag, subOldest, subMembers,
		subDead, subDropped, qReady, qWaiting, qBlocked, qInFlight, qLimited, qParked, qFloor, subCommitted, subPartitionLg,
		pubMessages, pubBytes, pubRejected, pubLatency, dedupHits, dedupEvicted, schemaInvalid, schemaDead,
		subDelivered, subRedelivered, subAcked, subNacked, subRejected, subLeaseExpired, subIdemSkips, subLedgerPurged, subExpired, subCommits,
		e2eFirst, e2eAck, e2eProcess, recPartitions, recScanned, recTorn, recTornBytes, ready, unready} {
		ch <- d
	}
}

// histogram exports a broker histogram (nanoseconds) in seconds.
func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, s metric.Snapshot, labels ...string) {
	buckets := make(map[float64]uint64, len(s.Bounds))
	var cum uint64
	for i, b := range s.Bounds {
		cum += s.Counts[i]
		buckets[float64(b)/1e9] = cum
	}
	ch <- prometheus.MustNewConstHistogram(d, s.Count, float64(s.Sum)/1e9, buckets, labels...)
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	c.collectGlobal(ch)
	for _, t := range c.b.Topics() {
		info, err := c.b.DescribeTopic(t.Name)
		if err != nil {
			continue
		}
		gauge(topicMessages, float64(info.Messages), t.Name)
		gauge(topicBytes, float64(info.Bytes), t.Name)
		st := info.Stats
		counter(pubMessages, float64(st.Published), t.Name)
		counter(pubBytes, float64(st.PublishedBytes), t.Name)
		for _, r := range broker.RejectReasons() {
			counter(pubRejected, float64(st.Rejected[r]), t.Name, r.String())
		}
		histogram(ch, pubLatency, st.PublishLatency, t.Name)
		counter(dedupHits, float64(st.DedupHits), t.Name)
		counter(dedupEvicted, float64(st.DedupEvicted), t.Name)
		if t.Config.SchemaSubject != "" {
			counter(schemaInvalid, float64(st.SchemaInvalid), t.Name)
			counter(schemaDead, float64(st.SchemaDeadLettered), t.Name)
		}
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
			ss := si.Stats
			counter(subDelivered, float64(ss.Delivered), t.Name, s.Name, mode)
			counter(subRedelivered, float64(ss.Redelivered), t.Name, s.Name, mode)
			for reason, n := range ss.DeadLettered {
				counter(subDead, float64(n), t.Name, s.Name, mode, reason)
			}
			histogram(ch, e2eFirst, ss.ToFirstDelivery, t.Name, s.Name)
			if s.Config.Mode == catalog.ModeQueue {
				counter(subDropped, float64(si.Dropped), t.Name, s.Name, mode)
				counter(subAcked, float64(ss.Acked), t.Name, s.Name, mode)
				counter(subNacked, float64(ss.Nacked), t.Name, s.Name, mode)
				counter(subRejected, float64(ss.Rejected), t.Name, s.Name, mode)
				counter(subLeaseExpired, float64(ss.LeaseExpired), t.Name, s.Name, mode)
				counter(subIdemSkips, float64(ss.IdempotentSkips), t.Name, s.Name, mode)
				counter(subLedgerPurged, float64(ss.LedgerPurged), t.Name, s.Name, mode)
				counter(subExpired, float64(ss.Expired), t.Name, s.Name, mode)
				histogram(ch, e2eAck, ss.ToAck, t.Name, s.Name)
				histogram(ch, e2eProcess, ss.DeliverToAck, t.Name, s.Name)
			} else {
				counter(subCommits, float64(ss.Commits), t.Name, s.Name, mode)
			}
		}
	}
}

// collectGlobal exports the recovery counters and health.
func (c *brokerCollector) collectGlobal(ch chan<- prometheus.Metric) {
	r := c.b.Recovery()
	for d, v := range map[*prometheus.Desc]int64{recPartitions: r.Partitions, recScanned: r.ScannedSegments, recTorn: r.TornTails, recTornBytes: r.TornBytes} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	if c.health == nil {
		return
	}
	reasons := c.health()
	ch <- prometheus.MustNewConstMetric(ready, prometheus.GaugeValue, b2f(len(reasons) == 0))
	for _, r := range reasons {
		ch <- prometheus.MustNewConstMetric(unready, prometheus.GaugeValue, 1, r)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }

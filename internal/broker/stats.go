package broker

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/metric"
	"github.com/spoolmq/spool/internal/queue"
)

// Counters and latency histograms live beside what they count: a topic's
// in its topic, a subscription's in its subscription. Counting is an
// atomic add on the hot path (no lookup, no lock, no interface call), the
// series go away with the object, so their number is bounded by the
// catalog, and telemetry reads them at scrape time through DescribeTopic
// and DescribeSubscription (TopicInfo.Stats, SubInfo.Stats). They count
// since the process started: a restart resets them (Prometheus's rate()
// handles the reset; process_start_time_seconds tells when).

// RejectReason is why a publish was refused, a bounded set for metrics.
type RejectReason int

const (
	RejectTopicFull RejectReason = iota
	RejectTooLarge
	RejectSchema
	RejectInvalid
	RejectUnavailable // not the leader, not ready, shutting down: retriable elsewhere or later
	RejectStorage     // the log failed the write
	RejectDiskFull    // the free-space gate: the data directory's file system is below its watermark
	RejectOther
	numRejectReasons
)

var rejectNames = [numRejectReasons]string{"topic_full", "message_too_large", "schema_invalid", "invalid", "unavailable", "storage", "disk_full", "other"}

func (r RejectReason) String() string { return rejectNames[r] }

// RejectReasons lists every reason, in order.
func RejectReasons() []RejectReason {
	out := make([]RejectReason, numRejectReasons)
	for i := range out {
		out[i] = RejectReason(i)
	}
	return out
}

// rejectReasonOf classifies a publish error.
func rejectReasonOf(err error) RejectReason {
	switch errs.CodeOf(err) {
	case errs.TopicFull:
		return RejectTopicFull
	case errs.MessageTooLarge:
		return RejectTooLarge
	case errs.SchemaInvalid:
		return RejectSchema
	case errs.InvalidArgument:
		return RejectInvalid
	case errs.Unavailable:
		return RejectUnavailable
	case errs.StorageFailed:
		return RejectStorage
	case errs.DiskFull:
		return RejectDiskFull
	}
	return RejectOther
}

// topicStats are a topic's counters.
type topicStats struct {
	published      atomic.Uint64 // messages stored
	publishedBytes atomic.Uint64
	rejected       [numRejectReasons]atomic.Uint64 // messages refused
	schemaInvalid  atomic.Uint64                   // messages that failed validation (refused or dead-lettered)
	schemaDead     atomic.Uint64                   // of those, dead-lettered
	latency        *metric.Histogram               // request → durable: per publish request, per partition append of a batch or Kafka produce
}

func newTopicStats() *topicStats { return &topicStats{latency: metric.New(metric.LatencyBounds)} }

// stored counts messages made durable (the latency is observed once per
// request by the caller).
func (s *topicStats) stored(msgs, bytes int) {
	s.published.Add(uint64(msgs))
	s.publishedBytes.Add(uint64(bytes))
}

// refused counts a refused request's messages (a schema binding's
// dead-letter hand-off is not a refusal).
func (s *topicStats) refused(err error, msgs int) {
	var dl *deadLetterFirst
	if err == nil || errors.As(err, &dl) {
		return
	}
	s.rejected[rejectReasonOf(err)].Add(uint64(max(msgs, 1)))
}

// TopicStats are a topic's counters since the process started.
type TopicStats struct {
	Published, PublishedBytes uint64
	Rejected                  [numRejectReasons]uint64 // by RejectReason
	SchemaInvalid             uint64                   // failed validation: refused or dead-lettered
	SchemaDeadLettered        uint64
	DedupHits                 uint64 // messages answered as duplicates of an id in the window
	DedupEvicted              uint64 // ids forgotten before their window ended (the window's entry bound)
	PublishLatency            metric.Snapshot
}

func (t *topic) statsSnapshot() TopicStats {
	s := t.stats
	out := TopicStats{
		Published: s.published.Load(), PublishedBytes: s.publishedBytes.Load(),
		SchemaInvalid: s.schemaInvalid.Load(), SchemaDeadLettered: s.schemaDead.Load(),
		PublishLatency: s.latency.Snapshot(),
	}
	for i := range s.rejected {
		out.Rejected[i] = s.rejected[i].Load()
	}
	t.dedup.mu.Lock()
	out.DedupHits, out.DedupEvicted = uint64(t.dedup.hits), uint64(t.dedup.evicted)
	t.dedup.mu.Unlock()
	return out
}

type recoveryCounters struct {
	partitions, scanned, scannedBytes, torn, tornBytes atomic.Int64
}

// RecoveryStats count what opening partition logs found since the
// process started: logs recovered, segments scanned (those after the
// last clean checkpoint), and torn tails cut off.
type RecoveryStats struct {
	Partitions, ScannedSegments, ScannedBytes, TornTails, TornBytes int64
}

// Recovery returns the recovery counters.
func (b *Broker) Recovery() RecoveryStats {
	r := &b.recovered
	return RecoveryStats{Partitions: r.partitions.Load(), ScannedSegments: r.scanned.Load(), ScannedBytes: r.scannedBytes.Load(),
		TornTails: r.torn.Load(), TornBytes: r.tornBytes.Load()}
}

// Dead-letter reasons a subscription counts (queue.Reason's values).
var deadLetterReasons = [...]queue.Reason{queue.ReasonMaxDeliveries, queue.ReasonRejected, queue.ReasonExpired}

func deadLetterIndex(r queue.Reason) int {
	for i, x := range deadLetterReasons {
		if x == r {
			return i
		}
	}
	return 0
}

// subStats are a subscription's counters and end-to-end latencies. It is
// the queue cores' observer (queue.Observer); stream deliveries are
// counted by the session that sends them.
type subStats struct {
	delivered, redelivered           atomic.Uint64
	acked, nacked, rejected, expired atomic.Uint64
	leaseExpired, commits            atomic.Uint64
	idempotentSkips, ledgerPurged    atomic.Uint64 // processed-key ledger: deliveries skipped, expired keys purged
	ledgerReads                      atomic.Uint64 // processed-key ledger: lookups the filter could not answer
	deadLettered                     [len(deadLetterReasons)]atomic.Uint64
	// publish (or deliver-at) → first delivery; → ack; delivery → ack.
	toFirst, toAck, deliverToAck *metric.Histogram
}

func newSubStats() *subStats {
	return &subStats{
		toFirst:      metric.New(metric.LatencyBounds),
		toAck:        metric.New(metric.LatencyBounds),
		deliverToAck: metric.New(metric.LatencyBounds),
	}
}

func (s *subStats) Leased(availMs int64, delivery int, nowNs int64) {
	s.delivered.Add(1)
	if delivery > 1 {
		s.redelivered.Add(1)
		return
	}
	s.toFirst.Observe(nowNs - availMs*1e6)
}

func (s *subStats) Acked(availMs, leasedNs, nowNs int64) {
	s.acked.Add(1)
	s.toAck.Observe(nowNs - availMs*1e6)
	s.deliverToAck.Observe(nowNs - leasedNs)
}

// countStreamLocked counts a stream session's deliveries. Called with
// s.mu held.
func (s *subscription) countStreamLocked(out []Delivered) {
	if len(out) == 0 {
		return
	}
	if s.sentTo == nil {
		s.sentTo = map[int32]int64{}
	}
	now := s.t.b.clock.Now()
	st := s.stats
	// Deliveries come in runs of one partition: its entry is looked up
	// and stored once per run.
	cur, to := int32(-1), int64(0)
	var firsts, again uint64
	for i := range out {
		d := &out[i]
		if d.Partition != cur {
			if cur >= 0 {
				s.sentTo[cur] = to
			}
			cur, to = d.Partition, s.sentTo[d.Partition]
		}
		if d.Offset < to {
			again++
			continue
		}
		to = d.Offset + 1
		firsts++
		st.toFirst.ObserveDuration(now.Sub(d.Timestamp))
	}
	s.sentTo[cur] = to
	st.delivered.Add(firsts + again)
	st.redelivered.Add(again)
}

// SubStats are a subscription's counters since the process started.
// Acked, Nacked, Rejected, LeaseExpired and the ack latencies are queue
// mode's; Commits stream mode's (a queue's acks are its commits).
type SubStats struct {
	Delivered, Redelivered                uint64
	Acked, Nacked, Rejected, LeaseExpired uint64
	Expired                               uint64 // TTL passed before delivery ended: dropped or dead-lettered
	Commits                               uint64
	// IdempotentSkips: messages the broker acknowledged itself because
	// their processed key was in the ledger (also counted in Delivered and
	// Acked); LedgerPurged: expired processed keys deleted; LedgerReads:
	// lookups of the state store (the ledger's filter said maybe).
	IdempotentSkips, LedgerPurged, LedgerReads uint64
	DeadLettered                               map[string]uint64 // by reason
	ToFirstDelivery, ToAck, DeliverToAck       metric.Snapshot
}

func (s *subStats) snapshot() SubStats {
	out := SubStats{
		Delivered: s.delivered.Load(), Redelivered: s.redelivered.Load(),
		Acked: s.acked.Load(), Nacked: s.nacked.Load(), Rejected: s.rejected.Load(), LeaseExpired: s.leaseExpired.Load(),
		Expired: s.expired.Load(), Commits: s.commits.Load(),
		IdempotentSkips: s.idempotentSkips.Load(), LedgerPurged: s.ledgerPurged.Load(), LedgerReads: s.ledgerReads.Load(),
		DeadLettered:    make(map[string]uint64, len(deadLetterReasons)),
		ToFirstDelivery: s.toFirst.Snapshot(), ToAck: s.toAck.Snapshot(), DeliverToAck: s.deliverToAck.Snapshot(),
	}
	for i, r := range deadLetterReasons {
		out.DeadLettered[string(r)] = s.deadLettered[i].Load()
	}
	return out
}

// FailedLogs names the partitions whose log holds a sticky storage error
// (it refuses writes until the server restarts on a healthy disk), with
// the first error, at most max of them.
func (b *Broker) FailedLogs(max int) (names []string, first error) {
	b.eachFailedLog(func(t *topic, p int, err error) {
		if first == nil {
			first = err
		}
		if len(names) < max {
			names = append(names, fmt.Sprintf("%s/%d", t.meta.Name, p))
		}
	})
	return names, first
}

// eachFailedLog calls fn for every partition whose log holds a sticky
// storage error, in topic order.
func (b *Broker) eachFailedLog(fn func(t *topic, p int, err error)) {
	for _, t := range b.topicList() {
		for p, l := range t.logs() {
			if err := l.Err(); err != nil {
				fn(t, p, err)
			}
		}
	}
}

package broker

import (
	"slices"
	"sync"

	"golang.org/x/time/rate"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/subject"
)

// Changing a subscription while it runs (AlterSubscription). The new
// settings are stored in the catalog, then applied to the live
// subscription under its mutex; members keep their sessions and leases.
//
//   - filter: swapped atomically. Reads in progress finish under the old
//     filter, and messages already read keep their fate: a queue
//     subscription delivers what it already took in, and messages the old
//     filter skipped stay skipped; everything read afterwards is matched
//     against the new one.
//   - queue settings (ack timeout, max deliveries, backoff, on-expired):
//     every partition's core takes them for later decisions
//     (queue.Partition.SetConfig): leases keep their deadlines, messages
//     waiting keep their due times.
//   - max in flight and the rate limit: the next delivery decision. Leases
//     beyond a lowered limit stay until they end; the rate limiter keeps the
//     tokens it has (up to the new burst).
//   - stream failure settings (max deliveries = handler attempts, backoff,
//     on-failure): the server applies the failure action when a member
//     reports a failed message; members learn the attempts and backoff
//     from their assignment, which is sent to them again.
//
// The changeable settings of subscription.meta are written field by field
// under subscription.mu, so that code reading only its fixed fields (name,
// topic, mode, creation time) needs no lock.

// subAdminMu serializes subscription changes, so that two of them never
// race on the catalog record. It is taken before any other lock.
var subAdminMu sync.Mutex

// config returns the subscription's definition.
func (s *subscription) config() catalog.Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meta
}

// AlterSubscription changes a subscription's settings: update is called
// with a copy of the current config and edits it. The result is validated
// (mode, start, ordering and dead-letter topic cannot change:
// InvalidArgument naming the setting), stored in the catalog (synced) and
// applied to the running subscription; on any error nothing changes. It
// returns the subscription as stored.
func (b *Broker) AlterSubscription(topicName, name string, update func(*catalog.SubConfig) error) (catalog.Subscription, error) {
	subAdminMu.Lock()
	defer subAdminMu.Unlock()
	_, s, err := b.sub(topicName, name)
	if err != nil {
		return catalog.Subscription{}, err
	}
	old := s.config()
	cfg := old.Config
	cfg.Queue.Backoff.Delays = slices.Clone(cfg.Queue.Backoff.Delays) // update must not write through to old
	if err := update(&cfg); err != nil {
		return catalog.Subscription{}, err
	}
	if err := catalog.CheckSubChange(old.Config, cfg); err != nil {
		return catalog.Subscription{}, err
	}
	if err := cfg.Validate(); err != nil {
		return catalog.Subscription{}, err
	}
	if _, err := subject.Compile(cfg.Filter); err != nil {
		return catalog.Subscription{}, errs.Wrap(errs.InvalidArgument, err, "filter %q", cfg.Filter)
	}
	if cfg.Mode == catalog.ModeQueue {
		if _, err := cfg.Queue.CoreConfig(); err != nil {
			return catalog.Subscription{}, errs.Wrap(errs.InvalidArgument, err, "queue config")
		}
	}
	if sameSubConfig(old.Config, cfg) {
		return old, nil
	}
	next := old
	next.Config = cfg
	if err := b.decide(change{kind: changeAlterSub, sub: next}); err != nil {
		return catalog.Subscription{}, err
	}
	return next, nil
}

// applyAlterSub gives subscription next (the one created at next.Created)
// next's config; its mode, start, ordering and dead-letter topic are its
// own.
func (b *Broker) applyAlterSub(next catalog.Subscription, stamps []catalog.Stamp) error {
	topicName, name := next.Topic, next.Name
	_, s, err := b.sub(topicName, name)
	if err != nil {
		return err
	}
	old := s.config()
	if !old.Created.Equal(next.Created) {
		return errs.New(errs.SubNotFound, "subscription %q on topic %q not found", name, topicName)
	}
	cfg := next.Config
	if err := catalog.CheckSubChange(old.Config, cfg); err != nil {
		return err
	}
	filter, err := subject.Compile(cfg.Filter)
	if err != nil {
		return errs.Wrap(errs.InvalidArgument, err, "filter %q", cfg.Filter)
	}
	var core queue.Config
	if cfg.Mode == catalog.ModeQueue {
		if core, err = cfg.Queue.CoreConfig(); err != nil {
			return errs.Wrap(errs.InvalidArgument, err, "queue config")
		}
	}
	if err := b.catalog.UpdateSub(next, stamps...); err != nil {
		return err
	}

	s.mu.Lock()
	m := &s.meta.Config
	failureChanged := m.OnFailure != cfg.OnFailure || m.Queue.MaxDeliveries != cfg.Queue.MaxDeliveries ||
		!sameBackoff(m.Queue.Backoff, cfg.Queue.Backoff)
	m.Filter, m.OnFailure = cfg.Filter, cfg.OnFailure
	m.Queue.AckTimeout, m.Queue.MaxDeliveries, m.Queue.Backoff = cfg.Queue.AckTimeout, cfg.Queue.MaxDeliveries, cfg.Queue.Backoff
	m.Queue.OnExpired, m.Queue.MaxInFlight = cfg.Queue.OnExpired, cfg.Queue.MaxInFlight
	m.Queue.RateLimit, m.Queue.RateBurst = cfg.Queue.RateLimit, cfg.Queue.RateBurst
	m.Queue.ProcessedKey, m.Queue.ProcessedTTL = cfg.Queue.ProcessedKey, cfg.Queue.ProcessedTTL
	s.filter.Store(filter)
	if s.q != nil {
		s.applyQueueConfigLocked(core, cfg.Queue)
	} else if failureChanged {
		// Members learn the failure policy from their assignment: send it
		// again (same generation and partitions). A member in the middle of
		// a revocation gets a new assignment when it completes.
		for _, sess := range s.sessions {
			if len(sess.revoking) == 0 {
				sess.assignPending = true
				sess.signal()
			}
		}
	}
	s.mu.Unlock()
	if s.q != nil {
		s.wakeSessions() // a higher limit may let messages go now
	}
	b.logger.Info("subscription config changed", "topic", topicName, "subscription", name, "filter", cfg.Filter,
		"ack_timeout", cfg.Queue.AckTimeout, "max_deliveries", cfg.Queue.MaxDeliveries, "on_expired", cfg.Queue.OnExpired,
		"max_in_flight", cfg.Queue.MaxInFlight, "rate_limit", cfg.Queue.RateLimit, "rate_burst", cfg.Queue.RateBurst,
		"processed_key", cfg.Queue.ProcessedKey, "processed_ttl", cfg.Queue.ProcessedTTL, "on_failure", cfg.OnFailure)
	return nil
}

// applyQueueConfigLocked hands new queue settings to every partition's core
// and updates the subscription-wide limits. core is qc's validated core
// config; its ordering and park horizon are the subscription's (they never
// change). Only the changeable fields of q.cfg are written: the queue loop
// reads its park horizon without mu. Called with s.mu held.
func (s *subscription) applyQueueConfigLocked(core queue.Config, qc catalog.QueueConfig) {
	q := s.q
	q.cfg.AckTimeout, q.cfg.MaxDeliveries, q.cfg.Backoff = core.AckTimeout, core.MaxDeliveries, core.Backoff
	q.cfg.OnExpired, q.cfg.MaxInFlight = core.OnExpired, core.MaxInFlight
	for _, qp := range q.parts {
		if err := qp.core.SetConfig(q.cfg); err != nil {
			// Validated above, with the same ordering and park horizon:
			// cannot happen. The partition keeps its settings.
			s.t.b.logger.Error("queue partition refused new settings", "topic", s.meta.Topic,
				"subscription", s.meta.Name, "partition", qp.id, "err", err)
		}
	}
	q.ledger.configure(qc)
	q.maxInFlight = qc.MaxInFlight
	if q.maxInFlight == 0 {
		q.maxInFlight = q.cfg.MaxInFlight * len(q.parts)
	}
	switch {
	case qc.RateLimit == 0:
		q.limiter = nil
	case q.limiter == nil:
		q.limiter = rate.NewLimiter(rate.Limit(qc.RateLimit), rateBurst(qc))
	default:
		now := s.t.b.clock.Now()
		q.limiter.SetLimitAt(now, rate.Limit(qc.RateLimit))
		q.limiter.SetBurstAt(now, rateBurst(qc))
	}
}

// rateBurst is the burst of a queue subscription's rate limit: as set, or
// max(1, rate).
func rateBurst(qc catalog.QueueConfig) int {
	if qc.RateBurst > 0 {
		return qc.RateBurst
	}
	return max(1, int(qc.RateLimit))
}

// sameSubConfig reports whether two subscription configs are equal.
func sameSubConfig(a, b catalog.SubConfig) bool {
	qa, qb := a.Queue, b.Queue
	return a.Mode == b.Mode && a.Filter == b.Filter && a.OnFailure == b.OnFailure &&
		a.Start.Kind == b.Start.Kind && a.Start.Offset == b.Start.Offset && a.Start.Time.Equal(b.Start.Time) &&
		qa.AckTimeout == qb.AckTimeout && qa.MaxDeliveries == qb.MaxDeliveries && sameBackoff(qa.Backoff, qb.Backoff) &&
		qa.Ordering == qb.Ordering && qa.DeadLetterTopic == qb.DeadLetterTopic && qa.OnExpired == qb.OnExpired &&
		qa.MaxInFlight == qb.MaxInFlight && qa.RateLimit == qb.RateLimit && qa.RateBurst == qb.RateBurst &&
		qa.ProcessedKey == qb.ProcessedKey && qa.ProcessedTTL == qb.ProcessedTTL
}

func sameBackoff(a, b queue.Backoff) bool {
	return a.Initial == b.Initial && a.Max == b.Max && a.Multiplier == b.Multiplier && a.Jitter == b.Jitter &&
		slices.Equal(a.Delays, b.Delays)
}

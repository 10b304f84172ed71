package server

import (
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/console"
	"github.com/spoolmq/spool/internal/metric"
)

// consoleStats gives the console the broker's counters, and latency
// quantiles over the last half minute or so: each subscription's
// histogram is compared with a snapshot taken 10 to 40 seconds earlier.
type consoleStats struct {
	b *broker.Broker

	mu   sync.Mutex
	base map[[2]string]windowBase // by topic and subscription; dropped when unused for a while
}

type windowBase struct {
	at   time.Time
	snap metric.Snapshot
	used time.Time
}

const (
	latencyWindowMin = 10 * time.Second
	latencyWindowMax = 40 * time.Second
)

func (c *consoleStats) TopicPublished(topic string) (uint64, uint64) {
	info, err := c.b.DescribeTopic(topic)
	if err != nil {
		return 0, 0
	}
	return info.Stats.Published, info.Stats.PublishedBytes
}

func (c *consoleStats) Subscription(topic, sub string) (console.SubCounters, float64, float64, bool) {
	info, err := c.b.DescribeSubscription(topic, sub)
	if err != nil {
		return console.SubCounters{}, 0, 0, false
	}
	st := info.Stats
	var dead uint64
	for _, n := range st.DeadLettered {
		dead += n
	}
	counters := console.SubCounters{Delivered: st.Delivered, Acked: st.Acked, Redelivered: st.Redelivered, DeadLettered: dead}
	hist := st.ToAck
	if st.ToAck.Count == 0 {
		hist = st.ToFirstDelivery // stream subscriptions: publish → delivery
	}
	window := c.window([2]string{topic, sub}, hist)
	p50, ok := window.Quantile(0.5)
	p99, _ := window.Quantile(0.99)
	return counters, p50 / 1e9, p99 / 1e9, ok
}

// window returns what h gained since its base snapshot, moving the base
// forward once it is older than latencyWindowMax.
func (c *consoleStats) window(key [2]string, h metric.Snapshot) metric.Snapshot {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base == nil {
		c.base = map[[2]string]windowBase{}
	}
	for k, b := range c.base {
		if now.Sub(b.used) > 10*time.Minute {
			delete(c.base, k)
		}
	}
	b, ok := c.base[key]
	switch {
	case !ok:
		c.base[key] = windowBase{at: now, snap: h, used: now}
		return metric.Snapshot{}
	case now.Sub(b.at) > latencyWindowMax:
		// Start a new base; the current window still reports until then.
		c.base[key] = windowBase{at: now.Add(-latencyWindowMin), snap: h, used: now}
	default:
		b.used = now
		c.base[key] = b
	}
	return h.Sub(b.snap)
}

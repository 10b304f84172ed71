package console

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/broker"
)

// Live rates. Without Stats, a topic's publish rate is the change of its
// total end offset (the sum over its partitions: it only grows, whatever
// retention deletes) between two samples, and a subscription's consume
// rate the change of its committed offsets (queue mode: the ack floors).
// With Stats, the counters telemetry keeps are sampled instead, and the
// latency quantiles with them. Samples are taken when a page or the stats
// endpoint asks, at most one per minSampleGap per series, and kept in a
// ring of maxSamples per topic or subscription; a series whose topic is
// gone (or was re-created: another id) is dropped at the next prune.

const (
	maxSamples   = 90              // three minutes at the charts' 2 s
	minSampleGap = 1 * time.Second // closer requests reuse the last sample
	// rateWindow is how far back the overview's rate looks.
	rateWindow = time.Minute
)

type sample struct {
	at time.Time
	// a: published (topic) or consumed (subscription: acked, or the
	// committed offsets' sum); b: delivered (subscription, with Stats).
	a, b     float64
	p50, p99 float64
	lat      bool // p50, p99 are known
}

type series struct {
	topicID string
	ring    []sample // oldest first, at most maxSamples
}

type seriesKey struct{ topic, sub string } // sub "": the topic's

type sampler struct {
	now    func() time.Time
	mu     sync.Mutex
	series map[seriesKey]*series
}

func newSampler(now func() time.Time) *sampler {
	return &sampler{now: now, series: map[seriesKey]*series{}}
}

// add records s in the series of k (of topic id) unless its last sample is
// more recent than minSampleGap, and returns a copy of the ring.
func (sp *sampler) add(k seriesKey, id string, s sample) []sample {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	se := sp.series[k]
	if se == nil || se.topicID != id {
		se = &series{topicID: id}
		sp.series[k] = se
	}
	if n := len(se.ring); n == 0 || s.at.Sub(se.ring[n-1].at) >= minSampleGap {
		if n == maxSamples {
			copy(se.ring, se.ring[1:])
			se.ring = se.ring[:n-1]
		}
		se.ring = append(se.ring, s)
	}
	return append([]sample(nil), se.ring...)
}

// prune drops the series of topics and subscriptions that no longer exist.
func (sp *sampler) prune(b *broker.Broker) {
	sp.mu.Lock()
	keys := make(map[seriesKey]string, len(sp.series))
	for k, se := range sp.series {
		keys[k] = se.topicID
	}
	sp.mu.Unlock()
	var gone []seriesKey
	for k, id := range keys {
		t, ok := b.Topic(k.topic)
		if !ok || t.ID != id {
			gone = append(gone, k)
			continue
		}
		if k.sub != "" {
			if _, err := b.DescribeSubscription(k.topic, k.sub); err != nil {
				gone = append(gone, k)
			}
		}
	}
	sp.mu.Lock()
	for _, k := range gone {
		delete(sp.series, k)
	}
	sp.mu.Unlock()
}

// sampleTopic samples a topic's published total.
func (c *Console) sampleTopic(info broker.TopicInfo) []sample {
	s := sample{at: c.rates.now()}
	if st := c.cfg.Stats; st != nil {
		m, _ := st.TopicPublished(info.Topic.Name)
		s.a = float64(m)
	} else {
		for _, p := range info.Partitions {
			s.a += float64(p.EndOffset)
		}
	}
	return c.rates.add(seriesKey{topic: info.Topic.Name}, info.Topic.ID, s)
}

// topicRate samples a topic and returns its publish rate over the last
// rateWindow of samples; ok is false with fewer than two samples.
func (sp *sampler) topicRate(c *Console, info broker.TopicInfo) (float64, bool) {
	ring := c.sampleTopic(info)
	last := ring[len(ring)-1]
	for _, s := range ring[:len(ring)-1] {
		if dt := last.at.Sub(s.at); dt <= rateWindow && dt > 0 {
			return max(0, (last.a-s.a)/dt.Seconds()), true
		}
	}
	return 0, false
}

// sampleSub samples a subscription's consumed (and delivered) totals and
// latencies.
func (c *Console) sampleSub(topicID string, info broker.SubInfo) []sample {
	s := sample{at: c.rates.now()}
	if st := c.cfg.Stats; st != nil {
		if sc, p50, p99, ok := st.Subscription(info.Sub.Topic, info.Sub.Name); ok {
			s.a, s.b = float64(sc.Acked), float64(sc.Delivered)
			s.p50, s.p99, s.lat = p50, p99, true
		}
	} else {
		for _, p := range info.Partitions {
			s.a += float64(p.Committed)
		}
	}
	return c.rates.add(seriesKey{topic: info.Sub.Topic, sub: info.Sub.Name}, topicID, s)
}

// chartSeries is one line of a chart: points [Unix ms, value or null].
type chartSeries struct {
	Key    string        `json:"key"`
	Label  string        `json:"label"`
	Points [][2]*float64 `json:"points"`
}

// chart is one chart's data.
type chart struct {
	Unit      string        `json:"unit"`
	Available bool          `json:"available"`
	Note      string        `json:"note,omitempty"`
	Series    []chartSeries `json:"series"`
}

type statsReply struct {
	Topic    string `json:"topic"`
	Sub      string `json:"subscription,omitempty"`
	Source   string `json:"source"` // "offsets" or "telemetry"
	Interval int    `json:"poll_ms"`
	Rates    chart  `json:"rates"`
	Latency  chart  `json:"latency"`
}

func f64(v float64) *float64 { return &v }

// rateSeries turns a ring into the rates between consecutive samples of
// the value get returns.
func rateSeries(key, label string, ring []sample, get func(sample) float64) chartSeries {
	cs := chartSeries{Key: key, Label: label, Points: [][2]*float64{}}
	for i := 1; i < len(ring); i++ {
		dt := ring[i].at.Sub(ring[i-1].at).Seconds()
		if dt <= 0 {
			continue
		}
		v := max(0, (get(ring[i])-get(ring[i-1]))/dt) // a reset can move offsets back
		cs.Points = append(cs.Points, [2]*float64{f64(float64(ring[i].at.UnixMilli())), f64(v)})
	}
	return cs
}

func latencySeries(key, label string, ring []sample, get func(sample) float64) chartSeries {
	cs := chartSeries{Key: key, Label: label, Points: [][2]*float64{}}
	for _, s := range ring {
		var v *float64
		if s.lat && !math.IsNaN(get(s)) {
			v = f64(get(s))
		}
		cs.Points = append(cs.Points, [2]*float64{f64(float64(s.at.UnixMilli())), v})
	}
	return cs
}

// stats serves the charts' data: GET /console/api/stats?topic=T[&sub=S].
func (c *Console) stats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tn, sn := q.Get("topic"), q.Get("sub")
	b := c.cfg.Broker
	jsonErr := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	if tn == "" {
		jsonErr(http.StatusBadRequest, "topic is required")
		return
	}
	info, err := b.DescribeTopic(tn)
	if err != nil {
		jsonErr(statusOf(err), err.Error())
		return
	}
	rep := statsReply{Topic: tn, Sub: sn, Source: "offsets", Interval: 2000,
		Rates: chart{Unit: "msg/s", Available: true}, Latency: chart{Unit: "s", Series: []chartSeries{}}}
	if c.cfg.Stats != nil {
		rep.Source = "telemetry"
	}
	ring := c.sampleTopic(info)
	rep.Rates.Series = append(rep.Rates.Series, rateSeries("publish", "Published", ring, func(s sample) float64 { return s.a }))
	if sn != "" {
		si, err := b.DescribeSubscription(tn, sn)
		if err != nil {
			jsonErr(statusOf(err), err.Error())
			return
		}
		sring := c.sampleSub(info.Topic.ID, si)
		if c.cfg.Stats != nil {
			rep.Rates.Series = append(rep.Rates.Series,
				rateSeries("deliver", "Delivered", sring, func(s sample) float64 { return s.b }),
				rateSeries("ack", "Acknowledged", sring, func(s sample) float64 { return s.a }))
			rep.Latency.Available = true
			rep.Latency.Series = append(rep.Latency.Series,
				latencySeries("p50", "p50", sring, func(s sample) float64 { return s.p50 }),
				latencySeries("p99", "p99", sring, func(s sample) float64 { return s.p99 }))
		} else {
			rep.Rates.Series = append(rep.Rates.Series, rateSeries("consume", "Consumed (committed offsets)", sring, func(s sample) float64 { return s.a }))
		}
	} else if c.cfg.Stats != nil {
		// A topic's latency: the slowest of its subscriptions.
		var rings [][]sample
		for _, name := range info.Subscriptions {
			if si, err := b.DescribeSubscription(tn, name); err == nil {
				rings = append(rings, c.sampleSub(info.Topic.ID, si))
			}
		}
		if len(rings) > 0 {
			rep.Latency.Available = true
			rep.Latency.Series = append(rep.Latency.Series, slowest("p50", "p50 (slowest subscription)", rings, func(s sample) float64 { return s.p50 }),
				slowest("p99", "p99 (slowest subscription)", rings, func(s sample) float64 { return s.p99 }))
		}
	}
	if !rep.Latency.Available {
		rep.Latency.Note = "no data: latency needs telemetry"
		if c.cfg.Stats != nil {
			rep.Latency.Note = "no data"
		}
	}
	c.rates.prune(b)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(rep)
}

// slowest is, at the times of the longest ring, the highest quantile of
// every ring's latest sample at or before it.
func slowest(key, label string, rings [][]sample, get func(sample) float64) chartSeries {
	longest := rings[0]
	for _, r := range rings {
		if len(r) > len(longest) {
			longest = r
		}
	}
	cs := chartSeries{Key: key, Label: label, Points: [][2]*float64{}}
	for _, at := range longest {
		var v *float64
		for _, r := range rings {
			for i := len(r) - 1; i >= 0; i-- {
				if !r[i].at.After(at.at) {
					if r[i].lat && (v == nil || get(r[i]) > *v) {
						v = f64(get(r[i]))
					}
					break
				}
			}
		}
		cs.Points = append(cs.Points, [2]*float64{f64(float64(at.at.UnixMilli())), v})
	}
	return cs
}

func urlSeg(s string) string   { return url.PathEscape(s) }
func urlQuery(s string) string { return url.QueryEscape(s) }

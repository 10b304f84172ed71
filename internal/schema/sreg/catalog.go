package sreg

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/schema"
)

// The event catalog: every topic (event type) with its owner,
// description and labels, the subject it is bound to and that subject's
// versions, how fast it is produced to, and the subscriptions reading it
// with their declared reader schemas (docs/catalog.md).

// CatalogSource is what the catalog reads from the broker
// (*broker.Broker).
type CatalogSource interface {
	Topics() []catalog.Topic
	Subscriptions(topic string) ([]catalog.Subscription, error)
	Offsets(topic string, p int32) (start, end int64, err error)
}

// EventType is one topic of the event catalog.
type EventType struct {
	Topic       string            `json:"topic"`
	Partitions  int32             `json:"partitions"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Description string            `json:"description"`
	Labels      map[string]string `json:"labels"` // {} when none
	// DeadLetter marks a dead-letter topic: named dlq.…, or the dead-
	// letter topic a subscription names. DeadLetterOf is its origin when
	// it is known.
	DeadLetter   bool              `json:"dead_letter"`
	DeadLetterOf *DeadLetterOrigin `json:"dead_letter_of,omitempty"`
	// Schema is the topic's binding to a subject; nil when unbound.
	Schema *EventSchema `json:"schema"`
	// Messages is the messages stored (end - start over the partitions).
	Messages int64 `json:"messages"`
	// RatePerSecond is the messages produced per second over
	// RateWindowSeconds (at most a minute, see RateWindow); a window of 0
	// means not measured yet.
	RatePerSecond     float64             `json:"rate_per_second"`
	RateWindowSeconds float64             `json:"rate_window_seconds"`
	Subscriptions     []EventSubscription `json:"subscriptions"`
}

// DeadLetterOrigin is where a dead-letter topic's messages come from: a
// subscription's failed messages, or (no subscription) the messages of a
// topic that failed schema validation.
type DeadLetterOrigin struct {
	Topic        string `json:"topic"`
	Subscription string `json:"subscription,omitempty"`
}

// EventSchema is a topic's schema binding and its subject's versions.
type EventSchema struct {
	Subject string `json:"subject"`
	Mode    string `json:"mode"` // reject or dead-letter
	// LatestVersion is the subject's latest live version (0: none, the
	// subject is not registered or all its versions are deleted).
	LatestVersion int            `json:"latest_version"`
	LatestID      int            `json:"latest_id,omitempty"`
	Type          schema.Type    `json:"type,omitempty"` // the latest version's
	Versions      []EventVersion `json:"versions"`
	// The latest version's text and references, only when asked for
	// (CatalogOptions.SchemaText, GET /catalog?schemas=true).
	LatestSchema     string `json:"latest_schema,omitempty"`
	LatestReferences []Ref  `json:"latest_references,omitempty"`
}

// EventVersion is a version of a topic's subject, with its usage.
type EventVersion struct {
	Version int         `json:"version"`
	ID      int         `json:"id"`
	Type    schema.Type `json:"type"`
	Deleted bool        `json:"deleted,omitempty"`
	// Produced counts the messages validated with it on this node since
	// it started (the same counter as Usage).
	Produced     int64      `json:"produced"`
	LastProduced *time.Time `json:"last_produced,omitempty"`
}

// EventSubscription is a subscription of a topic.
type EventSubscription struct {
	Name   string       `json:"name"`
	Mode   string       `json:"mode"` // stream or queue
	Filter string       `json:"filter,omitempty"`
	Reader *EventReader `json:"reader"` // its declared reader schema; nil: none
}

// EventReader is a subscription's declared reader schema.
type EventReader struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// CatalogOptions choose what Catalog lists.
type CatalogOptions struct {
	Topic      string // only this topic ("": every one)
	SchemaText bool   // fill in EventSchema.LatestSchema
}

// Catalog lists every topic of b as an event type, in name order.
func (r *Registry) Catalog(b CatalogSource) []EventType {
	return r.CatalogOf(b, CatalogOptions{})
}

// CatalogOf lists b's topics as opts asks.
func (r *Registry) CatalogOf(b CatalogSource, opts CatalogOptions) []EventType {
	return r.catalogAt(b, opts, time.Now())
}

func (r *Registry) catalogAt(b CatalogSource, opts CatalogOptions, now time.Time) []EventType {
	topics := b.Topics()
	subs := make(map[string][]catalog.Subscription, len(topics))
	for _, t := range topics {
		s, err := b.Subscriptions(t.Name)
		if err == nil {
			subs[t.Name] = s
		}
	}
	origins := deadLetterOrigins(topics, subs)
	totals := make(map[string]int64, len(topics)) // by topic id: end offsets
	out := []EventType{}
	for _, t := range topics {
		var stored, total int64
		for p := range t.Config.Partitions {
			start, end, err := b.Offsets(t.Name, p)
			if err == nil {
				stored += end - start
				total += end
			}
		}
		totals[t.ID] = total
		if opts.Topic != "" && t.Name != opts.Topic {
			continue
		}
		et := EventType{
			Topic:       t.Name,
			Partitions:  t.Config.Partitions,
			Created:     t.Created.UTC(),
			Owner:       t.Config.Owner,
			Description: t.Config.Description,
			Labels:      maps.Clone(t.Config.Labels),
			Messages:    stored,
		}
		if et.Labels == nil {
			et.Labels = map[string]string{}
		}
		if o, ok := origins[t.Name]; ok {
			et.DeadLetter, et.DeadLetterOf = true, o
		} else if strings.HasPrefix(t.Name, "dlq.") {
			et.DeadLetter = true
		}
		et.RatePerSecond, et.RateWindowSeconds = r.rates.rate(t.ID, total, now)
		for _, s := range subs[t.Name] {
			et.Subscriptions = append(et.Subscriptions, EventSubscription{Name: s.Name, Mode: s.Config.Mode.String(), Filter: s.Config.Filter})
		}
		if et.Subscriptions == nil {
			et.Subscriptions = []EventSubscription{}
		}
		out = append(out, et)
	}
	r.rates.sample(totals, now)

	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.m
	for i := range out {
		et := &out[i]
		for j := range et.Subscriptions {
			s := &et.Subscriptions[j]
			if rd, ok := m.readers[readerKey{et.Topic, s.Name}]; ok {
				s.Reader = &EventReader{Subject: rd.Subject, Version: rd.Version}
			}
		}
		t := topicByName(topics, et.Topic)
		if t.Config.SchemaSubject != "" {
			et.Schema = r.eventSchema(m, t.Config.SchemaSubject, t.Config.SchemaMode, opts.SchemaText)
		}
	}
	return out
}

func topicByName(topics []catalog.Topic, name string) catalog.Topic {
	i := sort.Search(len(topics), func(i int) bool { return topics[i].Name >= name })
	if i < len(topics) && topics[i].Name == name {
		return topics[i]
	}
	return catalog.Topic{}
}

// eventSchema describes a subject for the catalog. Called with mu held.
func (r *Registry) eventSchema(m *model, subj string, mode catalog.SchemaMode, text bool) *EventSchema {
	es := &EventSchema{Subject: subj, Mode: mode.String(), Versions: []EventVersion{}}
	s := m.subjects[subj]
	if s == nil {
		return es
	}
	for _, v := range s.versions {
		ev := EventVersion{Version: v.Version, ID: v.ID, Type: m.schemas[v.ID].Type, Deleted: v.Deleted}
		ev.Produced, ev.LastProduced = r.produced(v.ID)
		es.Versions = append(es.Versions, ev)
	}
	if l := s.latestLive(); l != nil {
		st := m.schemas[l.ID]
		es.LatestVersion, es.LatestID, es.Type = l.Version, l.ID, st.Type
		if text {
			es.LatestSchema, es.LatestReferences = st.Text, st.Refs
		}
	}
	return es
}

// produced returns the messages validated with schema id on this node
// and when the last was.
func (r *Registry) produced(id int) (int64, *time.Time) {
	r.lazyMu.Lock()
	l := r.lazies[id]
	r.lazyMu.Unlock()
	if l == nil {
		return 0, nil
	}
	var last *time.Time
	if ns := l.last.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		last = &t
	}
	return l.produced.Load(), last
}

// deadLetterOrigins maps each dead-letter topic name to its origin: the
// dead-letter topic of every subscription (its own or the default
// dlq.TOPIC.SUB) and of every topic bound in dead-letter mode (dlq.TOPIC);
// a subscription's wins over a topic not in dead-letter mode.
func deadLetterOrigins(topics []catalog.Topic, subs map[string][]catalog.Subscription) map[string]*DeadLetterOrigin {
	out := map[string]*DeadLetterOrigin{}
	for _, t := range topics {
		if t.Config.SchemaSubject != "" && t.Config.SchemaMode == catalog.SchemaDeadLetter {
			out[catalog.TopicDeadLetterName(t.Name)] = &DeadLetterOrigin{Topic: t.Name}
		}
	}
	for _, t := range topics {
		for _, s := range subs[t.Name] {
			name := s.StreamFailure().DeadLetter
			if _, ok := out[name]; !ok {
				out[name] = &DeadLetterOrigin{Topic: t.Name, Subscription: s.Name}
			}
		}
	}
	for _, t := range topics {
		// dlq.TOPIC of a topic no longer in dead-letter mode.
		if name := catalog.TopicDeadLetterName(t.Name); out[name] == nil {
			out[name] = &DeadLetterOrigin{Topic: t.Name}
		}
	}
	return out
}

// Producing rates. Every RateSampleEvery (RunRateSampler, which the
// server runs; a catalog request also samples) the registry records each
// topic's total end offset — the offset the next message of each
// partition gets, summed; it only grows, whatever retention deletes — and
// keeps the samples of the last RateWindow. A topic's rate is its total
// now minus the oldest kept sample's, over the time between them: the
// messages per second over the last minute (less while the node has been
// up for less). Samples are kept by topic id, so a topic deleted and
// created again starts over, and dropped with their topic: memory is
// bounded by the topics times RateWindow/RateSampleEvery + 1 samples.
const (
	RateSampleEvery = 10 * time.Second
	RateWindow      = time.Minute
)

type rateSample struct {
	at    time.Time
	total int64
}

// rateSampler holds each topic's samples, oldest first.
type rateSampler struct {
	mu      sync.Mutex
	samples map[string][]rateSample // topic id → samples
}

// sample records totals (topic id → total end offset) at now for the
// topics whose last sample is nearly RateSampleEvery old, drops samples
// older than RateWindow, and forgets topics missing from totals.
func (s *rateSampler) sample(totals map[string]int64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.samples == nil {
		s.samples = map[string][]rateSample{}
	}
	for id := range s.samples {
		if _, ok := totals[id]; !ok {
			delete(s.samples, id)
		}
	}
	for id, total := range totals {
		ss := s.samples[id]
		if n := len(ss); n > 0 {
			if total < ss[n-1].total {
				ss = nil // not the same logs: start over
			} else if now.Sub(ss[n-1].at) < RateSampleEvery*9/10 {
				continue // sampled recently (the ticker's or a request's)
			}
		}
		ss = append(ss, rateSample{now, total})
		k := 0
		for k < len(ss)-1 && now.Sub(ss[k].at) > RateWindow {
			k++
		}
		s.samples[id] = append(ss[:0:0], ss[k:]...)
	}
}

// rate returns a topic's messages per second from its oldest sample in
// the last RateWindow to total at now, and the seconds that spans (0, 0:
// no sample yet, or one less than a second old).
func (s *rateSampler) rate(id string, total int64, now time.Time) (perSec, window float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.samples[id] {
		d := now.Sub(x.at)
		if d > RateWindow {
			continue
		}
		if d < time.Second || total < x.total {
			return 0, 0
		}
		return float64(total-x.total) / d.Seconds(), d.Seconds()
	}
	return 0, 0
}

// SampleRates records every topic's total end offset (at most once per
// RateSampleEvery each), for the producing rates.
func (r *Registry) SampleRates(b CatalogSource) {
	r.sampleRatesAt(b, time.Now())
}

func (r *Registry) sampleRatesAt(b CatalogSource, now time.Time) {
	topics := b.Topics()
	totals := make(map[string]int64, len(topics))
	for _, t := range topics {
		var total int64
		for p := range t.Config.Partitions {
			if _, end, err := b.Offsets(t.Name, p); err == nil {
				total += end
			}
		}
		totals[t.ID] = total
	}
	r.rates.sample(totals, now)
}

// RunRateSampler samples b's producing rates every RateSampleEvery until
// ctx is done.
func (r *Registry) RunRateSampler(ctx context.Context, b CatalogSource) {
	t := time.NewTicker(RateSampleEvery)
	defer t.Stop()
	r.SampleRates(b)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.SampleRates(b)
		}
	}
}

// CatalogHandler serves GET /catalog on the native API's listener: the
// event types as JSON. ?topic=NAME lists only that topic (404 if there is
// none); ?schemas=true adds the latest schema's text.
func (r *Registry) CatalogHandler(b CatalogSource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		opts := CatalogOptions{Topic: q.Get("topic")}
		if v := q.Get("schemas"); v != "" {
			on, err := strconv.ParseBool(v)
			if err != nil {
				catalogError(w, http.StatusBadRequest, "invalid_argument", "schemas: "+strconv.Quote(v)+" is not true or false")
				return
			}
			opts.SchemaText = on
		}
		out := r.CatalogOf(b, opts)
		if opts.Topic != "" && len(out) == 0 {
			catalogError(w, http.StatusNotFound, "not_found", "topic "+strconv.Quote(opts.Topic)+" not found")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.Encode(out)
	})
}

// catalogError answers an error as the native API's JSON does:
// {"code","message"}.
func catalogError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

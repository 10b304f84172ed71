package console

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/group"
)

// topicRow is one topic of the overview.
type topicRow struct {
	Name           string
	Partitions     int
	Messages       int64
	Bytes          int64
	Rate           float64 // messages per second; < 0: not known yet
	Subject        string
	Subscriptions  int
	DeadLetter     bool
	DeadLetterOf   string // "topic/subscription" or "topic"
	DeadLetterLink string
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	b := c.cfg.Broker
	topics := b.Topics()
	slices.SortFunc(topics, func(a, b catalog.Topic) int { return strings.Compare(a.Name, b.Name) })
	// The registry's producing rates (a minute's window, sampled by the
	// server) stand in until the console has samples of its own.
	catalogRates := map[string]float64{}
	if reg := c.cfg.Registry; reg != nil {
		for _, et := range reg.Catalog(b) {
			if et.RateWindowSeconds > 0 {
				catalogRates[et.Topic] = et.RatePerSecond
			}
		}
	}
	origins := deadLetterOrigins(b, topics)
	rows := make([]topicRow, 0, len(topics))
	for _, t := range topics {
		info, err := b.DescribeTopic(t.Name)
		if err != nil {
			continue // deleted meanwhile
		}
		row := topicRow{Name: t.Name, Partitions: len(info.Partitions), Messages: info.Messages, Bytes: info.Bytes,
			Subject: t.Config.SchemaSubject, Subscriptions: len(info.Subscriptions), Rate: -1}
		if rate, ok := c.rates.topicRate(c, info); ok {
			row.Rate = rate
		} else if cr, ok := catalogRates[t.Name]; ok {
			row.Rate = cr
		}
		if o, ok := origins[t.Name]; ok {
			row.DeadLetter = true
			row.DeadLetterOf = o.topic
			row.DeadLetterLink = "/topics/" + urlSeg(o.topic)
			if o.sub != "" {
				row.DeadLetterOf += " / " + o.sub
				row.DeadLetterLink += "/subscriptions/" + urlSeg(o.sub) + "/dead-letters"
			}
		}
		rows = append(rows, row)
	}
	c.rates.prune(b)
	c.render(w, r, http.StatusOK, "overview", page{Title: "Topics", Nav: "topics", Data: rows})
}

type dlOrigin struct{ topic, sub string }

// deadLetterOrigins maps the name of each existing dead-letter topic to
// the subscription (or, for schema validation failures, the topic) whose
// messages it holds.
func deadLetterOrigins(b *broker.Broker, topics []catalog.Topic) map[string]dlOrigin {
	out := map[string]dlOrigin{}
	exists := map[string]bool{}
	for _, t := range topics {
		exists[t.Name] = true
	}
	for _, t := range topics {
		if name := catalog.TopicDeadLetterName(t.Name); exists[name] {
			out[name] = dlOrigin{topic: t.Name}
		}
		subs, _ := b.Subscriptions(t.Name)
		for _, s := range subs {
			if name := s.StreamFailure().DeadLetter; exists[name] {
				out[name] = dlOrigin{topic: t.Name, sub: s.Name}
			}
		}
	}
	return out
}

// subRow is one subscription on the topic page.
type subRow struct {
	Name         string
	Mode         string
	Filter       string
	Lag          int64
	Oldest       time.Duration
	InFlight     int64
	Redelivered  string // "—" without telemetry
	DeadLettered int64
	Members      int
}

type topicData struct {
	Info       broker.TopicInfo
	Subs       []subRow
	Retention  string
	DeadLetter *dlOrigin
	StatsURL   string
	Latency    bool
}

func (c *Console) topic(w http.ResponseWriter, r *http.Request) {
	b := c.cfg.Broker
	name := r.PathValue("topic")
	info, err := b.DescribeTopic(name)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	d := topicData{Info: info, Retention: "forever", StatsURL: "/console/api/stats?topic=" + urlQuery(name), Latency: c.cfg.Stats != nil}
	if rt := info.Topic.Config.Retention; rt > 0 {
		d.Retention = formatAge(rt)
	}
	if rb := info.Topic.Config.RetentionBytes; rb > 0 {
		d.Retention += ", " + formatBytes(rb) + " per partition"
	}
	if o, ok := deadLetterOrigins(b, b.Topics())[name]; ok {
		d.DeadLetter = &o
	}
	for _, sn := range info.Subscriptions {
		si, err := b.DescribeSubscription(name, sn)
		if err != nil {
			continue
		}
		row := subRow{Name: sn, Mode: si.Sub.Config.Mode.String(), Filter: si.Sub.Config.Filter, Lag: si.Lag,
			DeadLettered: si.DeadLettered, Members: len(si.Group.Members), Redelivered: "—"}
		for _, p := range si.Partitions {
			row.Oldest = max(row.Oldest, p.OldestUnconsumed)
			if p.Queue != nil {
				row.InFlight += int64(p.Queue.Leased)
			}
		}
		if st := c.cfg.Stats; st != nil {
			if sc, _, _, ok := st.Subscription(name, sn); ok {
				row.Redelivered = formatInt(sc.Redelivered)
				row.DeadLettered = int64(sc.DeadLettered)
			}
		}
		d.Subs = append(d.Subs, row)
	}
	c.render(w, r, http.StatusOK, "topic", page{Title: "Topic " + name, Nav: "topics", Charts: true,
		Crumbs: []crumb{{"Topics", "/"}}, Data: d})
}

// memberRow is a consumer group member on the subscription page.
type memberRow struct {
	group.MemberInfo
	Assigned string
	Revoking string
	Pending  string
}

type subData struct {
	Info        broker.SubInfo
	Topic       string
	Sub         string
	Members     []memberRow
	Queue       bool
	DLQ         string
	StatsURL    string
	Latency     bool
	Reset       *broker.ResetResult // after a reset
	ResetTo     string
	SubCounters *SubCounters
	Form        resetForm
}

// resetForm is the reset form's values (as sent, after an error).
type resetForm struct {
	Partition, To, Time, Offset string
	Partitions                  []int32
}

func (c *Console) subscription(w http.ResponseWriter, r *http.Request) {
	c.renderSub(w, r, http.StatusOK, nil, "", resetForm{To: "earliest"})
}

func (c *Console) renderSub(w http.ResponseWriter, r *http.Request, status int, res *broker.ResetResult, resetTo string, form resetForm) {
	b := c.cfg.Broker
	tn, sn := r.PathValue("topic"), r.PathValue("sub")
	info, err := b.DescribeSubscription(tn, sn)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	d := subData{Info: info, Topic: tn, Sub: sn, Queue: info.Sub.Config.Mode == catalog.ModeQueue,
		DLQ: info.Sub.StreamFailure().DeadLetter, Reset: res, ResetTo: resetTo, Form: form, Latency: c.cfg.Stats != nil,
		StatsURL: "/console/api/stats?topic=" + urlQuery(tn) + "&sub=" + urlQuery(sn)}
	for _, p := range info.Partitions {
		d.Form.Partitions = append(d.Form.Partitions, p.Partition)
	}
	for _, m := range info.Group.Members {
		mr := memberRow{MemberInfo: m, Assigned: partList(m.Owned), Pending: partList(m.Pending)}
		var rv []int32
		for _, x := range m.Revoking {
			rv = append(rv, x.Partition)
		}
		mr.Revoking = partList(rv)
		d.Members = append(d.Members, mr)
	}
	if st := c.cfg.Stats; st != nil {
		if sc, _, _, ok := st.Subscription(tn, sn); ok {
			d.SubCounters = &sc
		}
	}
	c.render(w, r, status, "subscription", page{Title: "Subscription " + sn, Nav: "topics", Charts: true,
		Crumbs: []crumb{{"Topics", "/"}, {tn, "/topics/" + urlSeg(tn)}}, Data: d})
}

func partList(ps []int32) string {
	if len(ps) == 0 {
		return "—"
	}
	ps = slices.Clone(ps)
	slices.Sort(ps)
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}

// reset moves a subscription's position (POST, same origin only).
func (c *Console) reset(w http.ResponseWriter, r *http.Request) {
	if !c.checkPost(w, r) {
		return
	}
	tn, sn := r.PathValue("topic"), r.PathValue("sub")
	f := resetForm{Partition: r.PostFormValue("partition"), To: r.PostFormValue("to"),
		Time: strings.TrimSpace(r.PostFormValue("time")), Offset: strings.TrimSpace(r.PostFormValue("offset"))}
	bad := func(msg string) {
		c.fail(w, r, http.StatusBadRequest, msg)
	}
	part := broker.AllPartitions
	if f.Partition != "" && f.Partition != "all" {
		p, err := strconv.ParseInt(f.Partition, 10, 32)
		if err != nil || p < 0 {
			bad("Partition " + strconv.Quote(f.Partition) + " is not a partition number.")
			return
		}
		part = int32(p)
	}
	var to catalog.Position
	switch f.To {
	case "earliest":
		to.Kind = catalog.Earliest
	case "latest":
		to.Kind = catalog.Latest
	case "time":
		t, err := parseTime(f.Time)
		if err != nil {
			bad("Time: " + err.Error())
			return
		}
		to = catalog.Position{Kind: catalog.AtTime, Time: t}
	case "offset":
		o, err := strconv.ParseInt(f.Offset, 10, 64)
		if err != nil || o < 0 {
			bad("Offset " + strconv.Quote(f.Offset) + " is not an offset (a whole number, 0 or more).")
			return
		}
		to = catalog.Position{Kind: catalog.AtOffset, Offset: o}
	default:
		bad("Reset to " + strconv.Quote(f.To) + ": choose earliest, latest, time or offset.")
		return
	}
	res, err := c.cfg.Broker.ResetSubscription(tn, sn, to, part)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.log.Info("console: subscription reset", "topic", tn, "subscription", sn, "to", to.String(), "partition", part, "remote", r.RemoteAddr)
	c.renderSub(w, r, http.StatusOK, &res, to.String(), f)
}

// parseTime reads a time as RFC 3339, a date and time without a zone
// (UTC; what a datetime-local input sends), or Unix milliseconds.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errEmptyTime
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 || ms > 1<<53 {
			return time.Time{}, errBadTime(s)
		}
		return time.UnixMilli(ms), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errBadTime(s)
}

type timeError string

func (e timeError) Error() string { return string(e) }

var errEmptyTime = timeError("give a time (RFC 3339 such as 2025-01-02T15:04:05Z, or Unix milliseconds)")

func errBadTime(s string) error {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return timeError(strconv.Quote(s) + " is not a time (RFC 3339 such as 2025-01-02T15:04:05Z, a date and time in UTC, or Unix milliseconds)")
}

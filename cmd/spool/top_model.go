package main

// The model of `spool top`, free of any terminal: polling the server,
// rates between two polls, sorting, filtering, and rendering to text of a
// given width and height. top.go drives it from the command, in plain
// text (--once, --watch) or in a bubbletea program.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/ansi"
	"golang.org/x/sync/errgroup"

	"github.com/spoolmq/spool/client"
)

// topSource is what top asks the server: the SDK client's admin calls.
type topSource interface {
	ListTopics(ctx context.Context) ([]client.Topic, error)
	DescribeTopic(ctx context.Context, name string) (*client.TopicInfo, error)
	DescribeSubscription(ctx context.Context, topic, name string) (*client.SubscriptionInfo, error)
}

// topPollWorkers bounds the describe calls of one poll in flight at once.
const topPollWorkers = 8

// topPoll is one poll of the server: the topics whose names start with a
// prefix and their subscriptions, by name.
type topPoll struct {
	at     time.Time
	topics []topicPoll
	subs   []subPoll
}

// topicPoll is one topic as polled.
type topicPoll struct {
	name, id        string
	partitions      int
	messages, bytes int64
	ends, sizes     []int64 // per partition: end offset, stored bytes
}

// subPoll is one subscription as polled.
type subPoll struct {
	topic, topicID, name string
	mode                 client.Mode
	members              int
	lag                  int64
	oldest               time.Duration // the oldest unconsumed message's age, over partitions
	inFlight             int64         // leases in flight (queue mode)
	deadLettered         int64
	// positions is, per partition, the next offset to consume (end − lag:
	// the committed offset or, in queue mode, the ack floor).
	positions []int64
}

// pollTop polls src once: ListTopics, then DescribeTopic of each topic
// whose name starts with prefix and DescribeSubscription of each of its
// subscriptions, topPollWorkers at a time. A topic or subscription
// deleted meanwhile is left out; any other error fails the poll.
func pollTop(ctx context.Context, src topSource, prefix string, now time.Time) (*topPoll, error) {
	list, err := src.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	p := &topPoll{at: now}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(topPollWorkers)
	describeSub := func(t *client.TopicInfo, name string) error {
		si, err := src.DescribeSubscription(gctx, t.Topic.Name, name)
		if errors.Is(err, client.ErrSubscriptionNotFound) || errors.Is(err, client.ErrTopicNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		s := newSubPoll(t.Topic.ID, si)
		mu.Lock()
		p.subs = append(p.subs, s)
		mu.Unlock()
		return nil
	}
	for _, t := range list {
		if !strings.HasPrefix(t.Name, prefix) {
			continue
		}
		g.Go(func() error {
			ti, err := src.DescribeTopic(gctx, t.Name)
			if errors.Is(err, client.ErrTopicNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			tp := newTopicPoll(ti)
			mu.Lock()
			p.topics = append(p.topics, tp)
			mu.Unlock()
			for _, name := range ti.Subscriptions {
				// Go blocks while the limit is reached: a describe of a
				// topic must not wait in the group for its own
				// subscriptions, so they run here, one after the other.
				if err := describeSub(ti, name); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	slices.SortFunc(p.topics, func(a, b topicPoll) int { return cmp.Compare(a.name, b.name) })
	slices.SortFunc(p.subs, func(a, b subPoll) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.name, b.name))
	})
	return p, nil
}

func newTopicPoll(ti *client.TopicInfo) topicPoll {
	tp := topicPoll{
		name:       ti.Topic.Name,
		id:         ti.Topic.ID,
		partitions: len(ti.Partitions),
		messages:   ti.Messages,
		bytes:      ti.Bytes,
	}
	n := 0
	for _, pi := range ti.Partitions {
		n = max(n, int(pi.Partition)+1)
	}
	tp.ends, tp.sizes = make([]int64, n), make([]int64, n)
	for _, pi := range ti.Partitions {
		tp.ends[pi.Partition], tp.sizes[pi.Partition] = pi.EndOffset, pi.Bytes
	}
	return tp
}

func newSubPoll(topicID string, si *client.SubscriptionInfo) subPoll {
	s := subPoll{
		topic:        si.Subscription.Topic,
		topicID:      topicID,
		name:         si.Subscription.Name,
		mode:         si.Subscription.Config.Mode,
		members:      len(si.Members),
		lag:          si.Lag,
		deadLettered: si.DeadLettered,
	}
	n := 0
	for _, sp := range si.Partitions {
		n = max(n, int(sp.Partition)+1)
	}
	s.positions = make([]int64, n)
	for _, sp := range si.Partitions {
		s.positions[sp.Partition] = sp.EndOffset - sp.Lag
		s.oldest = max(s.oldest, sp.OldestUnconsumedAge)
		if sp.Queue != nil {
			s.inFlight += int64(sp.Queue.InFlight)
		}
	}
	return s
}

// counterRate is the rate per second of a counter kept per partition
// (end offsets, stored bytes, consumed positions) between two polls dt
// apart: the increases of the partitions summed. It is never negative: a
// partition whose counter went back (retention deleted bytes, a
// subscription was reset, a topic deleted and created again between the
// polls under the same name) adds nothing, and a partition new since the
// previous poll (prev shorter, or nil for a topic created again, whose
// counters start from zero) counts from zero.
func counterRate(prev, cur []int64, dt time.Duration) float64 {
	if dt <= 0 {
		return 0
	}
	var sum int64
	for i, c := range cur {
		var p int64
		if i < len(prev) {
			p = prev[i]
		}
		if c > p {
			sum += c - p
		}
	}
	return float64(sum) / dt.Seconds()
}

// topSort is the column top sorts its tables by.
type topSort int

const (
	sortName topSort = iota // by name, ascending
	sortRate                // by rate (publish, consume), highest first
	sortLag                 // by lag, highest first
)

var topSortNames = []string{"name", "rate", "lag"}

func (s topSort) String() string { return topSortNames[s] }

// next is the sort column after s, for the s key.
func (s topSort) next() topSort { return (s + 1) % topSort(len(topSortNames)) }

// parseTopSort returns the sort column named name.
func parseTopSort(name string) (topSort, bool) {
	i := slices.Index(topSortNames, name)
	return topSort(i), i >= 0
}

// topicRow is a line of the topics table.
type topicRow struct {
	name            string
	partitions      int
	messages, bytes int64
	msgRate         float64 // messages published per second
	byteRate        float64 // bytes stored per second
	hasRate         bool    // false until two polls saw the topic
	lag             int64   // its subscriptions' lag summed
}

// subRow is a line of the subscriptions table.
type subRow struct {
	topic, name  string
	mode         client.Mode
	members      int
	lag          int64
	oldest       time.Duration
	inFlight     int64
	rate         float64 // messages consumed per second
	hasRate      bool
	deadLettered int64
}

// topView is what top shows: the rows of its two tables.
type topView struct {
	topics []topicRow
	subs   []subRow
}

// buildView makes the rows of poll cur, with rates over the change since
// prev (nil: no rates yet). A topic whose id changed since prev was
// created again: its counters count from zero.
func buildView(prev, cur *topPoll) topView {
	var v topView
	if cur == nil {
		return v
	}
	var dt time.Duration
	prevTopics := map[string]*topicPoll{}
	prevSubs := map[[2]string]*subPoll{}
	if prev != nil {
		dt = cur.at.Sub(prev.at)
		for i := range prev.topics {
			prevTopics[prev.topics[i].name] = &prev.topics[i]
		}
		for i := range prev.subs {
			prevSubs[[2]string{prev.subs[i].topic, prev.subs[i].name}] = &prev.subs[i]
		}
	}
	lag := map[string]int64{}
	for _, s := range cur.subs {
		r := subRow{topic: s.topic, name: s.name, mode: s.mode, members: s.members, lag: s.lag,
			oldest: s.oldest, inFlight: s.inFlight, deadLettered: s.deadLettered}
		if p, ok := prevSubs[[2]string{s.topic, s.name}]; ok && dt > 0 {
			before := p.positions
			if p.topicID != s.topicID {
				before = nil
			}
			r.rate, r.hasRate = counterRate(before, s.positions, dt), true
		}
		lag[s.topic] += s.lag
		v.subs = append(v.subs, r)
	}
	for _, t := range cur.topics {
		r := topicRow{name: t.name, partitions: t.partitions, messages: t.messages, bytes: t.bytes, lag: lag[t.name]}
		if p, ok := prevTopics[t.name]; ok && dt > 0 {
			ends, sizes := p.ends, p.sizes
			if p.id != t.id {
				ends, sizes = nil, nil
			}
			r.msgRate, r.byteRate, r.hasRate = counterRate(ends, t.ends, dt), counterRate(sizes, t.sizes, dt), true
		}
		v.topics = append(v.topics, r)
	}
	return v
}

// filter keeps the topics whose names start with prefix, and their
// subscriptions.
func (v topView) filter(prefix string) topView {
	if prefix == "" {
		return v
	}
	var out topView
	for _, t := range v.topics {
		if strings.HasPrefix(t.name, prefix) {
			out.topics = append(out.topics, t)
		}
	}
	for _, s := range v.subs {
		if strings.HasPrefix(s.topic, prefix) {
			out.subs = append(out.subs, s)
		}
	}
	return out
}

// sort orders both tables by column by (ties by name), in place.
func (v topView) sort(by topSort) {
	slices.SortStableFunc(v.topics, func(a, b topicRow) int {
		var c int
		switch by {
		case sortRate:
			c = cmp.Compare(b.msgRate, a.msgRate)
		case sortLag:
			c = cmp.Compare(b.lag, a.lag)
		}
		return cmp.Or(c, cmp.Compare(a.name, b.name))
	})
	slices.SortStableFunc(v.subs, func(a, b subRow) int {
		var c int
		switch by {
		case sortRate:
			c = cmp.Compare(b.rate, a.rate)
		case sortLag:
			c = cmp.Compare(b.lag, a.lag)
		}
		return cmp.Or(c, cmp.Compare(a.topic, b.topic), cmp.Compare(a.name, b.name))
	})
}

// table is a text table: a header, rows of cells, right-aligned columns,
// and the columns that may be truncated to fit a width.
type table struct {
	head   []string
	right  []bool
	shrink []bool
	rows   [][]string
}

const (
	colGap      = 2 // spaces between columns
	minColWidth = 6 // a truncated column keeps at least this many cells
)

func topicsTable(rows []topicRow) table {
	t := table{
		head:   []string{"TOPIC", "PARTITIONS", "MESSAGES", "BYTES", "MSG/S", "BYTES/S", "LAG"},
		right:  []bool{false, true, true, true, true, true, true},
		shrink: []bool{true, false, false, false, false, false, false},
	}
	for _, r := range rows {
		msgRate, byteRate := "-", "-"
		if r.hasRate {
			msgRate, byteRate = textRateValue(r.msgRate), textBytes(int64(r.byteRate+0.5))
		}
		t.rows = append(t.rows, []string{r.name, strconv.Itoa(r.partitions), strconv.FormatInt(r.messages, 10),
			textBytes(r.bytes), msgRate, byteRate, strconv.FormatInt(r.lag, 10)})
	}
	return t
}

func subsTable(rows []subRow) table {
	t := table{
		head:   []string{"TOPIC", "SUBSCRIPTION", "MODE", "MEMBERS", "LAG", "OLDEST", "IN FLIGHT", "MSG/S", "DEAD"},
		right:  []bool{false, false, false, true, true, true, true, true, true},
		shrink: []bool{true, true, false, false, false, false, false, false, false},
	}
	for _, r := range rows {
		rate, inFlight := "-", "-"
		if r.hasRate {
			rate = textRateValue(r.rate)
		}
		if r.mode == client.ModeQueue {
			inFlight = strconv.FormatInt(r.inFlight, 10)
		}
		t.rows = append(t.rows, []string{r.topic, r.name, r.mode.String(), strconv.Itoa(r.members),
			strconv.FormatInt(r.lag, 10), textAge(r.oldest), inFlight, rate, strconv.FormatInt(r.deadLettered, 10)})
	}
	return t
}

// textRateValue formats a rate per second with the catalog's precision.
func textRateValue(r float64) string {
	return strconv.FormatFloat(r, 'f', rateDecimals(r), 64)
}

// textBytes formats a size in bytes with a binary unit: 512B, 1.5KiB,
// 12MiB (one decimal below 10 units).
func textBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatInt(n, 10) + "B"
	}
	f, u := float64(n), -1
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	dec := 0
	if f < 10 {
		dec = 1
	}
	return strconv.FormatFloat(f, 'f', dec, 64) + string(units[u]) + "iB"
}

// widths returns the width of each column of t: the widest cell, with
// the truncatable columns narrowed (the widest first, not below
// minColWidth or their header) until a line fits width; width ≤ 0 means
// no limit.
func (t table) widths(width int) []int {
	w := make([]int, len(t.head))
	for i, h := range t.head {
		w[i] = ansi.StringWidth(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			w[i] = max(w[i], ansi.StringWidth(c))
		}
	}
	if width <= 0 {
		return w
	}
	total := colGap * (len(w) - 1)
	for _, x := range w {
		total += x
	}
	for total > width {
		widest := -1
		for i, x := range w {
			if t.shrink[i] && x > max(minColWidth, ansi.StringWidth(t.head[i])) && (widest < 0 || x > w[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break
		}
		w[widest]--
		total--
	}
	return w
}

// lines renders the header and rows from..to (exclusive) of t in columns
// of widths w, each line cut to width (≤ 0: no limit).
func (t table) lines(w []int, from, to, width int) []string {
	out := []string{t.line(t.head, w, width)}
	for _, r := range t.rows[from:to] {
		out = append(out, t.line(r, w, width))
	}
	return out
}

func (t table) line(cells []string, w []int, width int) string {
	var b strings.Builder
	for i, c := range cells {
		c = truncate(c, w[i])
		pad := strings.Repeat(" ", w[i]-ansi.StringWidth(c))
		switch {
		case t.right[i]:
			b.WriteString(pad + c)
		case i < len(cells)-1:
			b.WriteString(c + pad)
		default:
			b.WriteString(c)
		}
		if i < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", colGap))
		}
	}
	return truncate(strings.TrimRight(b.String(), " "), width)
}

// truncate cuts s to width cells, ending it with an ellipsis when cut;
// width ≤ 0 means no limit.
func truncate(s string, width int) string {
	if width <= 0 || ansi.StringWidth(s) <= width {
		return s
	}
	return ansi.Truncate(s, width, "…")
}

// renderTopText renders v as plain text for --once and --watch: the two
// tables at their natural widths, a blank line between them.
func renderTopText(v topView) string {
	var b strings.Builder
	for i, t := range []table{topicsTable(v.topics), subsTable(v.subs)} {
		if i > 0 {
			b.WriteString("\n")
		}
		for _, l := range t.lines(t.widths(0), 0, len(t.rows), 0) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// topScreen is the interactive state the screen shows besides the rows.
type topScreen struct {
	server   string
	interval time.Duration
	sort     topSort
	filter   string
	editing  bool // the filter is being typed
	scroll   int  // the first row shown of each table that has more than fit
	updated  time.Time
	err      error // the last poll's error, nil if it succeeded
}

// topFixedLines are the screen's lines besides the tables' rows: the
// title, each table's caption and header, the blank line between the
// tables, the status line and the keys line.
const topFixedLines = 8

// bold makes s bold on a terminal.
func bold(s string) string { return "\x1b[1m" + s + "\x1b[m" }

// topLayout splits the rows a screen of height lines has for the tables
// between them: all of both if they fit, else each at least half (or
// all it needs), the rest to the other.
func topLayout(topics, subs, height int) (tRows, sRows int) {
	avail := max(0, height-topFixedLines)
	if topics+subs <= avail {
		return topics, subs
	}
	half := avail / 2
	switch {
	case topics <= half:
		return topics, avail - topics
	case subs <= avail-half:
		return avail - subs, subs
	}
	return half, avail - half
}

// maxScroll is the largest useful scroll offset of v on a screen of
// height lines.
func maxScroll(v topView, height int) int {
	tRows, sRows := topLayout(len(v.topics), len(v.subs), height)
	return max(0, len(v.topics)-tRows, len(v.subs)-sRows)
}

// renderTopScreen renders the interactive screen: title, the two tables
// (rows beyond the height scrolled to s.scroll), the status line and the
// keys, every line cut to width, height lines at most.
func renderTopScreen(v topView, s topScreen, width, height int) string {
	var out []string
	title := "spool top  " + s.server + "  every " + s.interval.String() + "  sort: " + s.sort.String()
	if s.filter != "" || s.editing {
		title += "  topic prefix: " + s.filter
	}
	out = append(out, title)
	tRows, sRows := topLayout(len(v.topics), len(v.subs), height)
	section := func(name string, t table, rows int) {
		off := min(s.scroll, len(t.rows)-rows)
		caption := fmt.Sprintf("%s (%d)", name, len(t.rows))
		if rows < len(t.rows) {
			caption = fmt.Sprintf("%s %d-%d of %d", name, off+1, off+rows, len(t.rows))
		}
		ls := t.lines(t.widths(width), off, off+rows, width)
		ls[0] = bold(ls[0])
		out = append(out, bold(caption))
		out = append(out, ls...)
	}
	section("TOPICS", topicsTable(v.topics), tRows)
	out = append(out, "")
	section("SUBSCRIPTIONS", subsTable(v.subs), sRows)
	for len(out) < height-2 {
		out = append(out, "")
	}
	switch {
	case s.err != nil:
		line := "error: " + errorText(s.err) + "; retrying every " + s.interval.String()
		if !s.updated.IsZero() {
			line += "; data of " + s.updated.Format(time.TimeOnly)
		}
		out = append(out, line)
	case s.updated.IsZero():
		out = append(out, "connecting…")
	default:
		out = append(out, "updated "+s.updated.Format(time.TimeOnly))
	}
	if s.editing {
		out = append(out, "topic prefix: "+s.filter+"_   enter keep  esc cancel  ctrl+u empty")
	} else {
		out = append(out, "q quit  s sort  / filter  ↑↓ j k scroll")
	}
	if height > 0 && len(out) > height {
		// Too small for everything: the status and keys lines last.
		out = append(out[:max(0, height-2)], out[len(out)-2:]...)
		out = out[len(out)-height:]
	}
	for i, l := range out {
		out[i] = truncate(l, width)
	}
	return strings.Join(out, "\n")
}

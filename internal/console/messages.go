package console

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
)

// Bounds of one page of messages (the browser and the dead-letter view).
const (
	defaultLimit = 50
	maxLimit     = 500
	// maxPageBytes bounds the keys, values and headers one page reads; the
	// message that crosses it is the last.
	maxPageBytes = 4 << 20
	// maxShown bounds how much of one value or key is shown (as text, JSON
	// or a hex dump of the first maxShown/4 bytes), maxHeaderShown one
	// header's value.
	maxShown       = 16 << 10
	maxHeaderShown = 1 << 10
	// readTimeout bounds the read of one page.
	readTimeout = 5 * time.Second
)

// shown is a key, value or header value prepared for display.
type shown struct {
	Kind      string // "json" (decoded with its schema), "text", "hex", "empty"
	Text      string
	Size      int
	Truncated bool
	SchemaID  int    // the schema it was decoded with (json), or names
	Note      string // why it was not decoded, or that its schema is not the topic's subject's
}

type headerView struct {
	Key   string
	Value shown
}

type msgView struct {
	Partition int32
	Offset    int64
	Time      time.Time
	Key       shown
	Headers   []headerView
	Value     shown
}

// cut shortens s to at most n bytes at a character boundary.
func cut(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}

// showBytes shows b as text when it is printable UTF-8 (with tabs and
// newlines), else as a hex dump; limit bounds the text shown.
func showBytes(b []byte, limit int) shown {
	v := shown{Size: len(b)}
	switch {
	case len(b) == 0:
		v.Kind = "empty"
	case printable(b):
		v.Kind = "text"
		v.Text, v.Truncated = cut(string(b), limit)
	default:
		v.Kind = "hex"
		n := min(len(b), limit/4)
		v.Text, v.Truncated = hex.Dump(b[:n]), n < len(b)
	}
	return v
}

func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	return !strings.ContainsFunc(string(b), func(r rune) bool {
		return !unicode.IsPrint(r) && r != '\n' && r != '\t' && r != '\r'
	})
}

// showValue shows a message value: decoded with its schema when the topic
// is bound to a subject and the value names a schema (wire format or a
// spool.schema-id header), else as showBytes does.
func (c *Console) showValue(subject string, value []byte, headers []batch.RecordHeader) shown {
	reg := c.cfg.Registry
	if subject == "" || reg == nil {
		return showBytes(value, maxShown)
	}
	var idHeader []byte
	for _, h := range headers {
		if h.Key == broker.HeaderSchemaID {
			idHeader = h.Value
			if idHeader == nil {
				idHeader = []byte{}
			}
		}
	}
	d, named, err := reg.DecodeValue(subject, value, idHeader)
	if !named {
		v := showBytes(value, maxShown)
		v.Note = "names no schema (not in the wire format, no " + broker.HeaderSchemaID + " header)"
		return v
	}
	if err != nil {
		v := showBytes(value, maxShown)
		v.SchemaID = d.ID
		v.Note = "not decoded: " + err.Error()
		return v
	}
	v := shown{Kind: "json", Size: len(value), SchemaID: d.ID}
	var buf bytes.Buffer
	if json.Indent(&buf, d.JSON, "", "  ") == nil {
		v.Text, v.Truncated = cut(buf.String(), maxShown)
	} else {
		v.Text, v.Truncated = cut(string(d.JSON), maxShown)
	}
	if !d.InSubject {
		v.Note = "schema " + strconv.Itoa(d.ID) + " is not a version of subject " + strconv.Quote(subject)
	}
	return v
}

func (c *Console) view(subject string, d broker.Delivered) msgView {
	m := msgView{Partition: d.Partition, Offset: d.Offset, Time: d.Timestamp,
		Key: showBytes(d.Key, maxShown), Value: c.showValue(subject, d.Value, d.Headers)}
	for _, h := range d.Headers {
		m.Headers = append(m.Headers, headerView{Key: h.Key, Value: showBytes(h.Value, maxHeaderShown)})
	}
	return m
}

func msgBytes(d broker.Delivered) int {
	n := len(d.Key) + len(d.Value)
	for _, h := range d.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// parseLimit reads a page size: defaultLimit when empty, clamped to
// maxLimit; 400 for what is not a positive number.
func parseLimit(s string) (int, error) {
	if s == "" {
		return defaultLimit, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && errors.Is(ne.Err, strconv.ErrRange) && !strings.HasPrefix(s, "-") {
			return maxLimit, nil // a huge limit is clamped like any large one
		}
		return 0, errors.New("limit " + strconv.Quote(s) + " is not a number")
	}
	if n < 1 {
		return 0, errors.New("limit must be at least 1")
	}
	return int(min(n, maxLimit)), nil
}

type messagesData struct {
	Topic      string
	Subject    string
	Partitions []int32
	Form       struct{ Partition, Offset, Time, Limit string }
	Limit      int
	Messages   []msgView
	Clamped    bool   // the limit asked for was above maxLimit
	BytesCut   bool   // the page stopped at maxPageBytes
	Next       string // the next page's URL (one partition)
	Err        string
}

// messages is the message browser: GET /topics/{topic}/messages with
// partition (a number; empty: every partition), offset or time (where
// to start; empty: the earliest retained) and limit.
func (c *Console) messages(w http.ResponseWriter, r *http.Request) {
	b := c.cfg.Broker
	tn := r.PathValue("topic")
	t, ok := b.Topic(tn)
	if !ok {
		c.fail(w, r, http.StatusNotFound, "Topic "+strconv.Quote(tn)+" not found.")
		return
	}
	q := r.URL.Query()
	d := messagesData{Topic: tn, Subject: t.Config.SchemaSubject}
	d.Form.Partition, d.Form.Offset, d.Form.Time, d.Form.Limit = q.Get("partition"), strings.TrimSpace(q.Get("offset")), strings.TrimSpace(q.Get("time")), q.Get("limit")
	for p := range t.Config.Partitions {
		d.Partitions = append(d.Partitions, p)
	}
	bad := func(msg string) { c.fail(w, r, http.StatusBadRequest, msg) }
	limit, err := parseLimit(d.Form.Limit)
	if err != nil {
		bad("Limit: " + err.Error() + ".")
		return
	}
	d.Limit = limit
	if n, err := strconv.ParseInt(d.Form.Limit, 10, 64); (err == nil && n > maxLimit) || (err != nil && d.Form.Limit != "") {
		d.Clamped = true
	}
	req := broker.ReadRequest{Topic: tn, Count: int64(limit)}
	if s := d.Form.Partition; s != "" && s != "all" {
		p, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			bad("Partition " + strconv.Quote(s) + " is not a partition number.")
			return
		}
		p32 := int32(p)
		req.Partition = &p32
	}
	switch {
	case d.Form.Offset != "" && d.Form.Time != "":
		bad("Give an offset or a time, not both.")
		return
	case d.Form.Offset != "":
		o, err := strconv.ParseInt(d.Form.Offset, 10, 64)
		if err != nil || o < 0 {
			bad("Offset " + strconv.Quote(d.Form.Offset) + " is not an offset (a whole number, 0 or more).")
			return
		}
		req.From = catalog.Position{Kind: catalog.AtOffset, Offset: o}
	case d.Form.Time != "":
		tm, err := parseTime(d.Form.Time)
		if err != nil {
			bad("Time: " + err.Error() + ".")
			return
		}
		req.From = catalog.Position{Kind: catalog.AtTime, Time: tm}
	}
	rd, err := b.ReadTopic(req)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
	defer cancel()
	total := 0
	var next int64 = -1
read:
	for len(d.Messages) < limit {
		rb, err := rd.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			if len(d.Messages) == 0 {
				c.failErr(w, r, err)
				return
			}
			d.Err = err.Error()
			break
		}
		for _, m := range rb.Messages {
			if len(d.Messages) == limit {
				break read
			}
			if total >= maxPageBytes {
				d.BytesCut = true
				break read
			}
			total += msgBytes(m)
			d.Messages = append(d.Messages, c.view(d.Subject, m))
			next = m.Offset + 1
		}
	}
	if req.Partition != nil && next >= 0 {
		if _, end, err := b.Offsets(tn, *req.Partition); err == nil && next < end {
			d.Next = "/topics/" + urlSeg(tn) + "/messages?partition=" + strconv.Itoa(int(*req.Partition)) +
				"&offset=" + strconv.FormatInt(next, 10) + "&limit=" + strconv.Itoa(limit)
		}
	}
	c.render(w, r, http.StatusOK, "messages", page{Title: "Messages of " + tn, Nav: "topics",
		Crumbs: []crumb{{"Topics", "/"}, {tn, "/topics/" + urlSeg(tn)}}, Data: d})
}

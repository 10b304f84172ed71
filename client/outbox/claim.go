package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spoolmq/spool/client"
)

// queries are a relay's statements for its dialect and table.
type queries struct {
	claim     string // $1 now (Unix ms), $2 limit
	sent      string // $1 the ids (a PostgreSQL array literal, a JSON array)
	retry     string // $1 attempts, $2 error, $3 retry_at, $4 id
	park      string // $1 attempts, $2 error, $3 id
	takeLease string // $1 owner, $2 until, $3 now
	due       string // SQLite: a row if one is due; $1 now
}

const rowColumns = `o.id, o.event_id, o.aggregate, o.topic, o.msg_key, o.msg_value, o.headers, o.subject, o.attempts`

func newQueries(d Dialect, t string) queries {
	var q queries
	if d == Postgres {
		// c: the oldest pending rows due that no other relay holds,
		// locked. s: the pending rows below c's last that c lacks (held
		// by another relay, or in backoff), by aggregate: an aggregate's
		// rows from its first such row on wait.
		q.claim = `WITH c AS MATERIALIZED (
	SELECT id, aggregate FROM ` + t + ` WHERE state = 0 AND retry_at <= $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
), m AS (
	SELECT max(id) AS maxid, count(*) AS n FROM c
), s AS (
	SELECT p.aggregate, min(p.id) AS stop FROM ` + t + ` p, m
	WHERE p.state = 0 AND p.id < m.maxid AND p.id NOT IN (SELECT id FROM c) GROUP BY p.aggregate
)
SELECT ` + rowColumns + `, m.n FROM c JOIN ` + t + ` o ON o.id = c.id CROSS JOIN m LEFT JOIN s ON s.aggregate = o.aggregate
WHERE s.stop IS NULL OR o.id < s.stop ORDER BY o.id`
		q.sent = `DELETE FROM ` + t + ` WHERE id = ANY($1::bigint[])`
		q.retry = `UPDATE ` + t + ` SET attempts = $1, last_error = $2, retry_at = $3 WHERE id = $4`
		q.park = `UPDATE ` + t + ` SET state = 2, attempts = $1, last_error = $2, done_at = now() WHERE id = $3`
		return q
	}
	// One relay at a time (the lease): c is a prefix of the pending rows
	// due, and only rows in backoff (found through the partial index of
	// rows refused before) make an aggregate's later rows wait.
	q.claim = `WITH c AS (
	SELECT id, aggregate FROM ` + t + ` WHERE state = 0 AND retry_at <= $1 ORDER BY id LIMIT $2
), m AS (
	SELECT count(*) AS n FROM c
), s AS (
	SELECT aggregate, min(id) AS stop FROM ` + t + ` WHERE state = 0 AND retry_at > 0 AND retry_at > $1 GROUP BY aggregate
)
SELECT ` + rowColumns + `, m.n FROM c JOIN ` + t + ` o ON o.id = c.id CROSS JOIN m LEFT JOIN s ON s.aggregate = o.aggregate
WHERE s.stop IS NULL OR o.id < s.stop ORDER BY o.id`
	q.due = `SELECT 1 FROM ` + t + ` WHERE state = 0 AND retry_at <= $1 LIMIT 1`
	q.sent = `DELETE FROM ` + t + ` WHERE id IN (SELECT value FROM json_each($1))`
	q.retry = `UPDATE ` + t + ` SET attempts = $1, last_error = $2, retry_at = $3 WHERE id = $4`
	q.park = `UPDATE ` + t + ` SET state = 2, attempts = $1, last_error = $2, done_at = CURRENT_TIMESTAMP WHERE id = $3`
	q.takeLease = `INSERT INTO ` + t + `_lease (name, owner, expires_at) VALUES ('relay', $1, $2)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE ` + t + `_lease.owner = excluded.owner OR ` + t + `_lease.expires_at < $3`
	return q
}

// keepSent turns the sent statement into marking the rows.
func (q queries) sentStatement(d Dialect, t string, keep bool) string {
	if !keep {
		return q.sent
	}
	if d == Postgres {
		return `UPDATE ` + t + ` SET state = 1, done_at = now() WHERE id = ANY($1::bigint[])`
	}
	return `UPDATE ` + t + ` SET state = 1, done_at = CURRENT_TIMESTAMP WHERE id IN (SELECT value FROM json_each($1))`
}

// row is one claimed outbox row.
type row struct {
	id       int64
	eventID  string
	agg      string
	topic    string
	key      []byte
	value    []byte
	headers  sql.NullString
	subject  string
	attempts int
}

func (rw *row) event() Event {
	e := Event{ID: rw.eventID, Topic: rw.topic, Aggregate: rw.agg, Key: rw.key, Value: rw.value, Subject: rw.subject}
	e.Headers, _ = decodeHeaders(rw.headers.String)
	return e
}

// size approximates the row's bytes in a publish request.
func (rw *row) size() int {
	return len(rw.key) + len(rw.value) + len(rw.headers.String) + len(rw.eventID) + len(rw.subject) + 64
}

// claim reads the step's rows: due, pending, and first in their
// aggregate's line; full tells whether it found as many pending rows as
// it could take (some of which may wait behind others).
func (r *Relay) claim(ctx context.Context, tx *sql.Tx) (rows []*row, full bool, err error) {
	rs, err := tx.QueryContext(ctx, r.q.claim, time.Now().UnixMilli(), r.limit)
	if err != nil {
		return nil, false, fmt.Errorf("outbox: read pending events from %s: %w", r.cfg.Table, err)
	}
	defer rs.Close()
	claimed := 0
	for rs.Next() {
		rw := new(row)
		if err := rs.Scan(&rw.id, &rw.eventID, &rw.agg, &rw.topic, &rw.key, &rw.value, &rw.headers, &rw.subject, &rw.attempts, &claimed); err != nil {
			return nil, false, fmt.Errorf("outbox: read pending events from %s: %w", r.cfg.Table, err)
		}
		rows = append(rows, rw)
	}
	if err := rs.Err(); err != nil {
		return nil, false, fmt.Errorf("outbox: read pending events from %s: %w", r.cfg.Table, err)
	}
	return rows, claimed >= r.limit, nil
}

// publishOutcome is what a step's publishing did.
type publishOutcome struct {
	sent   []int64   // row ids acknowledged by the broker
	failed []failure // refused events
	err    error     // a retriable failure or the context: the step fails
}

// failure is one refused event.
type failure struct {
	row  *row
	err  error
	park bool // attempts exhausted (set by mark)
}

// publish publishes the rows it may: for each aggregate the rows up to the
// first that changes topic or key (the rest wait for the next step), one
// goroutine per topic (an aggregate's rows in a step share one topic).
func (r *Relay) publish(ctx context.Context, rows []*row) publishOutcome {
	type head struct {
		topic   string
		key     []byte
		stopped bool
	}
	heads := map[string]*head{}
	byTopic := map[string][]*row{}
	var topics []string
	for _, rw := range rows {
		h := heads[rw.agg]
		switch {
		case h == nil:
			heads[rw.agg] = &head{topic: rw.topic, key: rw.key}
		case h.stopped:
			continue
		case h.topic != rw.topic || !bytes.Equal(h.key, rw.key):
			h.stopped = true
			continue
		}
		if _, ok := byTopic[rw.topic]; !ok {
			topics = append(topics, rw.topic)
		}
		byTopic[rw.topic] = append(byTopic[rw.topic], rw)
	}
	outs := make([]publishOutcome, len(topics))
	var wg sync.WaitGroup
	for i, t := range topics {
		if i == len(topics)-1 {
			outs[i] = r.publishTopic(ctx, t, byTopic[t])
			break
		}
		wg.Go(func() { outs[i] = r.publishTopic(ctx, t, byTopic[t]) })
	}
	wg.Wait()
	var out publishOutcome
	for _, o := range outs {
		out.sent = append(out.sent, o.sent...)
		out.failed = append(out.failed, o.failed...)
		if out.err == nil {
			out.err = o.err
		}
	}
	return out
}

// refusal reports whether err is the broker's (or the client's) refusal of
// the events themselves, which retrying the same request cannot fix: an
// invalid message (bad headers, a schema mismatch), one too large (for the
// topic or for a request), a topic that does not exist. Other errors —
// the broker unreachable, a deadline, a permission denied, a storage
// failure — are not the events' fault: the step fails and the events wait.
func refusal(ctx context.Context, err error) bool {
	var e *client.Error
	if ctx.Err() != nil || !errors.As(err, &e) || e.Retriable {
		return false
	}
	switch e.Code {
	case client.CodeInvalidArgument, client.CodeMessageTooLarge, client.CodeTopicNotFound, client.CodeSchemaInvalid,
		"resource_exhausted":
		return true
	}
	return false
}

// publishTopic publishes one topic's rows in requests of at most
// MaxRequestBytes, in order. A refused request is retried one event at a
// time to find the refused events; an aggregate with a refused event
// publishes nothing after it in this step.
func (r *Relay) publishTopic(ctx context.Context, topic string, rows []*row) publishOutcome {
	var out publishOutcome
	blocked := map[string]bool{}
	var chunk []*row
	var msgs []client.Message
	for len(rows) > 0 {
		chunk, msgs = chunk[:0], msgs[:0]
		size := 0
		for len(rows) > 0 && (len(chunk) == 0 || size+rows[0].size() <= r.cfg.MaxRequestBytes) {
			rw := rows[0]
			rows = rows[1:]
			if blocked[rw.agg] {
				continue
			}
			m, err := rw.message()
			if err != nil {
				out.failed = append(out.failed, failure{row: rw, err: err})
				blocked[rw.agg] = true
				continue
			}
			chunk = append(chunk, rw)
			msgs = append(msgs, m)
			size += rw.size()
		}
		if len(chunk) == 0 {
			continue
		}
		_, err := r.c.Publish(ctx, topic, msgs...)
		switch {
		case err == nil:
			for _, rw := range chunk {
				out.sent = append(out.sent, rw.id)
			}
			continue
		case !refusal(ctx, err):
			out.err = fmt.Errorf("outbox: publish %d events to %s: %w", len(chunk), topic, err)
			return out
		case len(chunk) == 1 || errors.Is(err, client.ErrTopicNotFound):
			for _, rw := range chunk {
				out.failed = append(out.failed, failure{row: rw, err: err})
				blocked[rw.agg] = true
			}
			continue
		}
		// Find the refused events one by one.
		for i, rw := range chunk {
			if blocked[rw.agg] {
				continue
			}
			_, err := r.c.Publish(ctx, topic, msgs[i])
			switch {
			case err == nil:
				out.sent = append(out.sent, rw.id)
			case refusal(ctx, err):
				out.failed = append(out.failed, failure{row: rw, err: err})
				blocked[rw.agg] = true
			default:
				out.err = fmt.Errorf("outbox: publish an event to %s: %w", topic, err)
				return out
			}
		}
	}
	return out
}

// message is the row's message; a headers column that cannot be decoded
// is a refusal of the event.
func (rw *row) message() (client.Message, error) {
	hs, err := decodeHeaders(rw.headers.String)
	if err != nil {
		return client.Message{}, &client.Error{Code: client.CodeInvalidArgument, Message: "outbox row " + strconv.FormatInt(rw.id, 10) + ": " + err.Error()}
	}
	return client.Message{ID: rw.eventID, Key: rw.key, Value: rw.value, Headers: hs, Subject: rw.subject}, nil
}

// mark records a step's outcome in tx: sent rows deleted (or marked),
// refused ones given their next attempt's time or parked.
func (r *Relay) mark(ctx context.Context, tx *sql.Tx, out publishOutcome) error {
	if len(out.sent) > 0 {
		q := r.q.sentStatement(r.cfg.Dialect, r.cfg.Table, r.cfg.KeepSent)
		if _, err := tx.ExecContext(ctx, q, idList(r.cfg.Dialect, out.sent)); err != nil {
			return fmt.Errorf("outbox: mark %d published events (they will be published again, as duplicates the broker drops): %w", len(out.sent), err)
		}
	}
	now := time.Now()
	for i := range out.failed {
		f := &out.failed[i]
		attempts := f.row.attempts + 1
		msg := f.err.Error()
		var err error
		if attempts >= r.cfg.MaxAttempts {
			f.park = true
			_, err = tx.ExecContext(ctx, r.q.park, attempts, msg, f.row.id)
		} else {
			_, err = tx.ExecContext(ctx, r.q.retry, attempts, msg, now.Add(r.retryDelay(attempts)).UnixMilli(), f.row.id)
		}
		if err != nil {
			return fmt.Errorf("outbox: record the refusal of row %d: %w", f.row.id, err)
		}
	}
	return nil
}

// idList writes ids as a PostgreSQL array literal or a JSON array.
func idList(d Dialect, ids []int64) string {
	var b strings.Builder
	open, close := "{", "}"
	if d == SQLite {
		open, close = "[", "]"
	}
	b.WriteString(open)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	b.WriteString(close)
	return b.String()
}

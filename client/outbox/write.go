package outbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/spoolmq/spool/client"
)

// Event is one message to publish, written to the outbox in the
// transaction that changes the business data it reports.
type Event struct {
	// ID is the message ID the relay publishes it with, which the topic's
	// de-duplication window uses (see Relay); empty: Write chooses a
	// random 128-bit hex id. Set your own (an event id of your domain) to
	// let consumers recognise the event too.
	ID string
	// Topic is the topic to publish to; required.
	Topic string
	// Aggregate is the ordering unit: the relay publishes the events of one
	// aggregate in the order they were written, each only once the one
	// before is acknowledged. Empty: the Key (as a string).
	Aggregate string
	// Key is the message key (it chooses the partition, so consumers see
	// one aggregate's events in order when its events share a key).
	// Empty: the Aggregate's bytes. With neither, the event has no key
	// (any partition) and belongs to the aggregate "", which orders all
	// such events of the table one after the other.
	Key []byte
	// Value is the payload.
	Value []byte
	// Headers and Subject are published as given.
	Headers []client.Header
	Subject string
}

// Execer is what Write needs: a *sql.Tx (usually), a *sql.Conn or a
// *sql.DB.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// maxWriteRows bounds the rows of one INSERT (7 parameters each). SQLite
// looks $N parameters up by name in a list, so a statement's cost grows
// with the square of its parameters: 100 rows keep it small.
const maxWriteRows = 100

// Write inserts events into the outbox table DefaultTable through tx: in
// the transaction that changes the business data, so that the events are
// published if and only if it commits. It works with both dialects (the
// statement is the same).
func Write(ctx context.Context, tx Execer, events ...Event) error {
	return WriteTable(ctx, tx, DefaultTable, events...)
}

// WriteTable is Write to another outbox table.
func WriteTable(ctx context.Context, tx Execer, table string, events ...Event) error {
	if err := checkTable(table); err != nil {
		return err
	}
	for len(events) > 0 {
		n := min(len(events), maxWriteRows)
		if err := writeRows(ctx, tx, table, events[:n]); err != nil {
			return err
		}
		events = events[n:]
	}
	return nil
}

func writeRows(ctx context.Context, tx Execer, table string, events []Event) error {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (event_id, aggregate, topic, msg_key, msg_value, headers, subject) VALUES ")
	args := make([]any, 0, 7*len(events))
	for i := range events {
		e := &events[i]
		if e.Topic == "" {
			return fmt.Errorf("outbox: write event %d: no topic", i)
		}
		id := e.ID
		if id == "" {
			id = newID()
		}
		agg, key := e.Aggregate, e.Key
		if agg == "" {
			agg = string(key)
		}
		if len(key) == 0 && agg != "" {
			key = []byte(agg)
		}
		var hdrs any // NULL without headers
		if len(e.Headers) > 0 {
			j, err := encodeHeaders(e.Headers)
			if err != nil {
				return fmt.Errorf("outbox: write event %d: %w", i, err)
			}
			hdrs = j
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for k := range 7 {
			if k > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(len(args) + k + 1))
		}
		b.WriteByte(')')
		args = append(args, id, agg, e.Topic, nonNil(key), nonNil(e.Value), hdrs, e.Subject)
	}
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("outbox: write %d events to %s: %w", len(events), table, err)
	}
	return nil
}

// nonNil stores an empty byte string rather than NULL for empty keys and
// values (both read back as empty).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// jsonHeader is a header in the headers column: {"k": key, "v": base64}.
type jsonHeader struct {
	K string `json:"k"`
	V []byte `json:"v,omitempty"`
}

func encodeHeaders(hs []client.Header) (string, error) {
	js := make([]jsonHeader, len(hs))
	for i, h := range hs {
		js[i] = jsonHeader{K: h.Key, V: h.Value}
	}
	b, err := json.Marshal(js)
	if err != nil {
		return "", fmt.Errorf("headers: %w", err)
	}
	return string(b), nil
}

func decodeHeaders(s string) ([]client.Header, error) {
	if s == "" {
		return nil, nil
	}
	var js []jsonHeader
	if err := json.Unmarshal([]byte(s), &js); err != nil {
		return nil, fmt.Errorf("headers column: %w", err)
	}
	hs := make([]client.Header, len(js))
	for i, h := range js {
		hs[i] = client.Header{Key: h.K, Value: h.V}
	}
	return hs, nil
}

// newID returns a random 128-bit id in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b[:])
}

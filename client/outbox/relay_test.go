package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/outbox"
)

// Committed events are published once each, in order per aggregate, with
// their ID, key, headers and subject; rolled-back ones never.
func TestRelayPublishes(t *testing.T) {
	forEach(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		e := newEnv(t)
		s := startServer(t)
		c := s.Client()
		ctx := context.Background()
		createTopic(t, c, "orders", client.TopicConfig{Partitions: 3})
		createTopic(t, c, "audit", client.TopicConfig{})

		want := map[string]int{}
		for round := range 10 {
			for a := range 8 {
				agg := fmt.Sprintf("order-%d", a)
				if err := business(ctx, e.db, e.table, "orders", agg, want[agg], 1+round%3); err != nil {
					t.Fatal(err)
				}
				want[agg] += 1 + round%3
			}
		}
		// A rolled-back transaction's events never leave.
		tx, err := e.db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if err := outbox.WriteTable(ctx, tx, e.table, outbox.Event{Topic: "orders", Aggregate: "order-0", Value: []byte("rolled back")}); err != nil {
			t.Fatal(err)
		}
		tx.Rollback()
		// Explicit ID, key, subject, headers, and another topic.
		tx, _ = e.db.Begin()
		err = outbox.WriteTable(ctx, tx, e.table, outbox.Event{
			ID: "evt-1", Topic: "audit", Aggregate: "user-7", Key: []byte("k7"), Value: []byte("hello"),
			Subject: "users.created", Headers: []client.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: nil}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}

		r := newRelay(t, e, e.db, c, func(cfg *outbox.RelayConfig) { cfg.BatchSize = 7 })
		stop := runRelay(t, r)
		waitFor(t, "an empty outbox", func() bool { return pending(t, e.db, e.table) == 0 })
		stop()
		checkExactlyOnce(t, c, "orders", want)
		total := 0
		for _, n := range want {
			total += n
		}
		if st := r.Stats(); st.Published != int64(total)+1 || st.Parked != 0 || st.Errors != 0 {
			t.Errorf("stats %+v, want %d published", st, total+1)
		}
		audit := readAll(t, c, "audit")
		if len(audit) != 1 {
			t.Fatalf("audit: %d messages", len(audit))
		}
		m := audit[0]
		var hs []client.Header // without Spool's own
		for _, h := range m.Headers {
			if !strings.HasPrefix(h.Key, "spool.") {
				hs = append(hs, h)
			}
		}
		if m.ID != "evt-1" || string(m.Key) != "k7" || string(m.Value) != "hello" || m.Subject != "users.created" ||
			len(hs) != 2 || hs[0].Key != "a" || string(hs[0].Value) != "1" || hs[1].Key != "a" || len(hs[1].Value) != 0 {
			t.Errorf("audit message %+v", m)
		}
		var rows int
		e.db.QueryRow("SELECT count(*) FROM " + e.table).Scan(&rows)
		if rows != 0 {
			t.Errorf("%d rows left after publishing (sent rows are deleted)", rows)
		}
	})
}

// With KeepSent the rows stay, marked sent.
func TestRelayKeepSent(t *testing.T) {
	forEach(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		e := newEnv(t)
		c := startServer(t).Client()
		ctx := context.Background()
		createTopic(t, c, "orders", client.TopicConfig{})
		if err := business(ctx, e.db, e.table, "orders", "a", 0, 5); err != nil {
			t.Fatal(err)
		}
		r := newRelay(t, e, e.db, c, func(cfg *outbox.RelayConfig) { cfg.KeepSent = true })
		if n, err := r.RunOnce(ctx); n != 5 || err != nil {
			t.Fatalf("RunOnce: %d, %v", n, err)
		}
		if n, err := r.RunOnce(ctx); n != 0 || err != nil {
			t.Fatalf("second RunOnce: %d, %v", n, err)
		}
		var sent int
		e.db.QueryRow("SELECT count(*) FROM " + e.table + " WHERE state = 1 AND done_at IS NOT NULL").Scan(&sent)
		if sent != 5 {
			t.Errorf("%d rows marked sent, want 5", sent)
		}
		checkExactlyOnce(t, c, "orders", map[string]int{"a": 5})
	})
}

// Refused events: a missing topic, a message too large and a headers
// column that does not decode are retried MaxAttempts times, then parked
// with the reason, reported, and the aggregates go on with their next
// events; nothing else is held up.
func TestRelayParksRefusedEvents(t *testing.T) {
	forEach(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		e := newEnv(t)
		c := startServer(t).Client()
		ctx := context.Background()
		createTopic(t, c, "orders", client.TopicConfig{Partitions: 2, MaxMessageBytes: 1024})

		if err := business(ctx, e.db, e.table, "orders", "a", 0, 1); err != nil {
			t.Fatal(err)
		}
		tx, _ := e.db.Begin()
		err := outbox.WriteTable(ctx, tx, e.table,
			outbox.Event{Topic: "orders", Aggregate: "a", Value: make([]byte, 4096)},         // too large
			outbox.Event{Topic: "nope", Aggregate: "b", Value: []byte("to a missing topic")}, // no topic
			outbox.Event{Topic: "orders", Aggregate: "c", Value: []byte("bad headers")},
		)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("UPDATE " + e.table + " SET headers = 'not json' WHERE aggregate = 'c'"); err != nil {
			t.Fatal(err)
		}
		tx.Commit()
		for _, agg := range []string{"a", "b", "c"} {
			if err := business(ctx, e.db, e.table, "orders", agg, map[string]int{"a": 1, "b": 0, "c": 0}[agg], 2); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		var parked []outbox.Parked
		r := newRelay(t, e, e.db, c, func(cfg *outbox.RelayConfig) {
			cfg.MaxAttempts = 3
			cfg.OnPark = func(p outbox.Parked) { mu.Lock(); parked = append(parked, p); mu.Unlock() }
		})
		// The aggregates wait behind their refused events.
		if _, err := r.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		msgs := readAll(t, c, "orders")
		if len(msgs) != 1 || string(msgs[0].Value) != "a/0" {
			t.Fatalf("after one step: %d messages", len(msgs))
		}
		stop := runRelay(t, r)
		waitFor(t, "an empty outbox", func() bool { return pending(t, e.db, e.table) == 0 })
		stop()

		mu.Lock()
		defer mu.Unlock()
		if len(parked) != 3 {
			t.Fatalf("%d events parked, want 3: %+v", len(parked), parked)
		}
		reasons := map[string]error{}
		for _, p := range parked {
			if p.Attempts != 3 || p.RowID == 0 {
				t.Errorf("parked %+v", p)
			}
			reasons[p.Event.Aggregate] = p.Err
		}
		if !errors.Is(reasons["a"], client.ErrMessageTooLarge) || !errors.Is(reasons["b"], client.ErrTopicNotFound) ||
			!errors.Is(reasons["c"], client.ErrInvalidArgument) || !strings.Contains(reasons["c"].Error(), "headers") {
			t.Errorf("reasons %v", reasons)
		}
		rows, err := e.db.Query("SELECT aggregate, attempts, last_error FROM " + e.table + " WHERE state = 2 ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var agg, last string
			var attempts int
			if err := rows.Scan(&agg, &attempts, &last); err != nil {
				t.Fatal(err)
			}
			if attempts != 3 || last == "" {
				t.Errorf("parked row of %s: %d attempts, %q", agg, attempts, last)
			}
			n++
		}
		if n != 3 {
			t.Errorf("%d parked rows, want 3", n)
		}
		// The aggregates went on after their parked events.
		checkExactlyOnce(t, c, "orders", map[string]int{"a": 3, "b": 2, "c": 2})
		if st := r.Stats(); st.Parked != 3 || st.Refused != 9 {
			t.Errorf("stats %+v", st)
		}
		// Requeue makes them pending again: a fixed topic lets b's through.
		createTopic(t, c, "nope", client.TopicConfig{})
		if n, err := outbox.Requeue(ctx, e.db, e.dialect, outbox.Table(e.table)); n != 3 || err != nil {
			t.Fatalf("Requeue: %d, %v", n, err)
		}
		r.RunOnce(ctx)
		if got := readAll(t, c, "nope"); len(got) != 1 {
			t.Errorf("after Requeue: %d messages on the fixed topic", len(got))
		}
	})
}

// Two relays at once, while the application writes: every event once, in
// order per aggregate.
func TestTwoRelays(t *testing.T) {
	forEach(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		e := newEnv(t)
		s := startServer(t)
		c := s.Client()
		createTopic(t, c, "orders", client.TopicConfig{Partitions: 4})
		var r1p, r2p *outbox.Relay
		r1p = newRelay(t, e, e.open(t), newClient(t, s), func(cfg *outbox.RelayConfig) { cfg.BatchSize = 50 })
		r2p = newRelay(t, e, e.open(t), newClient(t, s), func(cfg *outbox.RelayConfig) { cfg.BatchSize = 30 })
		stop1, stop2 := runRelay(t, r1p), runRelay(t, r2p)
		want := writeLoad(t, e, "orders", 20, 1500)
		waitFor(t, "an empty outbox", func() bool { return pending(t, e.db, e.table) == 0 })
		stop1()
		stop2()
		checkExactlyOnce(t, c, "orders", want)
		st1, st2 := r1p.Stats(), r2p.Stats()
		if st1.Published+st2.Published < 1500 {
			t.Errorf("published %d + %d", st1.Published, st2.Published)
		}
		t.Logf("relay 1 published %d, relay 2 %d", st1.Published, st2.Published)
	})
}

// writeLoad writes n events over aggs aggregates from 4 goroutines (each
// aggregate written by one of them), in transactions of 1 to 3 events.
func writeLoad(t testing.TB, e *env, topic string, aggs, n int) map[string]int {
	t.Helper()
	const writers = 4
	var mu sync.Mutex
	want := map[string]int{}
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := range writers {
		wg.Go(func() {
			next := map[string]int{}
			for i := 0; i < n/writers; {
				agg := fmt.Sprintf("agg-%d", w+writers*(i%(aggs/writers)))
				k := min(1+i%3, n/writers-i)
				if err := business(context.Background(), e.db, e.table, topic, agg, next[agg], k); err != nil {
					failed.Store(err)
					return
				}
				next[agg] += k
				i += k
			}
			mu.Lock()
			for agg, k := range next {
				want[agg] = k
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("writing: %v", err)
	}
	return want
}

// The broker stopping and coming back (same address) under a running
// relay: the relay waits, retries, and publishes everything once.
func TestRelayBrokerRestart(t *testing.T) {
	forEach(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		e := newEnv(t)
		s := startServer(t)
		createTopic(t, s.Client(), "orders", client.TopicConfig{Partitions: 2})
		var errs atomic.Int64
		r := newRelay(t, e, e.db, newClient(t, s, client.WithPublishAttempts(1)), func(cfg *outbox.RelayConfig) {
			cfg.BatchSize = 20
			cfg.OnError = func(error) { errs.Add(1) }
		})
		stop := runRelay(t, r)
		done := make(chan map[string]int)
		go func() { done <- writeLoad(t, e, "orders", 8, 800) }()
		time.Sleep(50 * time.Millisecond)
		s.Stop()
		// Events written while the broker is down wait for it.
		if err := business(context.Background(), e.db, e.table, "orders", "down", 0, 10); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a step failing", func() bool { return errs.Load() > 0 })
		s.Restart()
		want := <-done
		want["down"] = 10
		waitFor(t, "an empty outbox", func() bool { return pending(t, e.db, e.table) == 0 })
		stop()
		checkExactlyOnce(t, s.Client(), "orders", want)
	})
}

// hookTransport calls before ahead of every Publish request.
type hookTransport struct {
	next   http.RoundTripper
	before func()
}

func (h hookTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/Publish") {
		h.before()
	}
	return h.next.RoundTrip(req)
}

// The database going away between the publish and the marking: the step
// fails with an error that says so, nothing is marked, and the next step
// (with the database back) publishes the events again as duplicates the
// broker drops: each is stored once.
func TestDatabaseGoneMidStep(t *testing.T) {
	forEach(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		e := newEnv(t)
		s := startServer(t)
		c := s.Client()
		ctx := context.Background()
		createTopic(t, c, "orders", client.TopicConfig{Partitions: 2})
		if err := business(ctx, e.db, e.table, "orders", "a", 0, 10); err != nil {
			t.Fatal(err)
		}
		var db *sql.DB
		var cutDB func()
		if e.dialect == outbox.Postgres {
			// Through a proxy that cuts the relay's connections.
			p := newProxy(t, pgHost(t, e.dsn))
			pe := *e
			pe.dsn = strings.Replace(e.dsn, pgHost(t, e.dsn), p.addr(), 1)
			db = pe.open(t)
			cutDB = p.cut
			defer p.up()
		} else {
			db = e.open(t)
			cutDB = func() { db.Close() }
		}
		var once sync.Once
		rc := newClient(t, s, client.WithHTTPClient(&http.Client{Transport: hookTransport{
			next:   http2Transport(),
			before: func() { once.Do(cutDB) },
		}}))
		named := func(cfg *outbox.RelayConfig) { cfg.Name = "relay-1" } // the same relay, on SQLite's lease
		r := newRelay(t, e, db, rc, named)
		n, err := r.RunOnce(ctx)
		if err == nil {
			t.Fatalf("RunOnce with the database gone mid-step: %d, nil", n)
		}
		if !strings.Contains(err.Error(), "published again") {
			t.Errorf("error %q does not say what happens to the published events", err)
		}
		t.Logf("the error: %v", err)
		if got := pending(t, e.db, e.table); got != 10 {
			t.Fatalf("%d events pending after the failed step, want 10", got)
		}
		// The database back: a relay on it publishes them again.
		// (On PostgreSQL the server ends the cut-off transaction, and
		// frees its rows, once it notices.)
		r2 := newRelay(t, e, e.db, c, named)
		total := 0
		waitFor(t, "the events published again", func() bool {
			n, err := r2.RunOnce(ctx)
			if err != nil {
				t.Fatalf("RunOnce after: %v", err)
			}
			total += n
			return total == 10
		})
		checkExactlyOnce(t, c, "orders", map[string]int{"a": 10})
	})
}

// On PostgreSQL the insert trigger's NOTIFY wakes the relay: with polling
// an hour apart, events still go out at once.
func TestRelayWakesOnNotify(t *testing.T) {
	pgDSN(t)
	e := newPostgres(t)
	c := startServer(t).Client()
	ctx := context.Background()
	createTopic(t, c, "orders", client.TopicConfig{})
	r := newRelay(t, e, e.open(t), c, func(cfg *outbox.RelayConfig) { cfg.PollInterval = time.Hour })
	stop := runRelay(t, r)
	defer stop()
	for i := range 3 {
		time.Sleep(100 * time.Millisecond) // the relay is asleep
		if err := business(ctx, e.db, e.table, "orders", "a", i, 1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("event %d published", i), func() bool { return r.Stats().Published == int64(i+1) })
	}
	checkExactlyOnce(t, c, "orders", map[string]int{"a": 3})
}

// Bad configurations and events are refused with an error, not a panic.
func TestRelayConfigErrors(t *testing.T) {
	e := newSQLite(t)
	c := startServer(t).Client()
	for _, cfg := range []outbox.RelayConfig{
		{},
		{Dialect: outbox.SQLite, Table: "x; DROP TABLE y"},
		{Dialect: outbox.SQLite, BatchSize: 10_001},
		{Dialect: outbox.SQLite, PollInterval: -1},
	} {
		if _, err := outbox.NewRelay(e.db, c, cfg); err == nil {
			t.Errorf("NewRelay(%+v): no error", cfg)
		}
	}
	if _, err := outbox.NewRelay(nil, c, outbox.RelayConfig{Dialect: outbox.SQLite}); err == nil {
		t.Error("NewRelay without a database: no error")
	}
	if err := outbox.Migrate(context.Background(), e.db, outbox.Dialect(9)); err == nil {
		t.Error("Migrate with an unknown dialect: no error")
	}
	if err := outbox.Write(context.Background(), e.db, outbox.Event{Value: []byte("no topic")}); err == nil {
		t.Error("Write without a topic: no error")
	}
	if err := outbox.WriteTable(context.Background(), e.db, "bad-name", outbox.Event{Topic: "t"}); err == nil {
		t.Error("WriteTable to a bad table name: no error")
	}
}

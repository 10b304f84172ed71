package outbox_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"
	_ "modernc.org/sqlite"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/outbox"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(relayChild())
	}
	goleak.VerifyTestMain(m)
}

// pgEnv names the PostgreSQL the tests use (scripts/postgres.sh starts one
// and sets it); without it the PostgreSQL variants skip.
const pgEnv = "SPOOLTEST_POSTGRES"

var discard = slog.New(slog.DiscardHandler)

// env is one database under test: a dialect, how to open it, and a fresh
// outbox table.
type env struct {
	dialect outbox.Dialect
	dsn     string
	driver  string
	table   string
	db      *sql.DB
}

// open opens another *sql.DB on the same database (closed at the end of
// the test unless closed before).
func (e *env) open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open(e.driver, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// pgDSN returns the test PostgreSQL's DSN, or skips.
func pgDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(pgEnv)
	if dsn == "" {
		t.Skipf("%s is not set: no PostgreSQL to test against (scripts/postgres.sh starts one)", pgEnv)
	}
	return dsn
}

func newPostgres(t testing.TB) *env {
	t.Helper()
	e := &env{dialect: outbox.Postgres, dsn: pgDSN(t), driver: "pgx", table: randomName("outbox_")}
	e.db = e.open(t)
	e.db.SetMaxOpenConns(20)
	if err := e.db.Ping(); err != nil {
		t.Fatalf("PostgreSQL at %s: %v", e.dsn, err)
	}
	migrate(t, e)
	t.Cleanup(func() {
		db, err := sql.Open("pgx", e.dsn)
		if err == nil {
			db.Exec("DROP TABLE IF EXISTS " + e.table)
			db.Close()
		}
	})
	return e
}

// sqliteDSN is how the tests open SQLite files: WAL, a generous busy
// timeout and immediate transactions (what the outbox's documentation
// recommends).
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

func newSQLite(t testing.TB) *env {
	t.Helper()
	e := &env{dialect: outbox.SQLite, dsn: sqliteDSN(filepath.Join(t.TempDir(), "app.db")), driver: "sqlite", table: "outbox"}
	e.db = e.open(t)
	migrate(t, e)
	return e
}

func migrate(t testing.TB, e *env) {
	t.Helper()
	if err := outbox.Migrate(context.Background(), e.db, e.dialect, outbox.Table(e.table)); err != nil {
		t.Fatal(err)
	}
}

// forEach runs f for SQLite and for PostgreSQL (which skips without
// SPOOLTEST_POSTGRES).
func forEach(t *testing.T, f func(t *testing.T, newEnv func(testing.TB) *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newSQLite) })
	t.Run("postgres", func(t *testing.T) {
		pgDSN(t)
		f(t, newPostgres)
	})
}

// startServer starts a real server on a fixed free port (so that a
// restart keeps its address) and returns it.
func startServer(t testing.TB) *spooltest.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a real server")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return spooltest.StartServer(t, spooltest.Config(func(c *server.Config) {
		c.HTTPAddr = addr
		c.KafkaAddr = "-"
	}))
}

// newClient returns a client of s (closed at the end of the test), with
// quick reconnects.
func newClient(t testing.TB, s *spooltest.Server, opts ...client.Option) *client.Client {
	t.Helper()
	opts = append([]client.Option{client.WithLogger(discard), client.WithBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)
	c, err := client.New(s.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func createTopic(t testing.TB, c *client.Client, name string, cfg client.TopicConfig) {
	t.Helper()
	if _, err := c.CreateTopic(context.Background(), name, cfg); err != nil {
		t.Fatal(err)
	}
}

// newRelay makes a relay of e's table on db with quick polling.
func newRelay(t testing.TB, e *env, db *sql.DB, c *client.Client, mod ...func(*outbox.RelayConfig)) *outbox.Relay {
	t.Helper()
	cfg := outbox.RelayConfig{
		Dialect: e.dialect, Table: e.table, Logger: testLogger(),
		PollInterval: 20 * time.Millisecond, ErrorBackoffMax: 100 * time.Millisecond,
		LeaseTTL: 2 * time.Second, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
	}
	for _, f := range mod {
		f(&cfg)
	}
	r, err := outbox.NewRelay(db, c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runRelay runs r until the returned stop is called (or the test ends).
func runRelay(t testing.TB, r *outbox.Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// business writes events for aggregate agg, numbered from seq, with a
// business row, in one transaction; it returns the transaction's error.
func business(ctx context.Context, db *sql.DB, table, topic, agg string, seq, n int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	evs := make([]outbox.Event, n)
	for i := range evs {
		evs[i] = outbox.Event{Topic: topic, Aggregate: agg, Value: []byte(agg + "/" + strconv.Itoa(seq+i)),
			Headers: []client.Header{{Key: "seq", Value: []byte(strconv.Itoa(seq + i))}}}
	}
	if err := outbox.WriteTable(ctx, tx, table, evs...); err != nil {
		return err
	}
	return tx.Commit()
}

// pending counts the table's pending rows.
func pending(t testing.TB, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table + " WHERE state = 0").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// readAll reads every message of topic.
func readAll(t testing.TB, c *client.Client, topic string) []*client.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*client.Message
	for m, err := range c.ReadTopic(ctx, topic) {
		if err != nil {
			t.Fatalf("ReadTopic %s: %v", topic, err)
		}
		out = append(out, m)
	}
	return out
}

// checkExactlyOnce checks that topic holds exactly the events "agg/seq"
// for seq < want[agg], once each, in seq order per aggregate, and that
// each message's ID is unique.
func checkExactlyOnce(t testing.TB, c *client.Client, topic string, want map[string]int) {
	t.Helper()
	msgs := readAll(t, c, topic)
	next := map[string]int{}
	ids := map[string]bool{}
	total := 0
	var errs []string
	for _, m := range msgs {
		agg, seqs, ok := strings.Cut(string(m.Value), "/")
		seq, err := strconv.Atoi(seqs)
		if !ok || err != nil {
			errs = append(errs, fmt.Sprintf("unexpected message %q", m.Value))
			continue
		}
		if seq != next[agg] {
			errs = append(errs, fmt.Sprintf("aggregate %s: got event %d, want %d (partition %d offset %d)", agg, seq, next[agg], m.Partition, m.Offset))
		}
		next[agg] = seq + 1
		if string(m.Key) != agg {
			errs = append(errs, fmt.Sprintf("event %s: key %q", m.Value, m.Key))
		}
		if ids[m.ID] || m.ID == "" {
			errs = append(errs, fmt.Sprintf("event %s: id %q repeated or empty", m.Value, m.ID))
		}
		ids[m.ID] = true
		total++
	}
	wantTotal := 0
	for agg, n := range want {
		wantTotal += n
		if next[agg] != n {
			errs = append(errs, fmt.Sprintf("aggregate %s: %d events on the topic, want %d", agg, next[agg], n))
		}
	}
	if total != wantTotal {
		errs = append(errs, fmt.Sprintf("%d messages on the topic, want %d", total, wantTotal))
	}
	if len(errs) > 10 {
		errs = append(errs[:10], fmt.Sprintf("… and %d more", len(errs)-10))
	}
	for _, e := range errs {
		t.Error(e)
	}
}

// waitFor polls cond for up to 60 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proxy is a TCP proxy to a database that can cut every connection.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(u, c); u.Close() })
		p.wg.Go(func() { io.Copy(c, u); c.Close() })
	}
}

// cut closes every connection and refuses new ones until up.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// pgHost is the host:port of a postgres:// DSN.
func pgHost(t testing.TB, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Fatalf("%s: want a postgres://user@host:port/db URL (%v)", pgEnv, err)
	}
	return u.Host
}

// http2Transport is an HTTP/2 (h2c) transport like the client's own.
func http2Transport() *http.Transport {
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: &protocols}
}

func testLogger() *slog.Logger {
	if os.Getenv("SPOOLTEST_OUTBOX_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return discard
}

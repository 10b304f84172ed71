package idem_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"
	_ "modernc.org/sqlite"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/idem"
	"github.com/spoolmq/spool/internal/spooltest"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(consumerChild())
	}
	if os.Getenv(pipeChildEnv) != "" {
		os.Exit(pipelineChild())
	}
	goleak.VerifyTestMain(m)
}

const pgEnv = "SPOOLTEST_POSTGRES"

var discard = slog.New(slog.DiscardHandler)

// env is one database under test, with a fresh processed-keys table and
// an effects table the handlers write to.
type env struct {
	dialect idem.Dialect
	driver  string
	dsn     string
	table   string // processed keys
	effects string // the handler's writes: (msg TEXT)
	db      *sql.DB
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func forEach(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) {
		dsn := "file:" + filepath.Join(t.TempDir(), "app.db") + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_txlock=immediate"
		f(t, setup(t, idem.SQLite, "sqlite", dsn))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := os.Getenv(pgEnv)
		if dsn == "" {
			t.Skipf("%s is not set: no PostgreSQL to test against (scripts/postgres.sh starts one)", pgEnv)
		}
		f(t, setup(t, idem.Postgres, "pgx", dsn))
	})
}

func setup(t *testing.T, d idem.Dialect, driver, dsn string) *env {
	t.Helper()
	e := &env{dialect: d, driver: driver, dsn: dsn, table: randomName("processed_"), effects: randomName("effects_")}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	t.Cleanup(func() {
		db.Exec("DROP TABLE IF EXISTS " + e.table)
		db.Exec("DROP TABLE IF EXISTS " + e.effects)
		db.Close()
	})
	if err := idem.Migrate(context.Background(), db, d, e.table); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE " + e.effects + " (msg TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	return e
}

// effect is the handlers' business write.
func (e *env) effect(ctx context.Context, tx *sql.Tx, m *client.Message) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO "+e.effects+" (msg) VALUES ($1)", string(m.Value))
	return err
}

// effectCounts counts the effects per message value.
func (e *env) effectCounts(t testing.TB) map[string]int {
	t.Helper()
	rows, err := e.db.Query("SELECT msg FROM " + e.effects)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out[s]++
	}
	return out
}

func startServer(t testing.TB) *spooltest.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a real server")
	}
	return spooltest.StartServer(t)
}

func fastQueue() client.SubscriptionConfig {
	return client.SubscriptionConfig{
		Mode:       client.ModeQueue,
		AckTimeout: 300 * time.Millisecond,
		Backoff:    client.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Jitter: client.JitterNone},
	}
}

// run runs a consumer until the returned stop is called (or the test ends).
func run(t testing.TB, c *client.Client, topic, sub string, h client.Handler, opts ...client.ConsumerOption) (stop func()) {
	t.Helper()
	k, err := c.NewConsumer(topic, sub, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
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

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// subscriptionDone reports whether every message of sub was acknowledged.
func subscriptionDone(t testing.TB, c *client.Client, topic, sub string) bool {
	info, err := c.DescribeSubscription(context.Background(), topic, sub)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range info.Partitions {
		if p.Queue != nil && (p.Queue.AckFloor != p.EndOffset || p.Queue.InFlight != 0) {
			return false
		}
	}
	return info.Lag == 0
}

// The same event published twice (two messages, one event-id header),
// concurrently handled: its effects apply once, and both deliveries are
// acknowledged.
func TestDuplicatesApplyOnce(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		c := startServer(t).Client()
		ctx := context.Background()
		c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 3})
		if _, err := c.CreateSubscription(ctx, "orders", "billing", fastQueue()); err != nil {
			t.Fatal(err)
		}
		var msgs []client.Message
		for i := range 100 {
			m := client.Message{Key: []byte(fmt.Sprint(i % 7)), Value: []byte(fmt.Sprint("order-", i)),
				Headers: []client.Header{{Key: "event-id", Value: []byte(fmt.Sprint("evt-", i))}}}
			msgs = append(msgs, m, m) // two messages (two random IDs), one event
		}
		if _, err := c.Publish(ctx, "orders", msgs...); err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int64
		h, err := idem.Handler(e.db, idem.Config{Dialect: e.dialect, Table: e.table, Consumer: "billing", Key: idem.HeaderKey("event-id")},
			func(ctx context.Context, tx *sql.Tx, m *client.Message) error {
				calls.Add(1)
				return e.effect(ctx, tx, m)
			})
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, c, "orders", "billing", h, client.ConsumerConcurrency(8))
		waitFor(t, "every delivery acknowledged", func() bool { return subscriptionDone(t, c, "orders", "billing") })
		stop()
		counts := e.effectCounts(t)
		if len(counts) != 100 {
			t.Errorf("%d events applied, want 100", len(counts))
		}
		for v, n := range counts {
			if n != 1 {
				t.Errorf("%s applied %d times", v, n)
			}
		}
		if calls.Load() != 100 {
			t.Errorf("handler called %d times, want 100", calls.Load())
		}
		var keys int
		e.db.QueryRow("SELECT count(*) FROM " + e.table + " WHERE consumer = 'billing'").Scan(&keys)
		if keys != 100 {
			t.Errorf("%d keys recorded, want 100", keys)
		}
	})
}

// A handler failing on a message's first delivery: its writes roll back
// with the key, the message comes again and is applied once; with the
// default key (the message ID), which the redelivery keeps.
func TestRedeliveryAfterFailure(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		c := startServer(t).Client()
		ctx := context.Background()
		c.CreateTopic(ctx, "orders", client.TopicConfig{})
		if _, err := c.CreateSubscription(ctx, "orders", "billing", fastQueue()); err != nil {
			t.Fatal(err)
		}
		var msgs []client.Message
		for i := range 20 {
			msgs = append(msgs, client.Message{Value: []byte(fmt.Sprint("order-", i))})
		}
		if _, err := c.Publish(ctx, "orders", msgs...); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		ids := map[string][]string{}
		counts := map[string][]int32{}
		h, err := idem.Handler(e.db, idem.Config{Dialect: e.dialect, Table: e.table, Consumer: "billing"},
			func(ctx context.Context, tx *sql.Tx, m *client.Message) error {
				if err := e.effect(ctx, tx, m); err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				ids[string(m.Value)] = append(ids[string(m.Value)], m.ID)
				counts[string(m.Value)] = append(counts[string(m.Value)], m.DeliveryCount)
				if m.DeliveryCount == 1 {
					return errors.New("the first attempt fails after writing")
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, c, "orders", "billing", h)
		waitFor(t, "every delivery acknowledged", func() bool { return subscriptionDone(t, c, "orders", "billing") })
		stop()
		got := e.effectCounts(t)
		mu.Lock()
		defer mu.Unlock()
		for i := range 20 {
			v := fmt.Sprint("order-", i)
			if got[v] != 1 {
				t.Errorf("%s applied %d times", v, got[v])
			}
			if len(ids[v]) != 2 || ids[v][0] == "" || ids[v][0] != ids[v][1] || counts[v][1] != 2 {
				t.Errorf("%s: ids %v, delivery counts %v", v, ids[v], counts[v])
			}
		}
	})
}

// Messages without an ID (a Producer's batches) are recognised by topic,
// partition and offset, which a redelivery keeps too; a redriven dead
// letter by its original's id (as the broker's ledger recognises them).
func TestMessageKey(t *testing.T) {
	m := &client.Message{Topic: "t", Partition: 2, Offset: 7}
	if k, _ := idem.MessageKey(m); k != "spool:t/2/7" {
		t.Errorf("key without an ID %q", k)
	}
	m.ID = "abc"
	if k, _ := idem.MessageKey(m); k != "abc" {
		t.Errorf("key with an ID %q", k)
	}
	redriven := &client.Message{Topic: "t", ID: "redrive:dlq.t.s/4", Headers: []client.Header{{Key: "spool.original-id", Value: []byte("spool:t/2/7")}}}
	if k, _ := idem.MessageKey(redriven); k != "spool:t/2/7" {
		t.Errorf("key of a redriven dead letter %q, want its original's", k)
	}
	if _, err := idem.HeaderKey("event-id")(m); err == nil || !strings.Contains(err.Error(), "event-id") {
		t.Errorf("HeaderKey without the header: %v", err)
	}
}

// Bad configurations are refused, not panicked on.
func TestHandlerConfig(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := func(context.Context, *sql.Tx, *client.Message) error { return nil }
	for _, cfg := range []idem.Config{
		{Consumer: "x"},
		{Dialect: idem.SQLite},
		{Dialect: idem.SQLite, Consumer: "x", Table: "bad name; DROP"},
	} {
		if _, err := idem.Handler(db, cfg, h); err == nil {
			t.Errorf("Handler(%+v): no error", cfg)
		}
	}
	if _, err := idem.Handler(nil, idem.Config{Dialect: idem.SQLite, Consumer: "x"}, h); err == nil {
		t.Error("Handler without a database: no error")
	}
}

// Prune deletes the consumer's old keys only.
func TestPrune(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		old := time.Now().Add(-2 * time.Hour).UnixMilli()
		for i, row := range [][2]string{{"a", "1"}, {"a", "2"}, {"b", "1"}} {
			at := old
			if i == 1 {
				at = time.Now().UnixMilli()
			}
			if _, err := e.db.Exec("INSERT INTO "+e.table+" (consumer, msg_key, processed_at) VALUES ($1, $2, $3)", row[0], row[1], at); err != nil {
				t.Fatal(err)
			}
		}
		n, err := idem.Prune(ctx, e.db, idem.Config{Dialect: e.dialect, Table: e.table, Consumer: "a"}, time.Hour)
		if n != 1 || err != nil {
			t.Fatalf("Prune: %d, %v", n, err)
		}
		var left int
		e.db.QueryRow("SELECT count(*) FROM " + e.table).Scan(&left)
		if left != 2 {
			t.Errorf("%d keys left, want 2", left)
		}
	})
}

// The child process of TestCrashBetweenCommitAndAck: a consumer whose
// handler, once its transaction committed, never returns — the process is
// killed before the acknowledgement.
const childEnv = "SPOOLTEST_IDEM_CHILD"

func consumerChild() int {
	c, h, err := childHandler(os.Getenv(childEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k, err := c.NewConsumer("orders", "billing", func(ctx context.Context, m *client.Message) error {
		if err := h(ctx, m); err != nil {
			return err
		}
		fmt.Println("committed", string(m.Value))
		select {} // killed here, between the commit and the ack
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k.Run(context.Background())
	return 0
}

// childHandler is a child process's client and idem.Handler applying the
// test's effect, from the environment the test gave it; dialect is
// "postgres" or "sqlite".
func childHandler(dialect string) (*client.Client, client.Handler, error) {
	d, driver := idem.SQLite, "sqlite"
	if dialect == "postgres" {
		d, driver = idem.Postgres, "pgx"
	}
	db, err := sql.Open(driver, os.Getenv("SPOOLTEST_IDEM_DSN"))
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(os.Getenv("SPOOLTEST_IDEM_URL"), client.WithLogger(discard))
	if err != nil {
		return nil, nil, err
	}
	e := &env{effects: os.Getenv("SPOOLTEST_IDEM_EFFECTS")}
	h, err := idem.Handler(db, idem.Config{Dialect: d, Table: os.Getenv("SPOOLTEST_IDEM_TABLE"), Consumer: "billing"}, e.effect)
	return c, h, err
}

// A consumer process killed (SIGKILL) between its handler's commit and the
// acknowledgement: the message is delivered again to the next consumer,
// which recognises it and acknowledges it without applying it again.
func TestCrashBetweenCommitAndAck(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		s := startServer(t)
		c := s.Client()
		ctx := context.Background()
		c.CreateTopic(ctx, "orders", client.TopicConfig{})
		if _, err := c.CreateSubscription(ctx, "orders", "billing", fastQueue()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Publish(ctx, "orders", client.Message{Value: []byte("order-1")}); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+e.dialect.String(), "SPOOLTEST_IDEM_DSN="+e.dsn,
			"SPOOLTEST_IDEM_URL="+s.URL(), "SPOOLTEST_IDEM_TABLE="+e.table, "SPOOLTEST_IDEM_EFFECTS="+e.effects)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line := make([]byte, 64)
		n, _ := out.Read(line) // "committed order-1": the transaction is in
		cmd.Process.Kill()
		cmd.Wait()
		if !strings.HasPrefix(string(line[:n]), "committed order-1") {
			t.Fatalf("the child said %q", line[:n])
		}
		if got := e.effectCounts(t)["order-1"]; got != 1 {
			t.Fatalf("after the crash: applied %d times", got)
		}

		var calls atomic.Int64
		var deliveries []int32
		var mu sync.Mutex
		h, err := idem.Handler(e.db, idem.Config{Dialect: e.dialect, Table: e.table, Consumer: "billing"},
			func(ctx context.Context, tx *sql.Tx, m *client.Message) error {
				calls.Add(1)
				return e.effect(ctx, tx, m)
			})
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, c, "orders", "billing", func(ctx context.Context, m *client.Message) error {
			mu.Lock()
			deliveries = append(deliveries, m.DeliveryCount)
			mu.Unlock()
			return h(ctx, m)
		})
		waitFor(t, "the redelivery acknowledged", func() bool { return subscriptionDone(t, c, "orders", "billing") })
		stop()
		mu.Lock()
		defer mu.Unlock()
		if len(deliveries) != 1 || deliveries[0] < 2 {
			t.Errorf("deliveries after the crash: %v, want one redelivery", deliveries)
		}
		if calls.Load() != 0 {
			t.Errorf("the handler ran %d times after the crash, want 0", calls.Load())
		}
		if got := e.effectCounts(t)["order-1"]; got != 1 {
			t.Errorf("applied %d times, want 1", got)
		}
	})
}

package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/outbox"
)

// Relays cut off at random points under load — their context cancelled,
// their database connections cut or their *sql.DB closed mid-step — and
// started again: every business write ends up on the topic exactly once,
// in order per aggregate.
func TestRelayKilledAtRandom(t *testing.T) {
	forEach(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		e := newEnv(t)
		s := startServer(t)
		c := s.Client()
		createTopic(t, c, "orders", client.TopicConfig{Partitions: 3})
		done := make(chan map[string]int)
		go func() { done <- writeLoad(t, e, "orders", 16, 2000) }()

		var p *proxy
		if e.dialect == outbox.Postgres {
			p = newProxy(t, pgHost(t, e.dsn))
		}
		var want map[string]int
		kills, underLoad := 0, 0
		for i := 0; want == nil || i < 20; i++ {
			select {
			case want = <-done:
			default:
			}
			re := *e
			if p != nil {
				re.dsn = strings.Replace(e.dsn, pgHost(t, e.dsn), p.addr(), 1)
			}
			db := re.open(t)
			r := newRelay(t, e, db, c, func(cfg *outbox.RelayConfig) {
				cfg.BatchSize = 1 + rand.IntN(100)
				cfg.LeaseTTL = 200 * time.Millisecond
			})
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan struct{})
			go func() { r.Run(ctx); close(ran) }()
			time.Sleep(time.Duration(rand.IntN(30_000)) * time.Microsecond)
			if pending(t, e.db, e.table) > 0 {
				underLoad++
			}
			switch rand.IntN(3) {
			case 0:
				cancel()
			case 1:
				if p != nil {
					p.cut()
				} else {
					db.Close()
				}
				time.Sleep(time.Duration(rand.IntN(5_000)) * time.Microsecond)
				cancel()
			default:
				go db.Close() // closing waits for the step in progress
				cancel()
			}
			<-ran
			db.Close()
			if p != nil {
				p.up()
			}
			kills++
		}
		// The last relay drains the outbox.
		stop := runRelay(t, newRelay(t, e, e.db, c, func(cfg *outbox.RelayConfig) { cfg.LeaseTTL = 200 * time.Millisecond }))
		waitFor(t, "an empty outbox", func() bool { return pending(t, e.db, e.table) == 0 })
		stop()
		checkExactlyOnce(t, c, "orders", want)
		t.Logf("%d relays cut off, %d with events pending", kills, underLoad)
		if underLoad == 0 {
			t.Error("no relay was cut off with events pending: the test proved nothing")
		}
	})
}

// The child process of TestRelaySIGKILL runs a relay until it is killed.
const childEnv = "SPOOLTEST_OUTBOX_CHILD"

func relayChild() int {
	var d outbox.Dialect
	driver := "sqlite"
	switch os.Getenv(childEnv) {
	case "postgres":
		d, driver = outbox.Postgres, "pgx"
	case "sqlite":
		d = outbox.SQLite
	default:
		fmt.Fprintln(os.Stderr, "unknown dialect", os.Getenv(childEnv))
		return 2
	}
	db, err := sql.Open(driver, os.Getenv("SPOOLTEST_OUTBOX_DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := client.New(os.Getenv("SPOOLTEST_OUTBOX_URL"), client.WithLogger(discard), client.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r, err := outbox.NewRelay(db, c, outbox.RelayConfig{
		Dialect: d, Table: os.Getenv("SPOOLTEST_OUTBOX_TABLE"), BatchSize: 1 + rand.IntN(200),
		PollInterval: 10 * time.Millisecond, LeaseTTL: 300 * time.Millisecond, Logger: discard,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	r.Run(ctx)
	return 0
}

// A relay in another process killed with SIGKILL at random points under
// load, again and again, then started again: every business write ends up
// on the topic exactly once, in order per aggregate.
func TestRelaySIGKILL(t *testing.T) {
	forEach(t, func(t *testing.T, newEnv func(testing.TB) *env) {
		e := newEnv(t)
		s := startServer(t)
		c := s.Client()
		createTopic(t, c, "orders", client.TopicConfig{Partitions: 3})
		done := make(chan map[string]int)
		events := 20_000
		if e.dialect == outbox.SQLite {
			events = 5_000 // one writer at a time: slower
		}
		go func() { done <- writeLoad(t, e, "orders", 16, events) }()
		var want map[string]int
		kills, underLoad, published := 0, 0, 0
		for want == nil || kills < 6 {
			select {
			case want = <-done:
			default:
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(),
				childEnv+"="+e.dialect.String(),
				"SPOOLTEST_OUTBOX_DSN="+e.dsn,
				"SPOOLTEST_OUTBOX_TABLE="+e.table,
				"SPOOLTEST_OUTBOX_URL="+s.URL(),
			)
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
			n := pending(t, e.db, e.table)
			cmd.Process.Kill() // SIGKILL
			cmd.Wait()
			kills++
			if n > 0 {
				underLoad++
			}
			if want != nil && kills > 30 {
				break // a slow machine: the last relay drains the rest
			}
		}
		before := pending(t, e.db, e.table)
		for _, n := range want {
			published += n
		}
		published -= before
		if underLoad == 0 || published == 0 {
			t.Errorf("%d of %d relay processes killed with events pending, %d events published by them: the test proved nothing", underLoad, kills, published)
		}
		stop := runRelay(t, newRelay(t, e, e.db, c, func(cfg *outbox.RelayConfig) { cfg.LeaseTTL = 300 * time.Millisecond }))
		waitFor(t, "an empty outbox", func() bool { return pending(t, e.db, e.table) == 0 })
		stop()
		checkExactlyOnce(t, c, "orders", want)
		t.Logf("%d relay processes killed (%d with events pending); they published %d events, %d were left for the last relay", kills, underLoad, published, before)
	})
}

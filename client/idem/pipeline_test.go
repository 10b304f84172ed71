package idem_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/idem"
	"github.com/spoolmq/spool/client/outbox"
)

// The child process of TestPipelineUnderCrashes: a consumer applying the
// events with idem.Handler until it is killed.
const pipeChildEnv = "SPOOLTEST_IDEM_PIPE"

func pipelineChild() int {
	c, h, err := childHandler(os.Getenv(pipeChildEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k, err := c.NewConsumer("orders", "billing", h, client.ConsumerConcurrency(1+rand.IntN(8)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	k.Run(context.Background())
	return 0
}

// The whole path under crashes: business transactions write events into
// an outbox; relays cut off at random points publish them; consumer
// processes killed with SIGKILL at random points apply them with
// idem.Handler. Every business write is applied exactly once — none lost,
// none twice — and the kills happened with work in flight.
func TestPipelineUnderCrashes(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := startServer(t)
		c := s.Client()
		if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 3}); err != nil {
			t.Fatal(err)
		}
		sub := fastQueue()
		sub.AckTimeout = time.Second
		sub.MaxDeliveries = 1000
		if _, err := c.CreateSubscription(ctx, "orders", "billing", sub); err != nil {
			t.Fatal(err)
		}
		obx := randomName("outbox_")
		if err := outbox.Migrate(ctx, e.db, e.dialect, outbox.Table(obx)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.db.Exec("DROP TABLE IF EXISTS " + obx) })

		// Business transactions, each one event, from two writers.
		const writes = 1500
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				for i := w; i < writes; i += 2 {
					tx, err := e.db.BeginTx(ctx, nil)
					if err != nil {
						t.Error(err)
						return
					}
					ev := outbox.Event{Topic: "orders", Aggregate: "agg-" + strconv.Itoa(i%16), Value: []byte("order-" + strconv.Itoa(i))}
					if err := outbox.WriteTable(ctx, tx, obx, ev); err != nil {
						tx.Rollback()
						t.Error(err)
						return
					}
					if err := tx.Commit(); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}

		// Relays, each cut off after a random moment.
		relaysDone := make(chan struct{})
		stopRelays := make(chan struct{})
		relayCfg := outbox.RelayConfig{Dialect: e.dialect, Table: obx, Logger: discard, PollInterval: 10 * time.Millisecond,
			ErrorBackoffMax: 50 * time.Millisecond, LeaseTTL: 200 * time.Millisecond}
		relayCuts := 0
		go func() {
			defer close(relaysDone)
			for {
				select {
				case <-stopRelays:
					return
				default:
				}
				cfg := relayCfg
				cfg.BatchSize = 1 + rand.IntN(64)
				r, err := outbox.NewRelay(e.db, c, cfg)
				if err != nil {
					t.Error(err)
					return
				}
				rctx, cancel := context.WithTimeout(ctx, time.Duration(5+rand.IntN(60))*time.Millisecond)
				r.Run(rctx)
				cancel()
				relayCuts++
			}
		}()

		// Consumer processes, each killed after a random moment.
		kills, midway := 0, 0
		for applied := 0; kills < 8 || applied < writes/2; kills++ {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), pipeChildEnv+"="+e.dialect.String(), "SPOOLTEST_IDEM_DSN="+e.dsn,
				"SPOOLTEST_IDEM_URL="+s.URL(), "SPOOLTEST_IDEM_TABLE="+e.table, "SPOOLTEST_IDEM_EFFECTS="+e.effects)
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(150+rand.IntN(500)) * time.Millisecond)
			cmd.Process.Kill() // SIGKILL
			cmd.Wait()
			now := 0
			for _, n := range e.effectCounts(t) {
				now += n
			}
			if now > applied && now < writes {
				midway++ // it applied some, and work was left
			}
			applied = now
			if kills > 60 {
				break // a slow machine: the last consumer finishes
			}
		}
		wg.Wait()
		close(stopRelays)
		<-relaysDone

		// The last relay and consumer finish the work.
		stopRelay := runRelay(t, e, c, obx, relayCfg)
		waitFor(t, "an empty outbox", func() bool { return outboxPending(t, e.db, obx) == 0 })
		stopRelay()
		h, err := idem.Handler(e.db, idem.Config{Dialect: e.dialect, Table: e.table, Consumer: "billing"}, e.effect)
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, c, "orders", "billing", h)
		waitFor(t, "every event acknowledged", func() bool { return subscriptionDone(t, c, "orders", "billing") })
		stop()

		got := e.effectCounts(t)
		for i := range writes {
			if n := got["order-"+strconv.Itoa(i)]; n != 1 {
				t.Errorf("order-%d applied %d times, want 1", i, n)
			}
		}
		if len(got) != writes {
			t.Errorf("%d distinct effects, want %d", len(got), writes)
		}
		t.Logf("%d business writes; %d relays cut off; %d consumer processes killed, %d of them with events applied and work left", writes, relayCuts, kills, midway)
		if midway == 0 || relayCuts == 0 {
			t.Error("no consumer was killed with work under way, or no relay cut off: the test proved nothing")
		}
	})
}

// runRelay runs a relay on the test's database until stop.
func runRelay(t testing.TB, e *env, c *client.Client, table string, cfg outbox.RelayConfig) (stop func()) {
	r, err := outbox.NewRelay(e.db, c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// outboxPending counts the outbox's pending events.
func outboxPending(t testing.TB, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table + " WHERE state = 0").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

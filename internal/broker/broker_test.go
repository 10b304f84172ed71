package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	t    *testing.T
	dir  string
	clk  *clock.Fake
	st   *state.Store
	b    *Broker
	opts func(*Config)
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, dir: t.TempDir(), clk: clock.NewFake(time.Unix(1_700_000_000, 0))}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	st, err := state.Open(filepath.Join(e.dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := Config{DataDir: e.dir, State: st, Clock: e.clk, Logger: quiet, MaintenanceInterval: time.Hour}
	if e.opts != nil {
		e.opts(&cfg)
	}
	b, err := Open(cfg)
	if err != nil {
		st.Close()
		e.t.Fatal(err)
	}
	e.st, e.b = st, b
}

func (e *env) close() {
	if e.b != nil {
		if err := e.b.Close(); err != nil {
			e.t.Error(err)
		}
		e.st.Close()
		e.b, e.st = nil, nil
	}
}

func (e *env) restart() { e.close(); e.open() }

func msgs(prefix string, n int) []Message {
	out := make([]Message, n)
	for i := range out {
		out[i] = Message{Value: []byte(fmt.Sprintf("%s-%d", prefix, i)), Partition: -1}
	}
	return out
}

// next returns the next event or fails after a timeout.
func next(t *testing.T, s *Session) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("next: %v", err)
	}
	return ev
}

func TestPublishConsumeCommitRestart(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("orders", catalog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateSubscription("orders", "billing", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	res, err := e.b.Publish("orders", msgs("a", 10))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Partition != res[0].Partition || r.Offset != int64(i) {
			t.Fatalf("keyless request not in one partition in order: %+v", res)
		}
	}
	sess, err := e.b.Join(JoinRequest{Topic: "orders", Subscription: "billing", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, sess)
	if ev.Assignment == nil || len(ev.Assignment.Partitions) != 2 {
		t.Fatalf("first event %+v", ev)
	}
	gen := ev.Assignment.Generation
	ev = next(t, sess)
	if len(ev.Deliveries) != 10 {
		t.Fatalf("want 10 deliveries, got %+v", ev)
	}
	p := ev.Deliveries[0].Partition
	if err := sess.Commit(1, gen, map[int32]int64{p: 4}); err != nil {
		t.Fatal(err)
	}
	sess.Leave()
	e.restart()
	sess, err = e.b.Join(JoinRequest{Topic: "orders", Subscription: "billing", Credits: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Leave()
	ev = next(t, sess)
	for _, ps := range ev.Assignment.Partitions {
		if ps.Partition == p && ps.Offset != 4 {
			t.Fatalf("resumed at %d, want 4", ps.Offset)
		}
	}
	ev = next(t, sess)
	if len(ev.Deliveries) != 6 || ev.Deliveries[0].Offset != 4 || string(ev.Deliveries[0].Value) != "a-4" {
		t.Fatalf("after restart: %+v", ev.Deliveries)
	}
}

func TestDedupSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 3})
	m := []Message{{Value: []byte("x"), ID: "order-1", Partition: -1}, {Value: []byte("y"), ID: "order-1", Partition: -1}}
	res, err := e.b.Publish("t", m)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || !res[1].Duplicate || res[1].Offset != res[0].Offset || res[1].Partition != res[0].Partition {
		t.Fatalf("same id twice in one request: %+v", res)
	}
	e.restart()
	res2, err := e.b.Publish("t", m[:1])
	if err != nil {
		t.Fatal(err)
	}
	if !res2[0].Duplicate || res2[0].Offset != res[0].Offset || res2[0].Partition != res[0].Partition {
		t.Fatalf("after restart: %+v, original %+v", res2, res)
	}
	// Outside the window the id is new again.
	e.clk.Advance(3 * time.Minute)
	res3, err := e.b.Publish("t", m[:1])
	if err != nil || res3[0].Duplicate {
		t.Fatalf("after the window: %+v %v", res3, err)
	}
}

func TestTopicFullDiscardNew(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("small", catalog.TopicConfig{MaxMessages: 5, Discard: catalog.DiscardNew})
	if _, err := e.b.Publish("small", msgs("a", 5)); err != nil {
		t.Fatal(err)
	}
	_, err := e.b.Publish("small", msgs("b", 1))
	var ee *errs.Error
	if !errs.Is(err, errs.TopicFull) || !asErr(err, &ee) || !ee.Retriable() || ee.RetryAfter <= 0 {
		t.Fatalf("want retriable topic_full with retry-after, got %v", err)
	}
}

func asErr(err error, target **errs.Error) bool {
	e, ok := err.(*errs.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestFilterAndFanOut(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("ev", catalog.TopicConfig{})
	e.b.CreateSubscription("ev", "eu", catalog.SubConfig{Filter: "orders.eu.*"})
	e.b.CreateSubscription("ev", "all", catalog.SubConfig{})
	var ms []Message
	for _, s := range []string{"orders.eu.created", "orders.us.created", "orders.eu.deleted", ""} {
		ms = append(ms, Message{Value: []byte(s), Subject: s, Partition: -1})
	}
	if _, err := e.b.Publish("ev", ms); err != nil {
		t.Fatal(err)
	}
	for sub, want := range map[string]int{"eu": 2, "all": 4} {
		sess, err := e.b.Join(JoinRequest{Topic: "ev", Subscription: sub, Credits: 10})
		if err != nil {
			t.Fatal(err)
		}
		next(t, sess)
		ev := next(t, sess)
		if len(ev.Deliveries) != want {
			t.Fatalf("%s: %d deliveries, want %d", sub, len(ev.Deliveries), want)
		}
		sess.Leave()
	}
}

package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/saga"
	"github.com/spoolmq/spool/client/sqldialect"
	"github.com/spoolmq/spool/internal/spooltest"
)

// Sagas of three steps (a, b, c), each on its own topic, against a real
// server. The steps' functions record what they did in the world.

var quiet = slog.New(slog.DiscardHandler)

type world struct {
	t      *testing.T
	c      *client.Client
	ledger saga.Ledger

	mu       sync.Mutex
	events   map[string][]string // saga → "do:a", "undo:b", …, effects applied
	attempts map[string]int      // "saga:do:b" → calls, failed ones included
	handled  map[string]int      // topic → messages handled
	outcomes map[string][]saga.Outcome
	// behaviour, per saga and step
	act  func(ctx context.Context, x *saga.Exec, attempt int) error
	comp func(ctx context.Context, x *saga.Exec, attempt int) error
}

func newWorld(t *testing.T) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a real server")
	}
	w := &world{
		t: t, c: spooltest.StartServer(t).Client(), ledger: saga.NewMemoryLedger(),
		events: map[string][]string{}, attempts: map[string]int{}, handled: map[string]int{}, outcomes: map[string][]saga.Outcome{},
	}
	return w
}

func (w *world) record(kind string, x *saga.Exec) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := fmt.Sprintf("%s:%s:%s", x.SagaID, kind, x.Name)
	w.attempts[k]++
	return w.attempts[k]
}

func (w *world) applied(kind string, x *saga.Exec) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events[x.SagaID] = append(w.events[x.SagaID], kind+":"+x.Name)
}

func (w *world) definition(timeoutB time.Duration) saga.Definition {
	step := func(name string) saga.Step {
		return saga.Step{
			Name: name, Topic: "step." + name,
			Action: func(ctx context.Context, x *saga.Exec) error {
				n := w.record("do", x)
				if w.act != nil {
					if err := w.act(ctx, x, n); err != nil {
						return err
					}
				}
				x.Data = append(x.Data, "+"+name...)
				w.applied("do", x)
				return nil
			},
			Compensate: func(ctx context.Context, x *saga.Exec) error {
				n := w.record("undo", x)
				if w.comp != nil {
					if err := w.comp(ctx, x, n); err != nil {
						return err
					}
				}
				w.applied("undo", x)
				return nil
			},
		}
	}
	def := saga.Definition{Name: "checkout", Steps: []saga.Step{step("a"), step("b"), step("c")}, ResultTopic: "checkout.results"}
	def.Steps[1].Timeout = timeoutB
	return def
}

func (w *world) newSaga(def saga.Definition) *saga.Saga {
	s, err := saga.New(w.c, def, w.ledger, saga.WithLogger(quiet))
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

var subConfig = client.SubscriptionConfig{
	Mode:          client.ModeQueue,
	AckTimeout:    time.Second,
	MaxDeliveries: 5,
	Backoff:       client.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Jitter: client.JitterNone},
}

// setup creates the topics, the subscriptions, and a consumer of the
// results for the rest of the test.
func (w *world) setup(s *saga.Saga) {
	ctx := context.Background()
	if err := s.Setup(ctx, "svc", client.TopicConfig{Partitions: 2}, subConfig); err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.c.CreateSubscription(ctx, "checkout.results", "watch", subConfig); err != nil {
		w.t.Fatal(err)
	}
	stop := w.run("checkout.results", "watch", func(_ context.Context, m *client.Message) error {
		o, err := saga.DecodeOutcome(m)
		if err != nil {
			return client.Reject(err)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.outcomes[o.Saga] = append(w.outcomes[o.Saga], o)
		return nil
	})
	w.t.Cleanup(stop)
}

// run consumes topic/sub with h until the returned stop is called.
func (w *world) run(topic, sub string, h client.Handler) (stop func()) {
	k, err := w.c.NewConsumer(topic, sub, h, client.ConsumerConcurrency(4), client.ConsumerShutdownTimeout(200*time.Millisecond))
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				w.t.Errorf("Run %s: %v", topic, err)
			}
		})
	}
}

// services runs the consumers of the three step topics (one "service"
// per step, all with s) until the returned stop is called.
func (w *world) services(s *saga.Saga) (stop func()) {
	var stops []func()
	for _, name := range []string{"a", "b", "c"} {
		topic := "step." + name
		h := s.Handler()
		stops = append(stops, w.run(topic, "svc", func(ctx context.Context, m *client.Message) error {
			defer func() {
				w.mu.Lock()
				w.handled[topic]++
				w.mu.Unlock()
			}()
			return h(ctx, m)
		}))
	}
	stop = func() {
		var wg sync.WaitGroup
		for _, f := range stops {
			wg.Go(f)
		}
		wg.Wait()
	}
	w.t.Cleanup(stop)
	return stop
}

func (w *world) waitFor(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *world) outcome(id string) saga.Outcome {
	w.t.Helper()
	w.waitFor("the outcome of "+id, func() bool { return len(w.outcomes[id]) > 0 })
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.outcomes[id][0]
}

func (w *world) checkEvents(id string, want ...string) {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if got := w.events[id]; !slices.Equal(got, want) {
		w.t.Errorf("saga %s: effects %v, want %v", id, got, want)
	}
}

// redeliver publishes a copy of a saga message (a new message id, so
// that the topic does not drop it) and waits until it was handled.
func (w *world) redeliver(id string, step int, kind string, data string) {
	w.t.Helper()
	v, _ := json.Marshal(map[string]any{"saga": id, "def": "checkout", "step": step, "kind": kind, "data": []byte(data)})
	topic := "step." + string(rune('a'+step))
	w.mu.Lock()
	before := w.handled[topic]
	w.mu.Unlock()
	if _, err := w.c.Publish(context.Background(), topic, client.Message{Key: []byte(id), Value: v}); err != nil {
		w.t.Fatal(err)
	}
	w.waitFor("the copy handled", func() bool { return w.handled[topic] > before })
	time.Sleep(200 * time.Millisecond) // whatever it wrongly caused would be under way
}

var errDown = errors.New("inventory service unavailable")

// TestIntegrationSagaCompletes: every step runs once, in order, a
// transient failure retried; the data flows through; duplicates of a
// step's command are no-ops.
func TestIntegrationSagaCompletes(t *testing.T) {
	w := newWorld(t)
	w.act = func(_ context.Context, x *saga.Exec, attempt int) error {
		if x.Name == "b" && attempt == 1 {
			return errDown // retried: Attempts is 3
		}
		return nil
	}
	s := w.newSaga(w.definition(0))
	w.setup(s)
	w.services(s)
	if err := s.Start(context.Background(), "o1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if o := w.outcome("o1"); o.Status != saga.Completed || string(o.Data) != "x+a+b+c" {
		t.Fatalf("outcome %+v", o)
	}
	w.checkEvents("o1", "do:a", "do:b", "do:c")
	// Duplicates: the command of step b again, then a second Start.
	w.redeliver("o1", 1, "do", "x+a")
	if err := s.Start(context.Background(), "o1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	w.redeliver("o1", 0, "do", "x")
	w.checkEvents("o1", "do:a", "do:b", "do:c")
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.outcomes["o1"]); n != 1 {
		t.Errorf("%d outcomes", n)
	}
	if n := w.attempts["o1:do:b"]; n != 2 {
		t.Errorf("step b called %d times, want 2 (one transient failure)", n)
	}
}

// TestIntegrationSagaCompensates: step c fails, so b and then a are
// compensated, once each, b's compensation retried after a transient
// failure; a duplicate compensation is a no-op. A compensation refused
// for good is dead-lettered with its reason and stops the chain.
func TestIntegrationSagaCompensates(t *testing.T) {
	w := newWorld(t)
	w.act = func(_ context.Context, x *saga.Exec, _ int) error {
		if x.Name == "c" {
			return saga.Abort(errors.New("card declined"))
		}
		return nil
	}
	w.comp = func(_ context.Context, x *saga.Exec, attempt int) error {
		switch {
		case x.Name == "b" && x.SagaID == "o3":
			return saga.Abort(errors.New("refund refused"))
		case x.Name == "b" && attempt == 1:
			return errDown
		}
		return nil
	}
	s := w.newSaga(w.definition(0))
	w.setup(s)
	w.services(s)
	if err := s.Start(context.Background(), "o2", []byte("x")); err != nil {
		t.Fatal(err)
	}
	o := w.outcome("o2")
	if o.Status != saga.Aborted || o.Reason != "step c failed: card declined" {
		t.Fatalf("outcome %+v", o)
	}
	w.checkEvents("o2", "do:a", "do:b", "undo:b", "undo:a")
	w.redeliver("o2", 0, "undo", "x+a+b")
	w.redeliver("o2", 1, "undo", "x+a+b")
	w.checkEvents("o2", "do:a", "do:b", "undo:b", "undo:a")
	w.mu.Lock()
	if n := w.attempts["o2:undo:b"]; n != 2 {
		t.Errorf("compensation of b called %d times, want 2 (one transient failure)", n)
	}
	if n := w.attempts["o2:do:c"]; n != 1 {
		t.Errorf("aborted step c called %d times, want 1", n)
	}
	w.mu.Unlock()

	if err := s.Start(context.Background(), "o3", []byte("y")); err != nil {
		t.Fatal(err)
	}
	var dead []client.DeadLetter
	w.waitFor("the refused compensation dead-lettered", func() bool {
		var err error
		dead, _, err = w.c.ListDeadLetters(context.Background(), "step.b", "svc", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(dead) > 0
	})
	if d := dead[0]; d.Reason != client.ReasonRejected || !strings.Contains(d.Error, "refund refused") || !strings.Contains(d.Error, "compensating step b") {
		t.Errorf("dead letter %+v", d)
	}
	w.checkEvents("o3", "do:a", "do:b")
}

// TestIntegrationSagaTimeout: step b does not complete within its
// timeout, so a is compensated and the saga aborted; when b's action
// completes late, b is compensated too, and c never runs.
func TestIntegrationSagaTimeout(t *testing.T) {
	w := newWorld(t)
	release := make(chan struct{})
	w.act = func(ctx context.Context, x *saga.Exec, _ int) error {
		if x.Name == "b" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	s := w.newSaga(w.definition(300 * time.Millisecond))
	w.setup(s)
	w.services(s)
	if err := s.Start(context.Background(), "t1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if o := w.outcome("t1"); o.Status != saga.Aborted || o.Reason != "step b timed out" {
		t.Fatalf("outcome %+v", o)
	}
	w.checkEvents("t1", "do:a", "undo:a")
	close(release)
	w.waitFor("the late step compensated", func() bool { return len(w.events["t1"]) == 4 })
	w.checkEvents("t1", "do:a", "undo:a", "do:b", "undo:b")
	w.redeliver("t1", 1, "timeout", "x+a")
	w.checkEvents("t1", "do:a", "undo:a", "do:b", "undo:b")
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.outcomes["t1"]); n != 1 {
		t.Errorf("%d outcomes", n)
	}
}

// TestIntegrationSagaResumes: the services stop ("crash") while step b
// runs; new instances, sharing only the ledger, take the saga over from
// its messages and complete it, each step applied once.
func TestIntegrationSagaResumes(t *testing.T) {
	w := newWorld(t)
	entered := make(chan struct{})
	var once sync.Once
	w.act = func(ctx context.Context, x *saga.Exec, attempt int) error {
		if x.Name == "b" && attempt == 1 {
			once.Do(func() { close(entered) })
			<-ctx.Done() // the process dies under it
			return ctx.Err()
		}
		return nil
	}
	def := w.definition(0)
	first := w.newSaga(def)
	w.setup(first)
	stop := w.services(first)
	if err := first.Start(context.Background(), "r1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	<-entered
	stop()
	w.checkEvents("r1", "do:a")
	second := w.newSaga(w.definition(0))
	w.services(second)
	if o := w.outcome("r1"); o.Status != saga.Completed || string(o.Data) != "x+a+b+c" {
		t.Fatalf("outcome %+v", o)
	}
	w.checkEvents("r1", "do:a", "do:b", "do:c")
}

// TestIntegrationSagaResumesFromSQLLedger: as TestIntegrationSagaResumes,
// with the ledger in an SQLite file that the second instance opens anew
// (a restarted process): nothing of the first instance's memory is left.
func TestIntegrationSagaResumesFromSQLLedger(t *testing.T) {
	w := newWorld(t)
	dsn := "file:" + filepath.Join(t.TempDir(), "svc.db") + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)"
	ledgerIn := func() saga.Ledger {
		db := openDB(t, "sqlite", dsn)
		if err := saga.MigrateSQLLedger(context.Background(), db, sqldialect.SQLite, saga.DefaultLedgerTable); err != nil {
			t.Fatal(err)
		}
		l, err := saga.NewSQLLedger(db, sqldialect.SQLite, saga.DefaultLedgerTable)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	entered := make(chan struct{})
	var once sync.Once
	w.act = func(ctx context.Context, x *saga.Exec, attempt int) error {
		if x.Name == "b" && attempt == 1 {
			once.Do(func() { close(entered) })
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	w.ledger = ledgerIn()
	first := w.newSaga(w.definition(0))
	w.setup(first)
	stop := w.services(first)
	if err := first.Start(context.Background(), "r1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	<-entered
	stop()
	w.ledger = ledgerIn()
	second := w.newSaga(w.definition(0))
	w.services(second)
	if o := w.outcome("r1"); o.Status != saga.Completed || string(o.Data) != "x+a+b+c" {
		t.Fatalf("outcome %+v", o)
	}
	w.checkEvents("r1", "do:a", "do:b", "do:c")
}

func TestNewRejectsBadDefinitions(t *testing.T) {
	c, err := client.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := saga.NewMemoryLedger()
	for _, def := range []saga.Definition{
		{Name: ""},
		{Name: "x"},
		{Name: "a/b", Steps: []saga.Step{{Name: "s", Topic: "t"}}},
		{Name: "x", Steps: []saga.Step{{Name: "s", Topic: "t"}, {Name: "s", Topic: "u"}}},
		{Name: "x", Steps: []saga.Step{{Name: "s"}}},
		{Name: "x", Steps: []saga.Step{{Name: "s", Topic: "t", Timeout: -1}}},
	} {
		if _, err := saga.New(c, def, l); err == nil {
			t.Errorf("%+v accepted", def)
		}
	}
	s, err := saga.New(c, saga.Definition{Name: "x", Steps: []saga.Step{{Name: "s", Topic: "t"}}}, l)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background(), "a/b", nil); err == nil {
		t.Error("a saga id with a slash accepted")
	}
	// Messages that are not the saga's are rejected.
	h := s.Handler()
	for _, v := range []string{"not json", `{"saga":"1","def":"y","step":0,"kind":"do"}`, `{"saga":"1","def":"x","step":5,"kind":"do"}`,
		`{"saga":"1","def":"x","step":0,"kind":"what"}`} {
		var rj *client.RejectError
		if err := h(context.Background(), &client.Message{Topic: "t", Value: []byte(v)}); !errors.As(err, &rj) {
			t.Errorf("%s: %v", v, err)
		}
	}
}

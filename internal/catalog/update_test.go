package catalog

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/queue"
)

func TestUpdateSub(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	c, err := Load(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutTopic(Topic{Name: "jobs", ID: "id-1", Config: DefaultDefaults().Fill(TopicConfig{Partitions: 2})}, true); err != nil {
		t.Fatal(err)
	}
	created := time.Unix(100, 5).UTC()
	sub := Subscription{Topic: "jobs", Name: "w", Created: created, Config: SubConfig{Mode: ModeQueue, Filter: "a.#"}}
	if err := c.CreateSub(sub, []int64{3, 4}); err != nil {
		t.Fatal(err)
	}
	sub.Config.Filter = "b.*"
	sub.Config.Queue.MaxInFlight = 7
	sub.Config.Queue.Backoff = queue.Backoff{Initial: 2 * time.Second, Jitter: queue.JitterNone}
	if err := c.UpdateSub(sub); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Sub("jobs", "w"); got.Config.Filter != "b.*" || got.Config.Queue.MaxInFlight != 7 {
		t.Fatalf("cached after update: %+v", got.Config)
	}

	// Unknown subscriptions are not created by an update.
	missing := Subscription{Topic: "jobs", Name: "nobody", Created: created}
	if err := c.UpdateSub(missing); !errs.Is(err, errs.SubNotFound) {
		t.Fatalf("update of a missing subscription: %v", err)
	}
	if _, ok := c.Sub("jobs", "nobody"); ok {
		t.Fatal("update created a subscription")
	}
	// A subscription deleted and created again is another one: an update
	// meant for the old one is refused and changes nothing.
	stale := sub
	stale.Created = created.Add(-time.Second)
	stale.Config.Filter = "stale"
	if err := c.UpdateSub(stale); !errs.Is(err, errs.SubNotFound) {
		t.Fatalf("update of another incarnation: %v", err)
	}
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	c, err = Load(st)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := c.Sub("jobs", "w")
	if !ok || got.Config.Filter != "b.*" || got.Config.Queue.MaxInFlight != 7 || got.Config.Queue.Backoff.Initial != 2*time.Second ||
		got.Config.Queue.Backoff.Jitter != queue.JitterNone || !got.Created.Equal(created) {
		t.Fatalf("after reload: %+v", got)
	}
	offs, err := c.Offsets("jobs", "w")
	if err != nil || offs[0] != 3 || offs[1] != 4 {
		t.Fatalf("offsets after update: %v %v", offs, err)
	}
}

func TestCheckSubChange(t *testing.T) {
	old := SubConfig{Mode: ModeQueue, Start: Position{Kind: AtTime, Time: time.Unix(5, 0).UTC()},
		Queue: QueueConfig{Ordering: queue.OrderKey, DeadLetterTopic: "dead"}}
	changeable := old
	changeable.Filter = "x.#"
	changeable.Start.Time = time.Unix(5, 0).In(time.FixedZone("X", 3600)) // the same instant
	changeable.Queue.AckTimeout, changeable.Queue.MaxDeliveries, changeable.Queue.MaxInFlight = time.Minute, 2, 9
	changeable.Queue.RateLimit, changeable.Queue.RateBurst, changeable.Queue.OnExpired = 3, 4, queue.ExpireDrop
	if err := CheckSubChange(old, changeable); err != nil {
		t.Fatalf("changeable settings refused: %v", err)
	}
	for want, mut := range map[string]func(*SubConfig){
		"mode":              func(c *SubConfig) { c.Mode = ModeStream },
		"start":             func(c *SubConfig) { c.Start = Position{Kind: Latest} },
		"ordering":          func(c *SubConfig) { c.Queue.Ordering = queue.OrderNone },
		"dead-letter topic": func(c *SubConfig) { c.Queue.DeadLetterTopic = "" },
	} {
		next := old
		mut(&next)
		err := CheckSubChange(old, next)
		if !errs.Is(err, errs.InvalidArgument) || !strings.HasPrefix(err.Error(), want+" cannot change") {
			t.Errorf("%s: %v", want, err)
		}
	}
}

func TestRateLimitFinite(t *testing.T) {
	for _, r := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1} {
		err := (SubConfig{Mode: ModeQueue, Queue: QueueConfig{RateLimit: r}}).Validate()
		if !errs.Is(err, errs.InvalidArgument) {
			t.Errorf("rate limit %v: %v", r, err)
		}
	}
	if err := (SubConfig{Mode: ModeQueue, Queue: QueueConfig{RateLimit: 0.5}}).Validate(); err != nil {
		t.Error(err)
	}
}

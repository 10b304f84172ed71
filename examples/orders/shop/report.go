package shop

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spoolmq/spool/client"
)

// Report is a read model built only from the orders topic: each order's
// state as its events tell it. Replay builds one from the topic's first
// event, long after the events were published, and keeps it up to date.
type Report struct {
	Subscription string // the stream subscription it reads

	mu     sync.Mutex
	states map[string]string // order → state
	events int
}

// apply is the report's handler: a stream consumer calls it in order per
// partition (an order's events share a key, hence a partition).
func (r *Report) apply(_ context.Context, m *client.Message) error {
	var ev Event
	if err := json.Unmarshal(m.Value, &ev); err != nil || ev.Order == "" {
		return nil // not ours: a read model skips what it does not know
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events++
	switch ev.Type {
	case OrderCreated:
		if _, ok := r.states[ev.Order]; !ok {
			r.states[ev.Order] = StatePending
		}
	case OrderCompleted:
		r.states[ev.Order] = StateCompleted
	case OrderCancelled:
		r.states[ev.Order] = StateCancelled
	}
	return nil
}

// States returns a copy of the report's order states.
func (r *Report) States() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.states)
}

// String is the report as text: counts by state, then every order.
func (r *Report) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	by := map[string]int{}
	for _, st := range r.states {
		by[st]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "read model %s: %d events, %d orders:", r.Subscription, r.events, len(r.states))
	for _, st := range slices.Sorted(maps.Keys(by)) {
		fmt.Fprintf(&b, " %d %s", by[st], st)
	}
	b.WriteString("\n")
	ids := slices.SortedFunc(maps.Keys(r.states), func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	for _, id := range ids {
		fmt.Fprintf(&b, "  %-6s %s\n", id, r.states[id])
	}
	return b.String()
}

// Replay builds a new read model from the orders topic: it creates a new
// stream subscription starting at the topic's earliest event and consumes
// it into a Report, which then follows new events. A second call returns
// the same Report.
func (o *Orders) Replay(ctx context.Context) (*Report, error) {
	o.rmu.Lock()
	defer o.rmu.Unlock()
	if o.report != nil {
		return o.report, nil
	}
	r := &Report{Subscription: "report-" + time.Now().UTC().Format("150405"), states: map[string]string{}}
	if _, err := o.c.CreateSubscription(ctx, TopicOrders, r.Subscription,
		client.SubscriptionConfig{Mode: client.ModeStream, Start: client.Earliest()}); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	k, err := o.c.NewConsumer(TopicOrders, r.Subscription, r.apply, client.ConsumerShutdownTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	if err := o.spawn(func(ctx context.Context) {
		if err := k.Run(ctx); err != nil && ctx.Err() == nil {
			o.log.Error("replay consumer stopped", "err", err)
		}
	}); err != nil {
		return nil, err
	}
	o.log.Info("replaying the orders topic from its first event into a new read model", "subscription", r.Subscription)
	o.report = r
	return r, nil
}

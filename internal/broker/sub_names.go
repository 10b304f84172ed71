package broker

// Subscriptions by name across topics, for front ends whose groups span
// topics (a Kafka group "g" is the subscriptions named "g" on every topic
// it consumes): list them, list every name, delete a name's.

import (
	"sort"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// NamedSub is one of the subscriptions of a name.
type NamedSub struct {
	Topic string
	Mode  catalog.Mode
	// Members is the number of members consuming it through sessions.
	Members int
}

// SubName summarizes the subscriptions of one name across topics.
type SubName struct {
	Name    string
	Stream  int // stream subscriptions of that name
	Queue   int // queue subscriptions of that name
	Members int // session members of its stream subscriptions
}

// SubsNamed returns the subscriptions named name, one per topic that has
// one.
func (b *Broker) SubsNamed(name string) []NamedSub {
	var out []NamedSub
	now := b.clock.Now()
	for _, t := range b.topicList() {
		t.subsMu.Lock()
		s := t.subs[name]
		t.subsMu.Unlock()
		if s == nil {
			continue
		}
		ns := NamedSub{Topic: t.meta.Name, Mode: s.meta.Config.Mode}
		s.mu.Lock()
		if !s.deleted {
			s.applyLocked(s.coord.Tick(now))
			ns.Members = s.coord.Len()
		}
		s.mu.Unlock()
		out = append(out, ns)
	}
	return out
}

// SubNames lists every subscription name with what holds it, sorted by
// name.
func (b *Broker) SubNames() []SubName {
	byName := map[string]*SubName{}
	now := b.clock.Now()
	for _, t := range b.topicList() {
		t.subsMu.Lock()
		subs := make([]*subscription, 0, len(t.subs))
		for _, s := range t.subs {
			subs = append(subs, s)
		}
		t.subsMu.Unlock()
		for _, s := range subs {
			n := byName[s.meta.Name]
			if n == nil {
				n = &SubName{Name: s.meta.Name}
				byName[s.meta.Name] = n
			}
			if s.q != nil {
				n.Queue++
				continue
			}
			n.Stream++
			s.mu.Lock()
			if !s.deleted {
				s.applyLocked(s.coord.Tick(now))
				n.Members += s.coord.Len()
			}
			s.mu.Unlock()
		}
	}
	out := make([]SubName, 0, len(byName))
	for _, n := range byName {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DeleteSubsNamed deletes every subscription named name, of either mode
// (with what is kept with them: offsets, queue state, front-end records),
// and returns how many it deleted. If any of them has session members,
// nothing is deleted and the error is FailedPrecondition.
func (b *Broker) DeleteSubsNamed(name string) (int, error) {
	subs := b.SubsNamed(name)
	for _, ns := range subs {
		if ns.Members > 0 {
			return 0, errs.New(errs.FailedPrecondition, "%s subscription %q on topic %q has %d native consumers", ns.Mode, name, ns.Topic, ns.Members)
		}
	}
	n := 0
	for _, ns := range subs {
		if err := b.DeleteSubscription(ns.Topic, name); err != nil {
			if errs.Is(err, errs.SubNotFound) || errs.Is(err, errs.TopicNotFound) {
				continue
			}
			return n, err
		}
		n++
	}
	return n, nil
}

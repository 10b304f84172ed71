package catalog

import (
	"fmt"
	"sort"
	"sync"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// Catalog is the set of topics and subscriptions, persisted in the state
// store (every change is a synced commit) and cached in memory. Safe for
// concurrent use.
type Catalog struct {
	st *state.Store

	mu     sync.RWMutex
	topics map[string]Topic                   // guarded by mu
	subs   map[string]map[string]Subscription // topic -> name -> sub; guarded by mu
}

// Stamp adds to the batch of a catalog change what must be written with it
// atomically: the applied index of the change's raft entry, on a cluster,
// so that a restart neither skips nor repeats it.
type Stamp func(*state.Batch)

func stamped(b *state.Batch, stamps []Stamp) *state.Batch {
	for _, s := range stamps {
		s(b)
	}
	return b
}

// Load reads the catalog from the state store.
func Load(st *state.Store) (*Catalog, error) {
	c := &Catalog{st: st, topics: map[string]Topic{}, subs: map[string]map[string]Subscription{}}
	err := st.Scan(state.TopicPrefix(), func(k, v []byte) error {
		t, err := decodeTopic(k, v)
		if err != nil {
			return fmt.Errorf("catalog: %w", err)
		}
		c.topics[t.Name] = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = st.Scan(state.SubPrefix(""), func(k, v []byte) error {
		s, err := decodeSub(k, v)
		if err != nil {
			return fmt.Errorf("catalog: %w", err)
		}
		if c.subs[s.Topic] == nil {
			c.subs[s.Topic] = map[string]Subscription{}
		}
		c.subs[s.Topic][s.Name] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Topic returns a topic by name.
func (c *Catalog) Topic(name string) (Topic, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.topics[name]
	return t, ok
}

// Topics returns all topics sorted by name.
func (c *Catalog) Topics() []Topic {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Topic, 0, len(c.topics))
	for _, t := range c.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PutTopic stores a new or changed topic (synced).
func (c *Catalog) PutTopic(t Topic, create bool, stamps ...Stamp) error {
	v, err := encodeTopic(t)
	if err != nil {
		return errs.Wrap(errs.InvalidArgument, err, "store topic %q", t.Name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.topics[t.Name]; exists && create {
		return errs.New(errs.TopicExists, "topic %q already exists", t.Name)
	}
	b := c.st.NewBatch()
	b.Set(state.TopicKey(t.Name), v)
	if err := stamped(b, stamps).Commit(true); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "store topic %q", t.Name)
	}
	c.topics[t.Name] = t
	return nil
}

// DeleteTopic removes a topic with its subscriptions and their committed
// offsets, atomically (synced).
func (c *Catalog) DeleteTopic(name string, stamps ...Stamp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.topics[name]; !ok {
		return errs.New(errs.TopicNotFound, "topic %q not found", name)
	}
	b := c.st.NewBatch()
	b.Delete(state.TopicKey(name))
	b.DeletePrefix(state.SubPrefix(name))
	b.DeletePrefix(state.OffsetPrefix(name, ""))
	for _, p := range queuePrefixes(name, "") {
		b.DeletePrefix(p)
	}
	if err := stamped(b, stamps).Commit(true); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "delete topic %q", name)
	}
	delete(c.topics, name)
	delete(c.subs, name)
	return nil
}

// Sub returns a subscription.
func (c *Catalog) Sub(topic, name string) (Subscription, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.subs[topic][name]
	return s, ok
}

// Subs returns a topic's subscriptions sorted by name.
func (c *Catalog) Subs(topic string) []Subscription {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Subscription, 0, len(c.subs[topic]))
	for _, s := range c.subs[topic] {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// CreateSub stores a new subscription together with its initial committed
// offsets (one per partition), atomically (synced).
func (c *Catalog) CreateSub(s Subscription, offsets []int64, stamps ...Stamp) error {
	v, err := encodeSub(s)
	if err != nil {
		return errs.Wrap(errs.InvalidArgument, err, "store subscription %q", s.Name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.topics[s.Topic]; !ok {
		return errs.New(errs.TopicNotFound, "topic %q not found", s.Topic)
	}
	if _, ok := c.subs[s.Topic][s.Name]; ok {
		return errs.New(errs.SubExists, "subscription %q on topic %q already exists", s.Name, s.Topic)
	}
	b := c.st.NewBatch()
	b.Set(state.SubKey(s.Topic, s.Name), v)
	b.DeletePrefix(state.OffsetPrefix(s.Topic, s.Name))
	for _, p := range queuePrefixes(s.Topic, s.Name) {
		b.DeletePrefix(p)
	}
	for p, off := range offsets {
		b.Set(state.OffsetKey(s.Topic, s.Name, int32(p)), EncodeOffset(off))
	}
	if err := stamped(b, stamps).Commit(true); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "store subscription %q", s.Name)
	}
	if c.subs[s.Topic] == nil {
		c.subs[s.Topic] = map[string]Subscription{}
	}
	c.subs[s.Topic][s.Name] = s
	return nil
}

// DeleteSub removes a subscription and its committed offsets (synced).
func (c *Catalog) DeleteSub(topic, name string, stamps ...Stamp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.subs[topic][name]; !ok {
		return errs.New(errs.SubNotFound, "subscription %q on topic %q not found", name, topic)
	}
	b := c.st.NewBatch()
	b.Delete(state.SubKey(topic, name))
	b.DeletePrefix(state.OffsetPrefix(topic, name))
	for _, p := range queuePrefixes(topic, name) {
		b.DeletePrefix(p)
	}
	if err := stamped(b, stamps).Commit(true); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "delete subscription %q", name)
	}
	delete(c.subs[topic], name)
	return nil
}

// Offsets returns a subscription's committed offsets by partition.
func (c *Catalog) Offsets(topic, sub string) (map[int32]int64, error) {
	out := map[int32]int64{}
	err := c.st.Scan(state.OffsetPrefix(topic, sub), func(k, v []byte) error {
		off, err := DecodeOffset(k, v)
		if err != nil {
			return err
		}
		out[state.PartitionOfOffsetKey(k)] = off
		return nil
	})
	return out, err
}

// CommitOffsets stores committed offsets (synced): when it returns nil they
// survive a crash.
func (c *Catalog) CommitOffsets(topic, sub string, offsets map[int32]int64) error {
	b := c.st.NewBatch()
	for p, off := range offsets {
		b.Set(state.OffsetKey(topic, sub, p), EncodeOffset(off))
	}
	if err := b.Commit(true); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "commit offsets")
	}
	return nil
}

// queuePrefixes are the key prefixes of a subscription's (or, with sub
// empty, a topic's) queue state, processed-key ledger, stream halts and
// front-end records (the Kafka commit metadata).
func queuePrefixes(topic, sub string) [][]byte {
	return append([][]byte{state.QueuePrefix(topic, sub), state.ParkPrefix(topic, sub), state.ParkIndexPrefix(topic, sub),
		state.HaltPrefix(topic, sub), state.LedgerPrefix(topic, sub), state.LedgerExpiryPrefix(topic, sub)}, state.SpaceSubPrefixes(topic, sub)...)
}

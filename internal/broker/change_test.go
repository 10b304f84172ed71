package broker

import (
	"context"
	"reflect"
	"testing"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// recorder is a MetaLog that applies every change on its own broker at
// once, as a cluster of one would, and keeps the changes.
type recorder struct {
	b       *Broker
	changes [][]byte
}

func (r *recorder) Coordinator() (uint64, string) { return 1, "" }

func (r *recorder) Commit(_ context.Context, data []byte) error {
	r.changes = append(r.changes, append([]byte(nil), data...))
	return r.b.ApplyChange(data, 0, nil)
}

type catalogView struct {
	Topics []catalog.Topic
	Subs   map[string][]catalog.Subscription
}

func viewOf(b *Broker) catalogView {
	v := catalogView{Topics: b.Topics(), Subs: map[string][]catalog.Subscription{}}
	for _, t := range v.Topics {
		v.Subs[t.Name], _ = b.Subscriptions(t.Name)
	}
	return v
}

// TestChangesReplayed makes catalog changes through a MetaLog, then applies
// the same changes to another broker, twice over (a node that crashed
// after applying changes but before storing its applied index applies
// them again): both end with the same catalog, and the second pass changes
// nothing and fails nothing that the first did not.
func TestChangesReplayed(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	e.opts = func(c *Config) { c.Meta = rec }
	e.restart()
	rec.b = e.b
	b := e.b

	if _, err := b.CreateTopic("orders", catalog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic("orders", catalog.TopicConfig{Partitions: 2}); !errs.Is(err, errs.TopicExists) {
		t.Fatalf("second create: %v, want TopicExists", err)
	}
	if _, err := b.Publish("orders", msgs("m", 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription("orders", "audit", catalog.SubConfig{Start: catalog.Position{Kind: catalog.Latest}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription("orders", "work", catalog.SubConfig{Mode: catalog.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddPartitions("orders", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpdateTopicConfig("orders", func(c *catalog.TopicConfig) error { c.MaxMessages = 1000; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AlterSubscription("orders", "audit", func(c *catalog.SubConfig) error { c.Filter = "a.>"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteSubscription("orders", "audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription("orders", "audit", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic("scratch", catalog.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteTopic("scratch"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic("scratch", catalog.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	want := viewOf(b)
	if got := want.Subs["orders"]; len(got) != 2 || got[0].Config.Filter != "" {
		t.Fatalf("subscriptions after the changes: %+v", got)
	}

	other := newEnv(t)
	var firstOutcomes []error
	for pass := range 2 {
		for i, c := range rec.changes {
			err := other.b.ApplyChange(c, 0, nil)
			if errs.Is(err, errs.StorageFailed) {
				t.Fatalf("pass %d, change %d: %v", pass, i, err)
			}
			if pass == 0 {
				firstOutcomes = append(firstOutcomes, err)
			}
		}
		if got := viewOf(other.b); !reflect.DeepEqual(got, want) {
			t.Fatalf("pass %d: catalog\n%+v\nwant\n%+v", pass, got, want)
		}
	}
	for i, err := range firstOutcomes {
		if err != nil {
			t.Errorf("change %d refused on a broker applying them in order: %v", i, err)
		}
	}
	other.restart()
	if got := viewOf(other.b); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a restart: catalog\n%+v\nwant\n%+v", got, want)
	}
}

// TestChangeDecodeBadInput: every cut of a valid change and a few corrupt
// ones are refused with an error, never a panic or a huge allocation.
func TestChangeDecodeBadInput(t *testing.T) {
	topic := catalog.Topic{Name: "t", ID: "id", Config: catalog.DefaultDefaults().Fill(catalog.TopicConfig{Partitions: 2})}
	sub := catalog.Subscription{Topic: "t", Name: "s"}
	replicated := topic
	replicated.Config.Replicas = 3
	replicated.Assignment = []catalog.PartitionAssignment{{Voters: []uint64{1, 2, 3}, Initial: []uint64{1, 2, 3}}, {Voters: []uint64{2, 3, 4}, Initial: []uint64{2, 3, 1}}}
	for _, c := range []change{
		{kind: changeCreateTopic, topic: topic},
		{kind: changeDeleteTopic, topic: topic},
		{kind: changeCreateSub, sub: sub, offsets: []int64{3, 4}},
		{kind: changeDeleteSub, sub: sub},
		{kind: changeAlterSub, sub: sub},
		{kind: changeReassign, topic: topic, reassign: []Reassignment{{Partition: 1, Voters: []uint64{3, 1, 2}}, {Partition: 0, Voters: []uint64{4}}}},
		{kind: changeCreateTopic, topic: replicated},
	} {
		data, err := encodeChange(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeChange(data)
		if err != nil {
			t.Fatalf("kind %d: %v", c.kind, err)
		}
		if c.kind == changeReassign && (!reflect.DeepEqual(got.reassign, c.reassign) || got.topic.Name != "t" || got.topic.ID != "id") {
			t.Fatalf("reassignment decoded as %+v", got)
		}
		if c.kind == changeCreateTopic && !reflect.DeepEqual(got.topic.Assignment, c.topic.Assignment) {
			t.Fatalf("replicas decoded as %+v, want %+v", got.topic.Assignment, c.topic.Assignment)
		}
		for n := range len(data) {
			if _, err := decodeChange(data[:n]); err == nil {
				t.Fatalf("kind %d cut to %d of %d bytes: decoded", c.kind, n, len(data))
			}
		}
	}
	for _, bad := range [][]byte{{0}, {99}, {byte(changeCreateSub), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
		{byte(changeReassign), 0, 0, 0, 1, 't', 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}} {
		if _, err := decodeChange(bad); err == nil {
			t.Fatalf("%x decoded", bad)
		}
	}
}

package broker

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// A cluster's metadata group compacts its log behind a snapshot of what it
// applied: the catalog and every subscription's consumer state, as the
// records under CatalogPrefixes. A node behind the compacted log (a new
// node, or one down for long) gets the snapshot instead of the entries and
// restores it (RestoreCatalog).

// CatalogPrefixes are the key prefixes of everything a cluster's metadata
// group applies to the broker's state store: topic and subscription
// records, committed offsets, halts, queue snapshots, parked messages and
// their index, redriven marks, processed-key ledgers and their expiry
// index, and the front ends' records kept with subscriptions.
func CatalogPrefixes() [][]byte {
	out := [][]byte{state.TopicPrefix(), state.SubPrefix(""), []byte("o/"), []byte("h/"), []byte("q/"),
		[]byte("w/"), []byte("x/"), []byte("r/"), []byte("l/"), []byte("e/")}
	for _, sp := range state.Spaces {
		out = append(out, []byte(sp.SubKind))
		if sp.Replicated {
			out = append(out, []byte(sp.Prefix))
		}
	}
	return out
}

// KV is one record of a catalog snapshot.
type KV struct{ Key, Value []byte }

// DumpCatalog returns every record under CatalogPrefixes. On a cluster
// only the metadata group's worker writes them, so called there it
// returns the state as of the last entry applied.
func (b *Broker) DumpCatalog() ([]KV, error) {
	var out []KV
	for _, p := range CatalogPrefixes() {
		err := b.cfg.State.Scan(p, func(k, v []byte) error {
			out = append(out, KV{Key: bytes.Clone(k), Value: bytes.Clone(v)})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RestoreCatalog makes the broker's catalog and consumer state the
// snapshot's: topics and subscriptions that differ are deleted, created
// or altered through the functions that apply changes (so their logs,
// groups and memory follow), then every consumer-state record is replaced
// in one batch with stamps, and each subscription reloads its state from
// it (sessions end: only the coordinator has them, and it is not
// restoring). Every kv must lie under CatalogPrefixes.
func (b *Broker) RestoreCatalog(kvs []KV, stamps ...catalog.Stamp) error {
	prefixes := CatalogPrefixes()
	topics := map[string]catalog.Topic{}
	subs := map[string]map[string]catalog.Subscription{}
	for _, kv := range kvs {
		if !hasAnyPrefix(kv.Key, prefixes) {
			return errs.New(errs.InvalidArgument, "catalog snapshot holds a record outside the catalog (%q)", kv.Key)
		}
		switch {
		case bytes.HasPrefix(kv.Key, state.TopicPrefix()):
			t, err := catalog.DecodeTopic(kv.Value)
			if err != nil {
				return errs.Wrap(errs.CorruptData, err, "catalog snapshot: topic record")
			}
			topics[t.Name] = t
		case bytes.HasPrefix(kv.Key, state.SubPrefix("")):
			s, err := catalog.DecodeSub(kv.Value)
			if err != nil {
				return errs.Wrap(errs.CorruptData, err, "catalog snapshot: subscription record")
			}
			if subs[s.Topic] == nil {
				subs[s.Topic] = map[string]catalog.Subscription{}
			}
			subs[s.Topic][s.Name] = s
		}
	}
	// Topics.
	for _, cur := range b.catalog.Topics() {
		if nt, ok := topics[cur.Name]; !ok || nt.ID != cur.ID {
			if err := b.applyDeleteTopic(cur.Name, cur.ID, nil); err != nil && !errs.Is(err, errs.TopicNotFound) {
				return err
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(topics)) {
		nt := topics[name]
		cur, ok := b.Topic(name)
		switch {
		case !ok:
			if err := b.applyCreateTopic(nt, nil); err != nil {
				return err
			}
		default:
			if nt.Config.Partitions > cur.Config.Partitions {
				if err := b.applyAddPartitions(nt, nil); err != nil {
					return err
				}
			}
			if !reflect.DeepEqual(nt.Config, cur.Config) {
				if err := b.applyTopicConfig(nt, nil); err != nil {
					return err
				}
			}
			if !reflect.DeepEqual(nt.Assignment, cur.Assignment) {
				if err := b.applyAssignment(nt); err != nil {
					return err
				}
			}
		}
	}
	// Subscriptions.
	for _, tn := range slices.Sorted(maps.Keys(topics)) {
		want := subs[tn]
		for _, cur := range b.catalog.Subs(tn) {
			if ns, ok := want[cur.Name]; !ok || !ns.Created.Equal(cur.Created) {
				if err := b.applyDeleteSub(cur, nil); err != nil && !errs.Is(err, errs.SubNotFound) {
					return err
				}
			}
		}
		for _, name := range slices.Sorted(maps.Keys(want)) {
			ns := want[name]
			_, s, err := b.sub(tn, name)
			switch {
			case errs.Is(err, errs.SubNotFound):
				if err := b.applyCreateSub(ns, nil, nil); err != nil {
					return err
				}
			case err != nil:
				return err
			case !reflect.DeepEqual(s.config().Config, ns.Config):
				if err := b.applyAlterSub(ns, nil); err != nil {
					return err
				}
			}
		}
	}
	// Consumer state, then memory.
	bt := b.cfg.State.NewBatch()
	for _, p := range prefixes[2:] {
		bt.DeletePrefix(p)
	}
	for _, kv := range kvs {
		if !bytes.HasPrefix(kv.Key, state.TopicPrefix()) && !bytes.HasPrefix(kv.Key, state.SubPrefix("")) {
			bt.Set(kv.Key, kv.Value)
		}
	}
	for _, st := range stamps {
		st(bt)
	}
	if err := bt.Commit(true); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "restore consumer state")
	}
	var errList []error
	for _, a := range b.spaceAppliers() {
		if err := a.SpaceRestored(); err != nil {
			errList = append(errList, err)
		}
	}
	for _, t := range b.topicList() {
		t.subsMu.Lock()
		ss := slices.Collect(maps.Values(t.subs))
		t.subsMu.Unlock()
		for _, s := range ss {
			if err := s.reload(); err != nil {
				errList = append(errList, fmt.Errorf("%s/%s: %w", s.meta.Topic, s.meta.Name, err))
			}
		}
	}
	return errors.Join(errList...)
}

// reload reads the subscription's consumer state back from the store:
// committed offsets, halts, queue state (sessions end).
func (s *subscription) reload() error {
	nparts := len(s.t.logs())
	offsets, err := s.t.b.catalog.Offsets(s.meta.Topic, s.meta.Name)
	if err != nil {
		return err
	}
	halts, err := s.t.b.loadHalts(s.meta.Topic, s.meta.Name, nparts)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for p := range s.committed {
		if off, ok := offsets[int32(p)]; ok {
			s.committed[p] = off
		}
	}
	s.halts = halts
	s.mu.Unlock()
	return s.handOver(s.q != nil)
}

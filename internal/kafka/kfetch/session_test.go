package kfetch

import (
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func req(version int16, id, epoch int32, parts map[string][]int32, forget map[string][]int32) *kmsg.FetchRequest {
	r := kmsg.NewPtrFetchRequest()
	r.Version, r.SessionID, r.SessionEpoch = version, id, epoch
	for topic, ps := range parts {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		for _, p := range ps {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, int64(100+p), 1000
			rt.Partitions = append(rt.Partitions, rp)
		}
		r.Topics = append(r.Topics, rt)
	}
	for topic, ps := range forget {
		ft := kmsg.NewFetchRequestForgottenTopic()
		ft.Topic, ft.Partitions = topic, ps
		r.ForgottenTopics = append(r.ForgottenTopics, ft)
	}
	return r
}

func resolve(k Key) string { return k.Topic }

func keys(ps []*Part) []Key {
	out := make([]Key, len(ps))
	for i, p := range ps {
		out[i] = p.Key
	}
	return out
}

// The KIP-227 rules: epoch 0 creates, the next epoch continues with what
// changed, -1 closes; wrong epochs and unknown ids are refused.
func TestFetchSessionRules(t *testing.T) {
	fc := NewCache()
	if fs, _, code := fc.Begin(req(6, 0, -1, map[string][]int32{"a": {0}}, nil), resolve); fs != nil || code != 0 {
		t.Fatal("v6 has no sessions")
	}
	fs, incr, code := fc.Begin(req(12, 0, 0, map[string][]int32{"a": {0, 1}}, nil), resolve)
	if fs == nil || incr || code != 0 || fs.ID() <= 0 || len(fs.Parts()) != 2 || fs.Parts()[1].Offset != 101 || fs.Parts()[1].Name != "a" {
		t.Fatalf("create: %v %v %d", fs, incr, code)
	}
	id := fs.ID()
	fs.Parts()[0].Sent = true // what the handler notes while it holds the session
	fs.Unlock()
	if fc.Len() != 1 {
		t.Fatalf("%d sessions", fc.Len())
	}
	for _, c := range []struct {
		id, epoch int32
		want      int16
	}{
		{id, 2, kerr.InvalidFetchSessionEpoch.Code},
		{id + 1, 1, kerr.FetchSessionIDNotFound.Code},
		{id, -2, kerr.InvalidFetchSessionEpoch.Code},
	} {
		if _, _, code := fc.Begin(req(12, c.id, c.epoch, nil, nil), resolve); code != c.want {
			t.Errorf("session %d epoch %d: %d, want %d", c.id, c.epoch, code, c.want)
		}
	}
	fs, incr, code = fc.Begin(req(12, id, 1, map[string][]int32{"b": {0}, "a": {1}}, map[string][]int32{"a": {0}}), resolve)
	if fs == nil || !incr || code != 0 {
		t.Fatalf("incremental: %v %v %d", fs, incr, code)
	}
	got := keys(fs.Parts())
	if len(got) != 2 || got[0] != (Key{Topic: "a", Partition: 1}) || got[1] != (Key{Topic: "b"}) || fs.Parts()[0].Sent {
		t.Fatalf("parts after the incremental fetch %v", got)
	}
	fs.Unlock()
	if fs, _, code := fc.Begin(req(12, id, -1, map[string][]int32{"a": {0}}, nil), resolve); fs != nil || code != 0 || fc.Len() != 0 {
		t.Fatalf("close: %v %d, %d sessions", fs, code, fc.Len())
	}
	if nextSessionEpoch(math.MaxInt32) != 1 {
		t.Fatal("epochs wrap to 1")
	}
}

// Topic ids from v13.
func TestFetchSessionKeysByID(t *testing.T) {
	r := kmsg.NewPtrFetchRequest()
	r.Version = 13
	rt := kmsg.NewFetchRequestTopic()
	rt.TopicID = [16]byte{1}
	rt.Partitions = []kmsg.FetchRequestTopicPartition{kmsg.NewFetchRequestTopicPartition()}
	r.Topics = append(r.Topics, rt)
	ps := RequestParts(r, func(k Key) string {
		if k.ID == ([16]byte{1}) {
			return "t"
		}
		return ""
	})
	if len(ps) != 1 || ps[0].Key != (Key{ID: [16]byte{1}}) || ps[0].Name != "t" {
		t.Fatalf("parts %+v", ps)
	}
}

// A session too large for the bounds is not kept; the least recently used
// sessions make room for new ones.
func TestFetchSessionBounds(t *testing.T) {
	fc := NewCache()
	big := make([]int32, maxPartsPerSession+1)
	for i := range big {
		big[i] = int32(i)
	}
	if fs, _, code := fc.Begin(req(12, 0, 0, map[string][]int32{"a": big}, nil), resolve); fs != nil || code != 0 || fc.Len() != 0 {
		t.Fatalf("oversized session kept: %v %d", fs, code)
	}
	var first int32
	for i := range maxFetchSessions + 1 {
		fs, _, _ := fc.Begin(req(12, 0, 0, map[string][]int32{"a": {0}}, nil), resolve)
		if i == 0 {
			first = fs.ID()
		}
		fs.Unlock()
	}
	if fc.Len() != maxFetchSessions {
		t.Fatalf("%d sessions", fc.Len())
	}
	if _, _, code := fc.Begin(req(12, first, 1, nil, nil), resolve); code != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("the least recently used session was not evicted: %d", code)
	}
}

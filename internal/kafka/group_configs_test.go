package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/serverhook"
)

// Share-group configs (resource type GROUP) through DescribeConfigs,
// IncrementalAlterConfigs and AlterConfigs, and their effect on share
// groups.

// gcAlter sets (value non-nil) or deletes (nil) group configs with one
// IncrementalAlterConfigs request and returns the resource's error code.
func gcAlter(t *testing.T, cl *kgo.Client, group string, validateOnly bool, kvs map[string]*string) int16 {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = validateOnly
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	for k, v := range kvs {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = k, v
		if v == nil {
			c.Op = kmsg.IncrementalAlterConfigOpDelete
		}
		res.Configs = append(res.Configs, c)
	}
	req.Resources = append(req.Resources, res)
	resp := shareRawRequest[*kmsg.IncrementalAlterConfigsResponse](t, cl, req)
	if len(resp.Resources) != 1 {
		t.Fatalf("alter answered %d resources", len(resp.Resources))
	}
	return resp.Resources[0].ErrorCode
}

type gcValue struct {
	value  string
	source kmsg.ConfigSource
}

// gcDescribe returns a group's configs.
func gcDescribe(t *testing.T, cl *kgo.Client, group string) (map[string]gcValue, int16) {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, group
	req.Resources = append(req.Resources, res)
	resp := shareRawRequest[*kmsg.DescribeConfigsResponse](t, cl, req)
	if len(resp.Resources) != 1 {
		t.Fatalf("describe answered %d resources", len(resp.Resources))
	}
	out := map[string]gcValue{}
	for _, c := range resp.Resources[0].Configs {
		out[c.Name] = gcValue{*c.Value, c.Source}
	}
	return out, resp.Resources[0].ErrorCode
}

func sp(s string) *string { return &s }

func TestGroupConfigsDescribeAndAlter(t *testing.T) {
	srv := startShareServer(t)
	cl := shareRawClient(t, srv)
	def := kmsg.ConfigSourceDefaultConfig
	set := kmsg.ConfigSourceGroupConfig
	want := map[string]gcValue{
		"share.auto.offset.reset":       {"earliest", def},
		"share.heartbeat.interval.ms":   {"5000", def},
		"share.isolation.level":         {"read_uncommitted", def},
		"share.record.lock.duration.ms": {"30000", def},
		"share.session.timeout.ms":      {"45000", def},
	}
	check := func(what string) {
		t.Helper()
		got, code := gcDescribe(t, cl, "g")
		if code != 0 || len(got) != len(want) {
			t.Fatalf("%s: describe: code %d, %v", what, code, got)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %+v, want %+v", what, k, got[k], v)
			}
		}
	}
	check("unset") // any valid name has the defaults, as in Kafka

	if code := gcAlter(t, cl, "g", false, map[string]*string{
		"share.auto.offset.reset": sp("latest"), "share.record.lock.duration.ms": sp("15000"),
	}); code != 0 {
		t.Fatalf("alter: %d", code)
	}
	want["share.auto.offset.reset"] = gcValue{"latest", set}
	want["share.record.lock.duration.ms"] = gcValue{"15000", set}
	check("set")

	// Bad changes: refused as a whole, nothing stored.
	for _, c := range []struct {
		name string
		kvs  map[string]*string
		code int16
	}{
		{"not a number", map[string]*string{"share.record.lock.duration.ms": sp("soon")}, kerr.InvalidConfig.Code},
		{"lock too short", map[string]*string{"share.record.lock.duration.ms": sp("999")}, kerr.InvalidConfig.Code},
		{"unknown reset", map[string]*string{"share.auto.offset.reset": sp("middle")}, kerr.InvalidConfig.Code},
		{"duration not ISO-8601", map[string]*string{"share.auto.offset.reset": sp("by_duration:1h")}, kerr.InvalidConfig.Code},
		{"empty duration", map[string]*string{"share.auto.offset.reset": sp("by_duration:PT")}, kerr.InvalidConfig.Code},
		{"isolation", map[string]*string{"share.isolation.level": sp("serializable")}, kerr.InvalidConfig.Code},
		{"KIP-848 config", map[string]*string{"consumer.session.timeout.ms": sp("45000")}, kerr.InvalidConfig.Code},
		{"unknown config", map[string]*string{"share.colour": sp("blue")}, kerr.InvalidConfig.Code},
		{"heartbeat not below session", map[string]*string{"share.heartbeat.interval.ms": sp("45000")}, kerr.InvalidConfig.Code},
		{"one bad of two", map[string]*string{"share.isolation.level": sp("read_committed"), "share.session.timeout.ms": sp("-1")}, kerr.InvalidConfig.Code},
	} {
		if code := gcAlter(t, cl, "g", false, c.kvs); code != c.code {
			t.Errorf("%s: code %d, want %d", c.name, code, c.code)
		}
	}
	if code := gcAlter(t, cl, "bad group!", false, map[string]*string{"share.isolation.level": sp("read_committed")}); code != kerr.InvalidGroupID.Code {
		t.Errorf("bad group name: code %d", code)
	}
	if _, code := gcDescribe(t, cl, "bad group!"); code != kerr.InvalidGroupID.Code {
		t.Errorf("describe bad group name: code %d", code)
	}
	// A list operation on a group config.
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "g"
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op, c.Value = "share.isolation.level", kmsg.IncrementalAlterConfigOpAppend, sp("read_committed")
	res.Configs = append(res.Configs, c)
	req.Resources = append(req.Resources, res)
	if r := shareRawRequest[*kmsg.IncrementalAlterConfigsResponse](t, cl, req); r.Resources[0].ErrorCode != kerr.InvalidConfig.Code {
		t.Errorf("APPEND: code %d", r.Resources[0].ErrorCode)
	}
	// Validate only: accepted, not stored.
	if code := gcAlter(t, cl, "g", true, map[string]*string{"share.isolation.level": sp("read_committed")}); code != 0 {
		t.Errorf("validate only: code %d", code)
	}
	check("after refused and validate-only changes")

	// Valid durations; DELETE returns to the default.
	for _, d := range []string{"PT1H", "P1DT12H30M", "PT0.5S", "pt10m"} {
		if code := gcAlter(t, cl, "g", false, map[string]*string{"share.auto.offset.reset": sp("by_duration:" + d)}); code != 0 {
			t.Errorf("by_duration:%s: code %d", d, code)
		}
	}
	if code := gcAlter(t, cl, "g", false, map[string]*string{"share.auto.offset.reset": nil, "share.heartbeat.interval.ms": sp("2000")}); code != 0 {
		t.Fatalf("delete: %d", code)
	}
	want["share.auto.offset.reset"] = gcValue{"earliest", def}
	want["share.heartbeat.interval.ms"] = gcValue{"2000", set}
	check("deleted one")

	// AlterConfigs replaces the whole set.
	areq := kmsg.NewPtrAlterConfigsRequest()
	ares := kmsg.NewAlterConfigsRequestResource()
	ares.ResourceType, ares.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "g"
	ac := kmsg.NewAlterConfigsRequestResourceConfig()
	ac.Name, ac.Value = "share.isolation.level", sp("read_committed")
	ares.Configs = append(ares.Configs, ac)
	areq.Resources = append(areq.Resources, ares)
	if r := shareRawRequest[*kmsg.AlterConfigsResponse](t, cl, areq); r.Resources[0].ErrorCode != 0 {
		t.Fatalf("AlterConfigs: %d", r.Resources[0].ErrorCode)
	}
	want["share.heartbeat.interval.ms"] = gcValue{"5000", def}
	want["share.record.lock.duration.ms"] = gcValue{"30000", def}
	want["share.isolation.level"] = gcValue{"read_committed", set}
	check("replaced")
}

func TestGroupConfigsApplyToShareGroups(t *testing.T) {
	srv := startShareServer(t)
	b := serverhook.Broker(srv)
	shareCreateTopic(t, srv, "jobs", 1)
	shareProduce(t, srv, "jobs", "old", 3)
	cl := shareRawClient(t, srv)
	if code := gcAlter(t, cl, "g", false, map[string]*string{
		"share.auto.offset.reset": sp("latest"), "share.record.lock.duration.ms": sp("1000"), "share.heartbeat.interval.ms": sp("2000"),
	}); code != 0 {
		t.Fatalf("alter: %d", code)
	}
	// The group's first use creates its subscription at the latest offset.
	hbReq := shareHeartbeatReq("g", "m1", 0, "jobs")
	hb := shareRawRequest[*kmsg.ShareGroupHeartbeatResponse](t, cl, hbReq)
	if hb.ErrorCode != 0 || hb.HeartbeatIntervalMillis != 2000 || hb.Assignment == nil {
		t.Fatalf("join: %+v", hb)
	}
	topicID := hb.Assignment.TopicPartitions[0].TopicID
	if f := shareFetchWait(t, cl, "g", "m1", 0, topicID, 0, 200); shareAcquired(f) != "[]" {
		t.Fatalf("latest: fetched %s", shareAcquired(f))
	}
	shareProduce(t, srv, "jobs", "new", 2)
	f := shareFetch(t, cl, "g", "m1", 1, topicID, 0)
	if got := shareAcquired(f); got != "[3-4x1]" || f.AcquisitionLockTimeoutMillis != 1000 {
		t.Fatalf("first fetch: %s, lock %d ms", got, f.AcquisitionLockTimeoutMillis)
	}
	// The 1 s lock (the subscription's ack timeout is 30 s) ends and the
	// records come again.
	if sub, _ := b.QueueSubscription("jobs", "g"); sub.AckTimeout != 30*time.Second {
		t.Fatalf("subscription ack timeout %v", sub.AckTimeout)
	}
	// (after the subscription's backoff, with jitter: maybe one by one).
	time.Sleep(1100 * time.Millisecond)
	epoch := int32(2)
	seen := map[int64]int32{}
	for deadline := time.Now().Add(10 * time.Second); len(seen) < 2 && time.Now().Before(deadline); epoch++ {
		f = shareFetchWait(t, cl, "g", "m1", epoch, topicID, 0, 1000)
		for _, rt := range f.Topics {
			for _, rp := range rt.Partitions {
				for _, a := range rp.AcquiredRecords {
					for o := a.FirstOffset; o <= a.LastOffset; o++ {
						seen[o] = int32(a.DeliveryCount)
					}
				}
			}
		}
	}
	if fmt.Sprint(seen) != "map[3:2 4:2]" {
		t.Fatalf("after the lock: %v", seen)
	}
	// A change applies to the running group: heartbeat interval at the
	// next heartbeat, lock at the next fetch.
	if code := gcAlter(t, cl, "g", false, map[string]*string{"share.heartbeat.interval.ms": sp("3000"), "share.record.lock.duration.ms": nil}); code != 0 {
		t.Fatalf("alter: %d", code)
	}
	hb = shareRawRequest[*kmsg.ShareGroupHeartbeatResponse](t, cl, shareHeartbeatReq("g", "m1", hb.MemberEpoch))
	if hb.ErrorCode != 0 || hb.HeartbeatIntervalMillis != 3000 {
		t.Fatalf("heartbeat after the change: %+v", hb)
	}
	if a := shareAck(t, cl, "g", "m1", epoch, topicID, 0, 3, 4, 1); a.ErrorCode != 0 || a.AcquisitionLockTimeoutMillis != 30000 {
		t.Fatalf("ack: %+v", a)
	}

	// by_duration: a second group starts an hour back, so sees the old
	// records too.
	if code := gcAlter(t, cl, "g2", false, map[string]*string{"share.auto.offset.reset": sp("by_duration:PT1H")}); code != 0 {
		t.Fatalf("alter g2: %d", code)
	}
	hb2 := shareRawRequest[*kmsg.ShareGroupHeartbeatResponse](t, cl, shareHeartbeatReq("g2", "n1", 0, "jobs"))
	if hb2.ErrorCode != 0 {
		t.Fatalf("g2 join: %+v", hb2)
	}
	if got := shareAcquired(shareFetch(t, cl, "g2", "n1", 0, topicID, 0)); got != "[0-4x1]" {
		t.Fatalf("g2 fetch: %s", got)
	}
	subs, err := b.Subscriptions("jobs")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range subs {
		if want := map[string]catalog.PositionKind{"g": catalog.Latest, "g2": catalog.AtTime}[sub.Name]; sub.Config.Start.Kind != want {
			t.Errorf("subscription %s starts at %v", sub.Name, sub.Config.Start)
		}
	}
}

func TestGroupConfigsListAndDeleteShareGroup(t *testing.T) {
	srv := startShareServer(t)
	b := serverhook.Broker(srv)
	shareCreateTopic(t, srv, "jobs", 1)
	cl := shareRawClient(t, srv)
	if code := gcAlter(t, cl, "g", false, map[string]*string{"share.isolation.level": sp("read_committed")}); code != 0 {
		t.Fatalf("alter: %d", code)
	}
	hb := shareRawRequest[*kmsg.ShareGroupHeartbeatResponse](t, cl, shareHeartbeatReq("g", "m1", 0, "jobs"))
	if hb.ErrorCode != 0 {
		t.Fatalf("join: %+v", hb)
	}
	list := func() map[string]string {
		req := kmsg.NewPtrListGroupsRequest()
		resp := shareRawRequest[*kmsg.ListGroupsResponse](t, cl, req)
		out := map[string]string{}
		for _, g := range resp.Groups {
			out[g.Group] = g.GroupType + "/" + g.ProtocolType + "/" + g.GroupState
		}
		return out
	}
	del := func() int16 {
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Groups = []string{"g"}
		return shareRawRequest[*kmsg.DeleteGroupsResponse](t, cl, req).Groups[0].ErrorCode
	}
	if got := list()["g"]; got != "share/share/Stable" {
		t.Fatalf("listed with a member: %q", got)
	}
	if code := del(); code != kerr.NonEmptyGroup.Code {
		t.Fatalf("delete with a member: %d", code)
	}
	leave := shareHeartbeatReq("g", "m1", -1)
	if r := shareRawRequest[*kmsg.ShareGroupHeartbeatResponse](t, cl, leave); r.ErrorCode != 0 {
		t.Fatalf("leave: %+v", r)
	}
	if got := list()["g"]; got != "share/share/Empty" {
		t.Fatalf("listed without members: %q", got)
	}
	if code := del(); code != 0 {
		t.Fatalf("delete: %d", code)
	}
	if _, err := b.QueueSubscription("jobs", "g"); !errs.Is(err, errs.SubNotFound) {
		t.Fatalf("subscription after delete: %v", err)
	}
	if got, _ := gcDescribe(t, cl, "g"); got["share.isolation.level"].source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("configs after delete: %+v", got)
	}
	if _, ok := list()["g"]; ok {
		t.Fatal("listed after delete")
	}
	if code := del(); code != kerr.GroupIDNotFound.Code {
		t.Fatalf("second delete: %d", code)
	}
	// Configs alone make a group deletable (they are all it has).
	if code := gcAlter(t, cl, "h", false, map[string]*string{"share.isolation.level": sp("read_committed")}); code != 0 {
		t.Fatal(code)
	}
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Groups = []string{"h"}
	if code := shareRawRequest[*kmsg.DeleteGroupsResponse](t, cl, req).Groups[0].ErrorCode; code != 0 {
		t.Fatalf("delete configs-only group: %d", code)
	}
}

func TestGroupConfigsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	srv := adServer(t, dir)
	cl := shareRawClient(t, srv)
	if code := gcAlter(t, cl, "g", false, map[string]*string{"share.record.lock.duration.ms": sp("15000")}); code != 0 {
		t.Fatalf("alter: %d", code)
	}
	cl.Close()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv = adServer(t, dir)
	cl = shareRawClient(t, srv)
	got, _ := gcDescribe(t, cl, "g")
	if v := got["share.record.lock.duration.ms"]; v.value != "15000" || v.source != kmsg.ConfigSourceGroupConfig {
		t.Fatalf("after restart: %+v", v)
	}
}

// DeleteGroups deletes all of a name's subscriptions or none: a queue
// subscription with a native consumer keeps the stream subscription of the
// same name (a consumer group's offsets) too.
func TestDeleteGroupsAllOrNothing(t *testing.T) {
	srv := startShareServer(t)
	b := serverhook.Broker(srv)
	shareCreateTopic(t, srv, "a", 1)
	shareCreateTopic(t, srv, "b", 1)
	if _, err := b.CreateSubscription("a", "g", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription("b", "g", catalog.SubConfig{Mode: catalog.ModeQueue}); err != nil {
		t.Fatal(err)
	}
	sess, err := b.Join(broker.JoinRequest{Topic: "b", Subscription: "g", Credits: 1})
	if err != nil {
		t.Fatal(err)
	}
	cl := shareRawClient(t, srv)
	del := func() int16 {
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Groups = []string{"g"}
		return shareRawRequest[*kmsg.DeleteGroupsResponse](t, cl, req).Groups[0].ErrorCode
	}
	if code := del(); code != kerr.NonEmptyGroup.Code {
		t.Fatalf("delete with a native consumer: %d", code)
	}
	for _, topic := range []string{"a", "b"} {
		if subs, _ := b.Subscriptions(topic); len(subs) != 1 {
			t.Fatalf("topic %s: subscriptions %+v after a refused delete", topic, subs)
		}
	}
	sess.Leave()
	if code := del(); code != 0 {
		t.Fatalf("delete: %d", code)
	}
	for _, topic := range []string{"a", "b"} {
		if subs, _ := b.Subscriptions(topic); len(subs) != 0 {
			t.Fatalf("topic %s: subscriptions %+v after delete", topic, subs)
		}
	}
}

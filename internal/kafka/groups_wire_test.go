package kafka_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
)

// Group APIs at exact versions, over a raw connection.

type groupWire struct {
	t    *testing.T
	nc   net.Conn
	corr int32
}

func dialGroupWire(t *testing.T, addr string) *groupWire {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &groupWire{t: t, nc: nc}
}

// do sends req at version v and decodes the answer.
func (w *groupWire) do(req kmsg.Request, v int16) kmsg.Response {
	w.t.Helper()
	resp, err := w.try(req, v)
	if err != nil {
		w.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), v, err)
	}
	return resp
}

func (w *groupWire) try(req kmsg.Request, v int16) (kmsg.Response, error) {
	req.SetVersion(v)
	w.corr++
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("wire")).AppendRequest(nil, req, w.corr)
	w.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := w.nc.Write(frame); err != nil {
		return nil, err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(w.nc, hdr[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:4])-4)
	if _, err := io.ReadFull(w.nc, body); err != nil {
		return nil, err
	}
	if got := int32(binary.BigEndian.Uint32(hdr[4:])); got != w.corr {
		return nil, errors.New("correlation id mismatch")
	}
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != 18 { // ApiVersions: always response header v0
		body = body[1:] // no tags in our response headers
	}
	return resp, resp.ReadFrom(body)
}

func TestGroupWireFindCoordinator(t *testing.T) {
	srv := groupServer(t, "")
	w := dialGroupWire(t, srv.KafkaAddr())
	for v := int16(0); v <= 3; v++ {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKey = "g"
		resp := w.do(req, v).(*kmsg.FindCoordinatorResponse)
		if resp.ErrorCode != 0 || resp.Port <= 0 || resp.Host == "" {
			t.Fatalf("v%d: %+v", v, resp)
		}
	}
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType = 1
	req.CoordinatorKeys = []string{"txn-a", "txn-b"}
	resp := w.do(req, 4).(*kmsg.FindCoordinatorResponse)
	if len(resp.Coordinators) != 2 || resp.Coordinators[1].Key != "txn-b" || resp.Coordinators[0].ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("transactions: %+v", resp)
	}
	req.CoordinatorType = 2
	req.CoordinatorKeys = []string{"g:AAAAAAAAAAAAAAAAAAAAAA:3", "bad"}
	resp = w.do(req, 6).(*kmsg.FindCoordinatorResponse)
	if resp.Coordinators[0].ErrorCode != 0 || resp.Coordinators[1].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("share keys: %+v", resp)
	}
	req.CoordinatorType = 9
	resp = w.do(req, 5).(*kmsg.FindCoordinatorResponse)
	if resp.Coordinators[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("unknown type: %+v", resp)
	}
}

func consumerMeta(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Topics = topics
	return m.AppendTo(nil)
}

func TestGroupWireOldVersionsAndOffsets(t *testing.T) {
	srv := groupServer(t, "")
	groupTopic(t, srv, "w", 2)
	groupProduceN(t, srv, "w", "a", 20)
	w := dialGroupWire(t, srv.KafkaAddr())

	// JoinGroup v0: no MEMBER_ID_REQUIRED, no rebalance timeout.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.SessionTimeoutMillis, join.ProtocolType = "old", 6000, "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: consumerMeta("w")}}
	jr := w.do(join, 0).(*kmsg.JoinGroupResponse)
	if jr.ErrorCode != 0 || jr.Generation != 1 || jr.LeaderID != jr.MemberID || len(jr.Members) != 1 || jr.Protocol == nil || *jr.Protocol != "range" {
		t.Fatalf("join v0: %+v", jr)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.Generation, sync.MemberID = "old", jr.Generation, jr.MemberID
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: jr.MemberID, MemberAssignment: []byte("x")}}
	if sr := w.do(sync, 0).(*kmsg.SyncGroupResponse); sr.ErrorCode != 0 || string(sr.MemberAssignment) != "x" {
		t.Fatalf("sync v0: %+v", sr)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.Generation, hb.MemberID = "old", jr.Generation, jr.MemberID
	if r := w.do(hb, 0).(*kmsg.HeartbeatResponse); r.ErrorCode != 0 {
		t.Fatalf("heartbeat v0: %+v", r)
	}
	// OffsetCommit v2 from the member, OffsetFetch v1.
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.Generation, oc.MemberID = "old", jr.Generation, jr.MemberID
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "w", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 1, Offset: 3, Metadata: kmsg.StringPtr("m")}}}}
	if r := w.do(oc, 2).(*kmsg.OffsetCommitResponse); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit v2: %+v", r)
	}
	// OffsetDelete of a subscribed topic is refused while the group is active.
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "old"
	od.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "w", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 1}}}}
	if r := w.do(od, 0).(*kmsg.OffsetDeleteResponse); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != kerr.GroupSubscribedToTopic.Code {
		t.Fatalf("offset delete while subscribed: %+v", r)
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Group = "old"
	of.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "w", Partitions: []int32{0, 1, 7}}}
	fr := w.do(of, 1).(*kmsg.OffsetFetchResponse)
	ps := fr.Topics[0].Partitions
	if ps[0].Offset != -1 || ps[1].Offset != 3 || *ps[1].Metadata != "m" || ps[2].Offset != -1 {
		t.Fatalf("fetch v1: %+v", fr)
	}
	// A wrong generation, an unknown member.
	oc.Generation = 9
	if r := w.do(oc, 5).(*kmsg.OffsetCommitResponse); r.Topics[0].Partitions[0].ErrorCode != kerr.IllegalGeneration.Code {
		t.Fatalf("commit with a wrong generation: %+v", r)
	}
	// LeaveGroup v0.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "old", "nobody"
	if r := w.do(leave, 0).(*kmsg.LeaveGroupResponse); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("leave unknown: %+v", r)
	}
	leave.MemberID = jr.MemberID
	if r := w.do(leave, 2).(*kmsg.LeaveGroupResponse); r.ErrorCode != 0 {
		t.Fatalf("leave: %+v", r)
	}

	// The group is empty: an anonymous commit (v0) is allowed, with a topic id (v10) too.
	oc = kmsg.NewPtrOffsetCommitRequest()
	oc.Group = "old"
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "w", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5}}}}
	if r := w.do(oc, 0).(*kmsg.OffsetCommitResponse); r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("anonymous commit v0: %+v", r)
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("w")}}
	id := w.do(md, 12).(*kmsg.MetadataResponse).Topics[0].TopicID
	oc.Topics = []kmsg.OffsetCommitRequestTopic{
		{TopicID: id, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 1, Offset: 6, LeaderEpoch: 0}}},
		{TopicID: [16]byte{1}, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}},
	}
	r := w.do(oc, 10).(*kmsg.OffsetCommitResponse)
	if r.Topics[0].TopicID != id || r.Topics[0].Partitions[0].ErrorCode != 0 || r.Topics[1].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("commit v10: %+v", r)
	}
	// OffsetFetch v8: two groups; v10 by topic id; null topics = all.
	of = kmsg.NewPtrOffsetFetchRequest()
	of.Groups = []kmsg.OffsetFetchRequestGroup{
		{Group: "old", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "w", Partitions: []int32{0, 1}}}},
		{Group: "other"},
	}
	fr = w.do(of, 8).(*kmsg.OffsetFetchResponse)
	if len(fr.Groups) != 2 || fr.Groups[0].Topics[0].Partitions[0].Offset != 5 || fr.Groups[0].Topics[0].Partitions[1].Offset != 6 ||
		fr.Groups[0].Topics[0].Partitions[1].LeaderEpoch != 0 || len(fr.Groups[1].Topics) != 0 {
		t.Fatalf("fetch v8: %+v", fr)
	}
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "old", Topics: []kmsg.OffsetFetchRequestGroupTopic{{TopicID: id, Partitions: []int32{1}}, {TopicID: [16]byte{2}, Partitions: []int32{0}}}}}
	fr = w.do(of, 10).(*kmsg.OffsetFetchResponse)
	if g := fr.Groups[0]; g.Topics[0].TopicID != id || g.Topics[0].Partitions[0].Offset != 6 || g.Topics[1].Partitions[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("fetch v10: %+v", fr)
	}
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "old"}}
	fr = w.do(of, 10).(*kmsg.OffsetFetchResponse)
	if g := fr.Groups[0]; len(g.Topics) != 1 || g.Topics[0].TopicID != id || len(g.Topics[0].Partitions) != 2 {
		t.Fatalf("fetch all v10: %+v", fr)
	}

	// OffsetDelete now that the group is empty.
	if r := w.do(od, 0).(*kmsg.OffsetDeleteResponse); r.ErrorCode != 0 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("offset delete: %+v", r)
	}
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "old", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "w", Partitions: []int32{0, 1}}}}}
	fr = w.do(of, 9).(*kmsg.OffsetFetchResponse)
	if ps := fr.Groups[0].Topics[0].Partitions; ps[0].Offset != 5 || ps[1].Offset != -1 {
		t.Fatalf("after offset delete: %+v", ps)
	}
	od.Group = "nothing-here"
	if r := w.do(od, 0).(*kmsg.OffsetDeleteResponse); r.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Fatalf("offset delete of an unknown group: %+v", r)
	}
}

func TestGroupWireListDescribeDeleteVersions(t *testing.T) {
	srv := groupServer(t, "")
	groupTopic(t, srv, "lv", 1)
	if _, err := serverhook.Broker(srv).CreateSubscription("lv", "sub", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	w := dialGroupWire(t, srv.KafkaAddr())
	for v := int16(0); v <= 5; v++ {
		req := kmsg.NewPtrListGroupsRequest()
		resp := w.do(req, v).(*kmsg.ListGroupsResponse)
		if len(resp.Groups) != 1 || resp.Groups[0].Group != "sub" || resp.Groups[0].ProtocolType != "consumer" {
			t.Fatalf("list v%d: %+v", v, resp)
		}
	}
	req := kmsg.NewPtrListGroupsRequest()
	req.TypesFilter = []string{"consumer"}
	if resp := w.do(req, 5).(*kmsg.ListGroupsResponse); len(resp.Groups) != 0 {
		t.Fatalf("types filter: %+v", resp)
	}
	req.TypesFilter = []string{"Classic"}
	req.StatesFilter = []string{"empty"}
	if resp := w.do(req, 5).(*kmsg.ListGroupsResponse); len(resp.Groups) != 1 || resp.Groups[0].GroupState != "Empty" || resp.Groups[0].GroupType != "classic" {
		t.Fatalf("filters: %+v", resp)
	}
	for v := int16(0); v <= 6; v++ {
		d := kmsg.NewPtrDescribeGroupsRequest()
		d.Groups = []string{"sub", "none"}
		d.IncludeAuthorizedOperations = true
		resp := w.do(d, v).(*kmsg.DescribeGroupsResponse)
		if resp.Groups[0].State != "Empty" || resp.Groups[1].State != "Dead" {
			t.Fatalf("describe v%d: %+v", v, resp)
		}
		if want := v >= 6; (resp.Groups[1].ErrorCode == kerr.GroupIDNotFound.Code) != want {
			t.Fatalf("describe v%d unknown group: %+v", v, resp.Groups[1])
		}
	}
	for v := int16(0); v <= 3; v++ {
		d := kmsg.NewPtrDeleteGroupsRequest()
		d.Groups = []string{"none"}
		resp := w.do(d, v).(*kmsg.DeleteGroupsResponse)
		if resp.Groups[0].ErrorCode != kerr.GroupIDNotFound.Code || (v >= 3) != (resp.Groups[0].ErrorMessage != nil) {
			t.Fatalf("delete v%d: %+v", v, resp)
		}
	}
}

func TestGroupWireBadInput(t *testing.T) {
	srv := groupServer(t, "")
	w := dialGroupWire(t, srv.KafkaAddr())
	// Member id required, then errors a rejoin with the id can get.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = "bad", 6000, 6000, "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	jr := w.do(join, 7).(*kmsg.JoinGroupResponse)
	if jr.ErrorCode != kerr.MemberIDRequired.Code || jr.MemberID == "" || jr.ProtocolType != nil {
		t.Fatalf("first join v7: %+v", jr)
	}
	join.SessionTimeoutMillis = 100
	if r := w.do(join, 7).(*kmsg.JoinGroupResponse); r.ErrorCode != kerr.InvalidSessionTimeout.Code {
		t.Fatalf("short session: %+v", r)
	}
	join.SessionTimeoutMillis = 6000
	join.Protocols = nil
	if r := w.do(join, 7).(*kmsg.JoinGroupResponse); r.ErrorCode != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("no protocols: %+v", r)
	}
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	join.Group = "bad/group"
	if r := w.do(join, 7).(*kmsg.JoinGroupResponse); r.ErrorCode != kerr.InvalidGroupID.Code {
		t.Fatalf("invalid group id: %+v", r)
	}
	join.Group = ""
	if r := w.do(join, 7).(*kmsg.JoinGroupResponse); r.ErrorCode != kerr.InvalidGroupID.Code {
		t.Fatalf("empty group id: %+v", r)
	}
	join.Group, join.MemberID = "bad", "made-up"
	if r := w.do(join, 7).(*kmsg.JoinGroupResponse); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("made-up member: %+v", r)
	}
	// The pending member may leave (v3 batch) without having joined.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = "bad"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: jr.MemberID}, {MemberID: "nobody"}, {InstanceID: kmsg.StringPtr("nope")}}
	lr := w.do(leave, 5).(*kmsg.LeaveGroupResponse)
	if lr.ErrorCode != 0 || lr.Members[0].ErrorCode != 0 || lr.Members[1].ErrorCode != kerr.UnknownMemberID.Code || lr.Members[2].ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("batch leave: %+v", lr)
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID = "bad", "nobody"
	if r := w.do(sync, 5).(*kmsg.SyncGroupResponse); r.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("sync: %+v", r)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group = ""
	if r := w.do(hb, 4).(*kmsg.HeartbeatResponse); r.ErrorCode != kerr.InvalidGroupID.Code {
		t.Fatalf("heartbeat: %+v", r)
	}
	// A truncated JoinGroup closes the connection; the server carries on.
	frame := kmsg.NewRequestFormatter().AppendRequest(nil, join, 99)
	frame = frame[:len(frame)-3]
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	w.nc.Write(frame)
	w.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := w.nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("truncated request answered")
	}
	w2 := dialGroupWire(t, srv.KafkaAddr())
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKeys = []string{"g"}
	if r := w2.do(fc, 4).(*kmsg.FindCoordinatorResponse); r.Coordinators[0].ErrorCode != 0 {
		t.Fatalf("after bad input: %+v", r)
	}
}

package kshare

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/kafka/kwire"
	"github.com/spoolmq/spool/internal/state"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is a real broker on a temporary data directory with a fake clock,
// and the share groups over it.
type env struct {
	t        *testing.T
	clk      *clock.Fake
	b        *broker.Broker
	sg       *Groups
	settings Settings
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, clk: clock.NewFake(time.Unix(1_700_000_000, 0))}
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: dir, State: st, Clock: e.clk, Logger: quiet, MaintenanceInterval: time.Hour})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		st.Close()
	})
	e.b = b
	e.settings = Settings{Start: catalog.Position{Kind: catalog.Earliest}, Session: 10 * time.Second, Heartbeat: time.Second}
	e.sg = New(b, quiet, Timings{Session: 10 * time.Second, Heartbeat: time.Second}, func(string) Settings { return e.settings })
	return e
}

func (e *env) topic(name string, partitions int32, messages int) [16]byte {
	e.t.Helper()
	t, err := e.b.CreateTopic(name, catalog.TopicConfig{Partitions: partitions})
	if err != nil {
		e.t.Fatal(err)
	}
	msgs := make([]broker.Message, messages)
	for i := range msgs {
		msgs[i] = broker.Message{Value: fmt.Appendf(nil, "m-%d", i), Partition: 0}
	}
	if _, err := e.b.Publish(name, msgs); err != nil {
		e.t.Fatal(err)
	}
	return kwire.UUIDBytes(t.ID)
}

func (e *env) heartbeat(member string, epoch int32, topics ...string) (*kmsg.ShareGroupHeartbeatResponse, *HeartbeatError) {
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.MemberEpoch = "g", member, epoch
	if topics != nil {
		req.SubscribedTopicNames = topics
	}
	resp := req.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
	return resp, e.sg.Heartbeat(e.clk.Now(), "client", "127.0.0.1", req, resp)
}

func (e *env) lease(member, topic string, max int) broker.Leased {
	e.t.Helper()
	l, err := e.b.Lease(topic, "g", Holder(member, 0), 0, LeaseOptions(max, 1<<20, 0, false, 10_000))
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// A join creates the group's queue subscription (start earliest, the share
// in-flight limit) and assigns every partition; a member that stops
// heartbeating is evicted and its leases come back at once.
func TestShareMembershipAndEviction(t *testing.T) {
	e := newEnv(t)
	id := e.topic("jobs", 2, 5)
	resp, herr := e.heartbeat("m1", 0, "jobs", "nope")
	if herr != nil {
		t.Fatal(herr)
	}
	if resp.MemberEpoch != 1 || resp.HeartbeatIntervalMillis != 1000 || len(resp.Assignment.TopicPartitions) != 1 ||
		resp.Assignment.TopicPartitions[0].TopicID != id || fmt.Sprint(resp.Assignment.TopicPartitions[0].Partitions) != "[0 1]" {
		t.Fatalf("join answer %+v", resp)
	}
	sub, err := e.b.QueueSubscription("jobs", "g")
	if err != nil || sub.MaxInFlight != shareMaxInFlight {
		t.Fatalf("subscription %+v %v", sub, err)
	}
	if _, herr := e.heartbeat("m2", 0, "jobs"); herr != nil {
		t.Fatal(herr)
	}
	if v, ok := e.sg.Describe("g"); !ok || len(v.Members) != 2 || v.Members[0].Host != "/127.0.0.1" || v.Epoch != 2 {
		t.Fatalf("describe %+v", v)
	}
	if _, herr := e.heartbeat("m1", 5); herr == nil || herr.Code != kerr.FencedMemberEpoch.Code {
		t.Fatalf("stale epoch: %+v", herr)
	}
	// m1 leases (its session notes the topic), then goes silent.
	if r, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m1", Epoch: 0}); code != 0 || r.Epoch != 0 {
		t.Fatalf("open session: %d", code)
	}
	if !e.sg.NoteLeasing("g", "m1", 0, "jobs") {
		t.Fatal("NoteLeasing of a member")
	}
	if l := e.lease("m1", "jobs", 3); l.Leased != 3 {
		t.Fatalf("m1 leased %d", l.Leased)
	}
	e.clk.Advance(6 * time.Second)
	if _, herr := e.heartbeat("m2", 2); herr != nil {
		t.Fatal(herr)
	}
	e.clk.Advance(5 * time.Second)
	e.sg.EvictExpired(e.clk.Now())
	if e.sg.IsMember("g", "m1") || !e.sg.IsMember("g", "m2") {
		t.Fatal("eviction after the session timeout")
	}
	// Released at once (their 30 s lock has not run out): back after the
	// backoff, their delivery counted.
	e.sg.NoteLeasing("g", "m2", 0, "jobs")
	if l := e.lease("m2", "jobs", 10); l.Leased != 2 || l.Runs[0].First != 3 {
		t.Fatalf("after the eviction m2 leased %+v", l)
	}
	e.clk.Advance(3 * time.Second)
	e.b.QueueTick()
	if l := e.lease("m2", "jobs", 10); l.Leased != 3 || l.Runs[0] != (broker.LeaseRun{First: 0, Last: 2, Deliveries: 2}) {
		t.Fatalf("after the backoff m2 leased %+v", l)
	}
	if _, herr := e.heartbeat("m1", 1); herr == nil || herr.Code != kerr.UnknownMemberID.Code {
		t.Fatalf("evicted member's heartbeat: %+v", herr)
	}
	// Leaving (epoch -1) releases too, and the group goes with its last member.
	if _, herr := e.heartbeat("m2", -1); herr != nil {
		t.Fatal(herr)
	}
	if e.sg.HasMembers("g") || len(e.sg.Names()) != 0 {
		t.Fatal("group without members still listed")
	}
	e.clk.Advance(10 * time.Second)
	e.b.QueueTick()
	if l := e.lease("m3", "jobs", 10); l.Leased != 5 {
		t.Fatalf("after the leave leased %d", l.Leased)
	}
	// A stream subscription of the group's name is refused.
	e.topic("orders", 1, 1)
	if _, err := e.b.CreateSubscription("orders", "g", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, herr := e.heartbeat("m4", 0, "orders"); herr == nil || herr.Code != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("stream subscription: %+v", herr)
	}
}

// Share sessions: epoch 0 opens, the current epoch advances, a wrong one
// is refused, -1 closes and hands back the topics to release.
func TestShareSessions(t *testing.T) {
	e := newEnv(t)
	id := e.topic("jobs", 1, 1)
	if _, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Epoch: 0}); code != kerr.UnknownMemberID.Code {
		t.Fatalf("not a member: %d", code)
	}
	if _, herr := e.heartbeat("m", 0, "jobs"); herr != nil {
		t.Fatal(herr)
	}
	if _, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Epoch: 1}); code != kerr.ShareSessionNotFound.Code {
		t.Fatalf("no session: %d", code)
	}
	tp := TP{ID: id, P: 0}
	r, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Epoch: 0, Add: []TP{tp}})
	if code != 0 || len(r.Parts) != 1 || r.Parts[0] != tp {
		t.Fatalf("open: %+v %d", r, code)
	}
	if _, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Epoch: 2}); code != kerr.InvalidShareSessionEpoch.Code {
		t.Fatalf("wrong epoch: %d", code)
	}
	r, code, _ = e.sg.Session(SessionOp{Group: "g", Member: "m", Epoch: 1, Forget: []TP{tp}})
	if code != 0 || r.Epoch != 1 || len(r.Parts) != 0 {
		t.Fatalf("epoch 1: %+v %d", r, code)
	}
	e.sg.NoteLeasing("g", "m", 0, "jobs")
	r, code, _ = e.sg.Session(SessionOp{Group: "g", Member: "m", Epoch: -1})
	if code != 0 || !r.Leased["jobs"] {
		t.Fatalf("close: %+v %d", r, code)
	}
	if _, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Epoch: 2}); code != kerr.ShareSessionNotFound.Code {
		t.Fatalf("after close: %d", code)
	}
	e.settings.Lock = 7 * time.Second
	e.sg.ApplySettings("g", e.settings)
	if r, _, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Epoch: 0}); r.Lock != 7*time.Second {
		t.Fatalf("lock after ApplySettings: %s", r.Lock)
	}
}

// A member has one share session per connection (one per broker it
// fetches from, all served by the coordinator on a cluster): each has its
// own partitions and epochs, opening or closing one leaves the others, and
// closing one releases the member's leases.
func TestShareSessionsPerConnection(t *testing.T) {
	e := newEnv(t)
	id := e.topic("jobs", 2, 2)
	if _, herr := e.heartbeat("m", 0, "jobs"); herr != nil {
		t.Fatal(herr)
	}
	p0, p1 := TP{ID: id, P: 0}, TP{ID: id, P: 1}
	open := func(conn uint64, tp TP) {
		t.Helper()
		if r, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Conn: conn, Epoch: 0, Add: []TP{tp}}); code != 0 || len(r.Parts) != 1 || r.Parts[0] != tp {
			t.Fatalf("open on connection %d: %+v %d", conn, r, code)
		}
	}
	open(1, p0)
	open(2, p1)
	for _, c := range []struct {
		conn  uint64
		epoch int32
		part  TP
	}{{1, 1, p0}, {2, 1, p1}, {2, 2, p1}, {1, 2, p0}} {
		r, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Conn: c.conn, Epoch: c.epoch})
		if code != 0 || r.Epoch != c.epoch || len(r.Parts) != 1 || r.Parts[0] != c.part {
			t.Fatalf("connection %d epoch %d: %+v %d", c.conn, c.epoch, r, code)
		}
	}
	if _, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Conn: 3, Epoch: 1}); code != kerr.ShareSessionNotFound.Code {
		t.Fatalf("a connection without a session: %d", code)
	}
	open(1, p0) // reopening one session leaves the other
	if r, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Conn: 2, Epoch: 3}); code != 0 || r.Epoch != 3 {
		t.Fatalf("connection 2 after connection 1 reopened: %+v %d", r, code)
	}
	// Each session's leases are its own: closing connection 1's session
	// releases what it leased, not what connection 2's leased.
	lease := func(conn uint64) int64 {
		t.Helper()
		if !e.sg.NoteLeasing("g", "m", conn, "jobs") {
			t.Fatal("NoteLeasing of a member")
		}
		l, err := e.b.Lease("jobs", "g", Holder("m", conn), 0, LeaseOptions(1, 1<<20, 0, false, 10_000))
		if err != nil || l.Leased != 1 {
			t.Fatalf("lease for connection %d: %+v %v", conn, l, err)
		}
		return l.Runs[0].First
	}
	off1, off2 := lease(1), lease(2)
	r, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Conn: 1, Epoch: -1})
	if code != 0 || !r.Leased["jobs"] {
		t.Fatalf("close connection 1's: %+v %d", r, code)
	}
	e.sg.Release("g", "m", 1, r.Leased)
	tn := NewTopicNames(e.b)
	ack := func(conn uint64, off int64) int16 {
		code, _ := e.sg.ApplyAcks(tn, "g", "m", conn, AckIn{ID: id, P: 0, Batches: []AckBatchIn{{First: off, Last: off, Types: []int8{ackAccept}}}}, false, 0)
		return code
	}
	if code := ack(1, off1); code != kerr.InvalidRecordState.Code {
		t.Fatalf("ack of a record released with connection 1's session: %d", code)
	}
	if code := ack(2, off2); code != 0 {
		t.Fatalf("ack of connection 2's record after connection 1's session closed: %d", code)
	}
	if r, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Conn: 2, Epoch: 4}); code != 0 || r.Epoch != 4 {
		t.Fatalf("connection 2 after connection 1 closed: %+v %d", r, code)
	}
	for conn := uint64(10); conn < 10+shareMaxMemberSessions-1; conn++ {
		open(conn, p0)
	}
	if _, code, _ := e.sg.Session(SessionOp{Group: "g", Member: "m", Conn: 99, Epoch: 0}); code != kerr.InvalidRequest.Code {
		t.Fatalf("a session beyond the bound: %d", code)
	}
}

// Kafka's acknowledge types as lease operations: ACCEPT and GAP ack,
// RELEASE nacks into the backoff, REJECT dead-letters with its reason,
// RENEW (when allowed) extends to the group's lock.
func TestShareAcks(t *testing.T) {
	e := newEnv(t)
	id := e.topic("jobs", 1, 8)
	if _, herr := e.heartbeat("m", 0, "jobs"); herr != nil {
		t.Fatal(herr)
	}
	if l := e.lease("m", "jobs", 8); l.Leased != 8 {
		t.Fatalf("leased %d", l.Leased)
	}
	tn := NewTopicNames(e.b)
	ack := func(renew bool, batches ...AckBatchIn) (int16, string) {
		return e.sg.ApplyAcks(tn, "g", "m", 0, AckIn{ID: id, P: 0, Batches: batches}, renew, 20*time.Second)
	}
	for _, bad := range [][]AckBatchIn{
		{{First: 3, Last: 2, Types: []int8{ackAccept}}},
		{{First: 0, Last: 1, Types: []int8{ackAccept}}, {First: 1, Last: 2, Types: []int8{ackAccept}}},
		{{First: 0, Last: 2, Types: []int8{ackAccept, ackAccept}}},
		{{First: 0, Last: 0, Types: []int8{9}}},
		{{First: 0, Last: 0, Types: []int8{ackRenew}}},
		{{First: 0, Last: 0}},
	} {
		if code, _ := ack(false, bad...); code != kerr.InvalidRequest.Code {
			t.Errorf("%+v: %d", bad, code)
		}
	}
	// Offsets 0–1 accepted, 2 a gap, 3 released, 4 rejected; 5–7 renewed.
	if code, msg := ack(false, AckBatchIn{First: 0, Last: 4, Types: []int8{ackAccept, ackAccept, ackGap, ackRelease, ackReject}}); code != 0 {
		t.Fatalf("acks: %d %s", code, msg)
	}
	if code, msg := ack(true, AckBatchIn{First: 5, Last: 7, Types: []int8{ackRenew}}); code != 0 {
		t.Fatalf("renew: %d %s", code, msg)
	}
	if code, _ := ack(false, AckBatchIn{First: 0, Last: 0, Types: []int8{ackAccept}}); code != kerr.InvalidRecordState.Code {
		t.Fatalf("accept of a finished offset: %d", code)
	}
	e.b.QueueTick()
	dls, _, err := e.b.ListDeadLetters("jobs", "g", 0, 10)
	if err != nil || len(dls) != 1 || dls[0].OriginOffset != 4 || dls[0].Error != rejectedText {
		t.Fatalf("dead letters %+v %v", dls, err)
	}
	// The released offset comes back after the backoff (1 s and jitter),
	// with its delivery counted; the renewed ones are held for 20 s.
	e.clk.Advance(15 * time.Second)
	e.b.QueueTick()
	l := e.lease("other", "jobs", 10)
	if l.Leased != 1 || l.Runs[0] != (broker.LeaseRun{First: 3, Last: 3, Deliveries: 2}) {
		t.Fatalf("after the backoff %+v", l)
	}
	e.clk.Advance(10 * time.Second)
	e.b.QueueTick()
	e.clk.Advance(10 * time.Minute) // past the renewed leases and their backoff
	e.b.QueueTick()
	if l := e.lease("other", "jobs", 10); l.Leased != 3 || l.Runs[0].First != 5 {
		t.Fatalf("renewed leases after they ran out: %+v", l)
	}
	if code, _ := e.sg.ApplyAcks(tn, "g", "m", 0, AckIn{ID: [16]byte{1}, P: 0, Batches: []AckBatchIn{{First: 0, Last: 0, Types: []int8{ackAccept}}}}, false, 0); code != kerr.UnknownTopicID.Code {
		t.Fatalf("unknown topic id: %d", code)
	}
}

// One acquisition takes at most half of a large in-flight limit, leaving
// room for the consumer's next fetch; a small limit is used whole.
func TestShareLeaseHalfTheInFlightLimit(t *testing.T) {
	e := newEnv(t)
	e.topic("jobs", 1, 1000)
	if _, err := e.b.CreateSubscription("jobs", "g", catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{MaxInFlight: 600}}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{300, 300, 0} {
		l, err := e.b.Lease("jobs", "g", "m", 0, LeaseOptions(1000, 8<<20, 0, true, 600))
		if err != nil || l.Leased != want {
			t.Fatalf("call %d: leased %d, want %d (%v)", i, l.Leased, want, err)
		}
	}
	if o := LeaseOptions(1000, 1, 0, false, 255); o.Cap != 0 {
		t.Fatalf("a small in-flight limit is capped: %+v", o)
	}
}

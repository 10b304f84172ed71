package kgroup

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/clock"
)

// Deterministic tests of the classic group state machine: a fake clock,
// no goroutine; tick is called by hand.

type coreEnv struct {
	t   *testing.T
	clk *clock.Fake
	gc  *Coordinator
}

func newCoreEnv(t *testing.T) *coreEnv {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	return &coreEnv{t: t, clk: clk, gc: New(clk, DefaultLimits())}
}

func (e *coreEnv) advance(d time.Duration) {
	e.t.Helper()
	e.clk.Advance(d)
	if next := e.gc.Tick(); !next.IsZero() && !next.After(e.clk.Now()) {
		e.t.Fatalf("next deadline %v is not after now %v", next, e.clk.Now())
	}
}

func protos(names ...string) []kmsg.JoinGroupRequestProtocol {
	out := make([]kmsg.JoinGroupRequestProtocol, len(names))
	for i, n := range names {
		out[i] = kmsg.JoinGroupRequestProtocol{Name: n, Metadata: []byte("meta-" + n)}
	}
	return out
}

func jreq(member string, names ...string) JoinRequest {
	return JoinRequest{Version: 9, Group: "g", MemberID: member, ClientID: "cl", SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 30 * time.Second, ProtocolType: "consumer", Protocols: protos(names...)}
}

// pendingJoin is a JoinGroup that may still be waiting.
type pendingJoin struct {
	res JoinResult
	ch  <-chan JoinResult
}

func (e *coreEnv) join(r JoinRequest) *pendingJoin {
	res, ch := e.gc.Join(r)
	return &pendingJoin{res: res, ch: ch}
}

// done returns the answer, or fails if it is still waiting.
func (p *pendingJoin) done(t *testing.T) JoinResult {
	t.Helper()
	if p.ch == nil {
		return p.res
	}
	select {
	case r := <-p.ch:
		p.res, p.ch = r, nil
		return r
	default:
		t.Fatal("JoinGroup still waiting")
	}
	return JoinResult{}
}

func (p *pendingJoin) waiting() bool {
	if p.ch == nil {
		return false
	}
	select {
	case r := <-p.ch:
		p.res, p.ch = r, nil
		return false
	default:
		return true
	}
}

// newMember joins a dynamic member through MEMBER_ID_REQUIRED.
func (e *coreEnv) newMember(names ...string) (string, *pendingJoin) {
	e.t.Helper()
	first := e.join(jreq("", names...)).done(e.t)
	if first.Code != kerr.MemberIDRequired.Code || first.MemberID == "" {
		e.t.Fatalf("first join: %+v", first)
	}
	return first.MemberID, e.join(jreq(first.MemberID, names...))
}

func (e *coreEnv) sync(member string, gen int32, assign map[string]string) (SyncResult, <-chan SyncResult) {
	r := SyncRequest{Version: 5, Group: "g", Generation: gen, MemberID: member}
	for m, a := range assign {
		r.Assignments = append(r.Assignments, kmsg.SyncGroupRequestGroupAssignment{MemberID: m, MemberAssignment: []byte(a)})
	}
	return e.gc.Sync(r)
}

func recvSync(t *testing.T, ch <-chan SyncResult) SyncResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	default:
		t.Fatal("SyncGroup still waiting")
	}
	return SyncResult{}
}

func TestGroupCoreJoinSyncRebalance(t *testing.T) {
	e := newCoreEnv(t)
	a, ja := e.newMember("range")
	if !ja.waiting() {
		t.Fatal("first join answered before the initial delay")
	}
	e.advance(DefaultLimits().InitialDelay)
	ra := ja.done(t)
	if ra.Code != 0 || ra.Generation != 1 || ra.Leader != a || len(ra.Members) != 1 || ra.Protocol != "range" || ra.ProtocolType != "consumer" {
		t.Fatalf("join result %+v", ra)
	}
	res, ch := e.sync(a, 1, map[string]string{a: "A1"})
	if ch != nil {
		res = recvSync(t, ch)
	}
	if res.Code != 0 || string(res.Assignment) != "A1" {
		t.Fatalf("leader sync %+v", res)
	}
	if code := e.gc.Heartbeat("g", a, nil, 1); code != 0 {
		t.Fatalf("heartbeat %d", code)
	}

	// A second member: the group rebalances; the first learns it from its
	// heartbeat and rejoins.
	b, jb := e.newMember("range")
	if !jb.waiting() {
		t.Fatal("second member's join answered before the first rejoined")
	}
	if code := e.gc.Heartbeat("g", a, nil, 1); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("heartbeat during rebalance: %d", code)
	}
	// Commits of the current generation are still allowed while preparing.
	if code := e.gc.ValidateCommit("g", a, nil, 1); code != 0 {
		t.Fatalf("commit while preparing: %d", code)
	}
	ja = e.join(jreq(a, "range"))
	ra, rb := ja.done(t), jb.done(t)
	if ra.Generation != 2 || rb.Generation != 2 || ra.Leader != a || rb.Leader != a || len(ra.Members) != 2 || len(rb.Members) != 0 {
		t.Fatalf("gen 2: %+v / %+v", ra, rb)
	}
	// Commits wait for the assignment: REBALANCE_IN_PROGRESS until SyncGroup.
	if code := e.gc.ValidateCommit("g", a, nil, 2); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("commit while completing: %d", code)
	}
	_, chb := e.sync(b, 2, nil)
	if chb == nil {
		t.Fatal("follower sync answered before the leader's")
	}
	_, cha := e.sync(a, 2, map[string]string{a: "A2"}) // b left out: empty assignment
	if r := recvSync(t, cha); string(r.Assignment) != "A2" {
		t.Fatalf("leader %+v", r)
	}
	if r := recvSync(t, chb); r.Code != 0 || len(r.Assignment) != 0 || r.Assignment == nil {
		t.Fatalf("follower %+v", r)
	}
	if code := e.gc.ValidateCommit("g", b, nil, 1); code != kerr.IllegalGeneration.Code {
		t.Fatalf("stale generation commit: %d", code)
	}
	if code := e.gc.ValidateCommit("g", "", nil, -1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("anonymous commit to an active group: %d", code)
	}
	gi, _ := e.gc.Describe("g")
	if gi.State != Stable || len(gi.Members) != 2 || gi.Protocol != "range" {
		t.Fatalf("describe %+v", gi)
	}

	// The leader leaves: b rejoins and becomes the leader.
	if codes := e.gc.Leave("g", []LeaveMember{{MemberID: a}}); codes[0] != 0 {
		t.Fatalf("leave %v", codes)
	}
	if code := e.gc.Heartbeat("g", b, nil, 2); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("heartbeat after leave %d", code)
	}
	rb = e.join(jreq(b, "range")).done(t)
	if rb.Generation != 3 || rb.Leader != b || len(rb.Members) != 1 {
		t.Fatalf("after leave %+v", rb)
	}
	// The last member leaves: Empty, then forgotten; anonymous commits
	// are allowed again.
	e.gc.Leave("g", []LeaveMember{{MemberID: b}})
	if _, ok := e.gc.Describe("g"); ok {
		t.Fatal("empty group still described")
	}
	if code := e.gc.ValidateCommit("g", "", nil, -1); code != 0 {
		t.Fatalf("anonymous commit to an empty group: %d", code)
	}
	if code := e.gc.ValidateCommit("g", b, nil, 3); code != kerr.UnknownMemberID.Code {
		t.Fatalf("member commit to an empty group: %d", code)
	}
	if e.gc.total != 0 {
		t.Fatalf("member count %d", e.gc.total)
	}
}

func TestGroupCoreTimeouts(t *testing.T) {
	e := newCoreEnv(t)
	a, ja := e.newMember("range")
	e.advance(time.Second)
	ja.done(t)
	_, ch := e.sync(a, 1, map[string]string{a: "x"})
	recvSync(t, ch)
	b, jb := e.newMember("range")
	ja = e.join(jreq(a, "range"))
	jb.done(t)
	ja.done(t)
	_, cha := e.sync(a, 2, map[string]string{a: "x", b: "y"})
	recvSync(t, cha)
	// b never syncs: after the rebalance timeout it is removed.
	for range 3 {
		e.advance(9 * time.Second)
		e.gc.Heartbeat("g", a, nil, 2)
	}
	e.advance(3 * time.Second)
	if code := e.gc.Heartbeat("g", b, nil, 2); code != kerr.UnknownMemberID.Code {
		t.Fatalf("b after the sync timeout: %d", code)
	}
	if code := e.gc.Heartbeat("g", a, nil, 2); code != kerr.RebalanceInProgress.Code {
		t.Fatalf("a after b's removal: %d", code)
	}
	ra := e.join(jreq(a, "range")).done(t)
	if ra.Generation != 3 || len(ra.Members) != 1 {
		t.Fatalf("%+v", ra)
	}
	_, cha = e.sync(a, 3, map[string]string{a: "x"})
	recvSync(t, cha)

	// Session timeout: a stops heartbeating.
	e.advance(9 * time.Second)
	if code := e.gc.Heartbeat("g", a, nil, 3); code != 0 {
		t.Fatalf("heartbeat %d", code)
	}
	e.advance(10 * time.Second)
	if code := e.gc.Heartbeat("g", a, nil, 3); code != kerr.UnknownMemberID.Code {
		t.Fatalf("after session timeout: %d", code)
	}

	// A member that does not rejoin within the rebalance timeout is removed.
	c, jc := e.newMember("range")
	e.advance(time.Second)
	jc.done(t)
	_, ch = e.sync(c, jc.res.Generation, map[string]string{c: "x"})
	recvSync(t, ch)
	d, jd := e.newMember("range")
	for range 3 {
		e.advance(9 * time.Second)
		e.gc.Heartbeat("g", c, nil, jc.res.Generation) // heartbeats, never rejoins
	}
	e.advance(4 * time.Second)
	rd := jd.done(t)
	if rd.Leader != d || len(rd.Members) != 1 {
		t.Fatalf("after rebalance timeout %+v", rd)
	}
	if code := e.gc.Heartbeat("g", c, nil, jc.res.Generation); code != kerr.UnknownMemberID.Code {
		t.Fatalf("member that did not rejoin: %d", code)
	}

	// Member ids handed out with MEMBER_ID_REQUIRED expire.
	first := e.join(jreq("", "range")).done(t)
	e.advance(11 * time.Second)
	if r := e.join(jreq(first.MemberID, "range")).done(t); r.Code != kerr.UnknownMemberID.Code {
		t.Fatalf("expired pending member: %+v", r)
	}
}

func TestGroupCoreStaticMembership(t *testing.T) {
	e := newCoreEnv(t)
	inst := "i1"
	r := jreq("", "sticky")
	r.InstanceID = &inst
	j1 := e.join(r) // static: no MEMBER_ID_REQUIRED
	e.advance(time.Second)
	r1 := j1.done(t)
	if r1.Code != 0 || r1.Generation != 1 {
		t.Fatalf("%+v", r1)
	}
	_, ch := e.sync(r1.MemberID, 1, map[string]string{r1.MemberID: "mine"})
	recvSync(t, ch)

	// Restart of the same instance: new member id, same generation and
	// assignment, no rebalance; the leader skips the assignment.
	r2 := e.join(r).done(t)
	if r2.Code != 0 || r2.MemberID == r1.MemberID || r2.Generation != 1 || !r2.SkipAssignment || r2.Leader != r2.MemberID {
		t.Fatalf("static rejoin %+v", r2)
	}
	s2, ch := e.sync(r2.MemberID, 1, nil)
	if ch != nil || string(s2.Assignment) != "mine" {
		t.Fatalf("static rejoin sync %+v", s2)
	}
	if code := e.gc.Heartbeat("g", r1.MemberID, &inst, 1); code != kerr.FencedInstanceID.Code {
		t.Fatalf("old incarnation: %d", code)
	}
	if code := e.gc.ValidateCommit("g", r1.MemberID, &inst, 1); code != kerr.FencedInstanceID.Code {
		t.Fatalf("old incarnation commit: %d", code)
	}
	if codes := e.gc.Leave("g", []LeaveMember{{MemberID: r1.MemberID, InstanceID: &inst}}); codes[0] != kerr.FencedInstanceID.Code {
		t.Fatalf("old incarnation leave: %v", codes)
	}
	// Leaving by instance id alone.
	if codes := e.gc.Leave("g", []LeaveMember{{InstanceID: &inst}}); codes[0] != 0 {
		t.Fatalf("leave by instance: %v", codes)
	}
	if _, ok := e.gc.Describe("g"); ok {
		t.Fatal("group not empty")
	}
}

func TestGroupCoreStaticReplacementFencesWaiter(t *testing.T) {
	e := newCoreEnv(t)
	inst := "i1"
	r := jreq("", "range")
	r.InstanceID = &inst
	j1 := e.join(r)
	j2 := e.join(r) // replaces the first incarnation while it waits
	if res := j1.done(t); res.Code != kerr.FencedInstanceID.Code {
		t.Fatalf("fenced waiter %+v", res)
	}
	e.advance(time.Second)
	if res := j2.done(t); res.Code != 0 || res.Generation != 1 {
		t.Fatalf("%+v", res)
	}
}

func TestGroupCoreProtocolsAndErrors(t *testing.T) {
	e := newCoreEnv(t)
	a, ja := e.newMember("roundrobin", "range")
	b, jb := e.newMember("range", "roundrobin")
	c, jc := e.newMember("range")
	e.advance(time.Second)
	for _, j := range []*pendingJoin{ja, jb, jc} {
		if r := j.done(t); r.Protocol != "range" {
			t.Fatalf("protocol %+v", r)
		}
	}
	_ = b
	_ = c
	if r := e.join(jreq("", "other")).done(t); r.Code != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("unsupported protocol: %+v", r)
	}
	other := jreq("", "range")
	other.ProtocolType = "connect"
	if r := e.join(other).done(t); r.Code != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("other protocol type: %+v", r)
	}
	if r := e.join(jreq("nobody", "range")).done(t); r.Code != kerr.UnknownMemberID.Code {
		t.Fatalf("unknown member: %+v", r)
	}
	short := jreq("", "range")
	short.SessionTimeout = time.Second
	if r := e.join(short).done(t); r.Code != kerr.InvalidSessionTimeout.Code {
		t.Fatalf("short session: %+v", r)
	}
	bad := jreq("", "range")
	bad.Group = "no spaces allowed"
	if r := e.join(bad).done(t); r.Code != kerr.InvalidGroupID.Code {
		t.Fatalf("bad group id: %+v", r)
	}
	empty := jreq("")
	if r := e.join(empty).done(t); r.Code != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("no protocols: %+v", r)
	}
	big := jreq("", "range")
	big.Group = "g2"
	big.Protocols[0].Metadata = make([]byte, 1<<20+1)
	if r := e.join(big).done(t); r.Code != kerr.InvalidRequest.Code {
		t.Fatalf("oversized metadata: %+v", r)
	}
	if res, _ := e.sync(a, 7, nil); res.Code != kerr.IllegalGeneration.Code {
		t.Fatalf("sync wrong generation %+v", res)
	}
	if res, _ := e.sync("nobody", 1, nil); res.Code != kerr.UnknownMemberID.Code {
		t.Fatalf("sync unknown member %+v", res)
	}
	wrong := "sticky"
	if res, _ := e.gc.Sync(SyncRequest{Group: "g", Generation: 1, MemberID: a, Protocol: &wrong}); res.Code != kerr.InconsistentGroupProtocol.Code {
		t.Fatalf("sync wrong protocol %+v", res)
	}
	if code := e.gc.Heartbeat("g", a, nil, 5); code != kerr.IllegalGeneration.Code {
		t.Fatalf("heartbeat wrong generation %d", code)
	}
	if code := e.gc.Heartbeat("nogroup", a, nil, 1); code != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat unknown group %d", code)
	}
	if existed, code := e.gc.Forget("g"); !existed || code != kerr.NonEmptyGroup.Code {
		t.Fatalf("forget non-empty: %v %d", existed, code)
	}
}

func TestGroupCoreMaxSize(t *testing.T) {
	e := newCoreEnv(t)
	e.gc.lim.MaxMembers = 3
	for i := range 3 {
		if r := e.join(jreq("", "range")).done(t); r.Code != kerr.MemberIDRequired.Code {
			t.Fatalf("join %d: %+v", i, r)
		}
	}
	if r := e.join(jreq("", "range")).done(t); r.Code != kerr.GroupMaxSizeReached.Code {
		t.Fatalf("over the limit: %+v", r)
	}
	e.advance(11 * time.Second) // the handed-out ids expire
	if e.gc.total != 0 || len(e.gc.groups) != 0 {
		t.Fatalf("left behind: total %d, groups %d", e.gc.total, len(e.gc.groups))
	}
}

// TestGroupCoreChurn drives many members through joins, syncs, leaves and
// timeouts and checks the bookkeeping stays consistent.
func TestGroupCoreChurn(t *testing.T) {
	e := newCoreEnv(t)
	type mem struct {
		id  string
		gen int32
		j   *pendingJoin
	}
	var ms []*mem
	for round := range 40 {
		switch round % 4 {
		case 0, 1:
			id, j := e.newMember("range")
			ms = append(ms, &mem{id: id, j: j})
		case 2:
			if len(ms) > 0 {
				e.gc.Leave("g", []LeaveMember{{MemberID: ms[0].id}})
				ms = ms[1:]
			}
		}
		for _, m := range ms {
			if m.j == nil && e.gc.Heartbeat("g", m.id, nil, m.gen) == kerr.RebalanceInProgress.Code {
				m.j = e.join(jreq(m.id, "range"))
			}
		}
		e.advance(200 * time.Millisecond)
		for _, m := range ms {
			if m.j != nil && !m.j.waiting() {
				if m.j.res.Code != 0 {
					t.Fatalf("round %d: %+v", round, m.j.res)
				}
				m.gen = m.j.res.Generation
				m.j = nil
				if res, ch := e.sync(m.id, m.gen, map[string]string{m.id: "x"}); ch == nil && res.Code != 0 {
					t.Fatalf("sync: %+v", res)
				}
			}
		}
	}
	g := e.gc.groups["g"]
	if g == nil || len(g.members) != len(ms) || e.gc.total != len(ms)+len(g.pending) {
		t.Fatalf("bookkeeping: %d members, %d tracked, total %d", len(ms), len(g.members), e.gc.total)
	}
	meta := 0
	for _, m := range g.members {
		meta += m.metaBytes
	}
	if meta != g.metaBytes {
		t.Fatalf("metadata bytes %d != %d", meta, g.metaBytes)
	}
}

// TestGroupCoreReset: after Reset, waiting joins are answered
// NOT_COORDINATOR and a member of before cannot commit or heartbeat with
// what it holds; joining again starts the group over.
func TestGroupCoreReset(t *testing.T) {
	e := newCoreEnv(t)
	a, ja := e.newMember("range")
	e.advance(DefaultInitialDelay)
	ra := ja.done(t)
	if ra.Code != 0 {
		t.Fatalf("join: %+v", ra)
	}
	if sr, _ := e.sync(a, ra.Generation, map[string]string{a: "x"}); sr.Code != 0 {
		t.Fatalf("sync: %+v", sr)
	}
	if code := e.gc.ValidateCommit("g", a, nil, ra.Generation); code != 0 {
		t.Fatalf("commit before reset: %v", kerr.ErrorForCode(code))
	}
	b, jb := e.newMember("range") // waits for a to rejoin
	if !jb.waiting() {
		t.Fatal("second member did not wait for the rebalance")
	}

	e.gc.Reset()
	if r := jb.done(t); r.Code != kerr.NotCoordinator.Code {
		t.Fatalf("waiting join after reset: %+v", r)
	}
	if code := e.gc.ValidateCommit("g", a, nil, ra.Generation); code != kerr.UnknownMemberID.Code {
		t.Fatalf("stale commit after reset: %v", kerr.ErrorForCode(code))
	}
	if code := e.gc.Heartbeat("g", b, nil, ra.Generation); code != kerr.UnknownMemberID.Code {
		t.Fatalf("stale heartbeat after reset: %v", kerr.ErrorForCode(code))
	}
	c, jc := e.newMember("range")
	e.advance(DefaultInitialDelay)
	if r := jc.done(t); r.Code != 0 || r.Leader != c {
		t.Fatalf("join after reset: %+v", r)
	}
}

// TestGroupCoreOwnedElsewhere: in a Stable consumer group, a partition the
// generation gives one member is owned elsewhere for every other member;
// a partition nobody holds is not, and a new generation forgets owners.
func TestGroupCoreOwnedElsewhere(t *testing.T) {
	e := newCoreEnv(t)
	a, ja := e.newMember("range")
	b, jb := e.newMember("range")
	e.advance(DefaultInitialDelay)
	ra, rb := ja.done(t), jb.done(t)
	if ra.Code != 0 || rb.Code != 0 {
		t.Fatalf("joins: %+v %+v", ra, rb)
	}
	leader, other := a, b
	if ra.Leader != a {
		leader, other = b, a
	}
	assign := func(parts ...int32) string {
		var ma kmsg.ConsumerMemberAssignment
		ma.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "t", Partitions: parts}}
		return string(ma.AppendTo(nil))
	}
	_, ch := e.sync(other, ra.Generation, nil)
	if sr, _ := e.sync(leader, ra.Generation, map[string]string{leader: assign(0, 1), other: assign(2)}); sr.Code != 0 {
		t.Fatalf("leader sync: %+v", sr)
	}
	recvSync(t, ch)
	for _, c := range []struct {
		member string
		part   int32
		want   bool
	}{{leader, 0, false}, {other, 0, true}, {other, 2, false}, {leader, 2, true}, {other, 7, false}} {
		if got := e.gc.OwnedElsewhere("g", c.member, nil, "t", c.part); got != c.want {
			t.Errorf("partition %d for %s: owned elsewhere %v, want %v", c.part, c.member, got, c.want)
		}
	}
	if e.gc.OwnedElsewhere("g", other, nil, "u", 0) {
		t.Error("a topic nobody holds is owned elsewhere")
	}
	// A new member starts a rebalance: owners are forgotten.
	e.newMember("range")
	if e.gc.OwnedElsewhere("g", other, nil, "t", 0) {
		t.Error("owners kept through a rebalance")
	}
}

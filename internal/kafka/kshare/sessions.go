package kshare

// Share sessions follow Kafka's fetch-session rules: epoch 0 opens one
// (replacing any), -1 closes it (releasing the member's leases), and every
// other request must carry the session's current epoch, which each
// successful ShareFetch or ShareAcknowledge advances. A session belongs to
// one connection, as in Kafka (clients send a broker their ShareFetch and
// ShareAcknowledge requests on one connection, and the session ends with
// it): a member has one session per connection. On a single node that is
// one per member; on a cluster every share fetch reaches the coordinator,
// each node forwarding its clients' on a connection of their own
// (internal/kafka/share_forward.go), so a member fetching from three
// partition leaders has three sessions there, as it would on three Kafka
// brokers. The broker knows the leases a session acquired by the member
// and the connection (Holder): acknowledgements settle them on the same
// connection (where clients send them), and closing one session releases
// its own leases only.

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

// SessionOp is what a ShareFetch or ShareAcknowledge does to its
// member's share session.
type SessionOp struct {
	Group, Member string
	Conn          uint64 // the connection the request came on
	Epoch         int32
	Add, Forget   []TP // ShareFetch only
}

// SessionResult is the session after a request's update.
type SessionResult struct {
	Parts  []TP  // the session's partitions (at close: those it had)
	Epoch  int32 // the session epoch this request used (for rotating partitions)
	Leased map[string]bool
	Lock   time.Duration // the group's share.record.lock.duration.ms; 0: unset
}

// Session validates a request's session epoch and applies it: epoch 0
// opens a session (replacing the member's), -1 closes it, any other must
// be the session's current epoch, which then advances. It returns a Kafka
// error code (0: fine) and message.
func (sg *Groups) Session(op SessionOp) (SessionResult, int16, string) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	m := sg.memberLocked(op.Group, op.Member)
	if m == nil {
		return SessionResult{}, kerr.UnknownMemberID.Code, "not a member of the share group: heartbeat first"
	}
	res := SessionResult{Lock: sg.groups[op.Group].settings.Lock}
	ss := m.sessions[op.Conn]
	switch {
	case op.Epoch == 0:
		if ss == nil && len(m.sessions) >= shareMaxMemberSessions {
			return res, kerr.InvalidRequest.Code, "too many share sessions of one member"
		}
		ss = &shareSession{parts: map[TP]struct{}{}}
		if m.sessions == nil {
			m.sessions = map[uint64]*shareSession{}
		}
		m.sessions[op.Conn] = ss
	case ss == nil:
		return res, kerr.ShareSessionNotFound.Code, "no share session: open one with epoch 0"
	case op.Epoch != -1 && op.Epoch != ss.epoch:
		return res, kerr.InvalidShareSessionEpoch.Code, "share session epoch is not the current one"
	}
	res.Epoch = ss.epoch
	for _, tp := range op.Add {
		ss.parts[tp] = struct{}{}
	}
	for _, tp := range op.Forget {
		delete(ss.parts, tp)
	}
	if len(ss.parts) > shareMaxSessionPartitions {
		delete(m.sessions, op.Conn)
		return res, kerr.InvalidRequest.Code, "too many partitions in one share session"
	}
	res.Parts = make([]TP, 0, len(ss.parts))
	for tp := range ss.parts {
		res.Parts = append(res.Parts, tp)
	}
	slices.SortFunc(res.Parts, func(a, b TP) int {
		if c := slices.Compare(a.ID[:], b.ID[:]); c != 0 {
			return c
		}
		return int(a.P) - int(b.P)
	})
	if op.Epoch == -1 {
		delete(m.sessions, op.Conn)
		res.Leased = m.leased[op.Conn]
		delete(m.leased, op.Conn)
	} else if ss.epoch++; ss.epoch <= 0 {
		ss.epoch = 1 // wraps to 1, as in Kafka
	}
	return res, 0, ""
}

// NoteLeasing records that a member is about to lease from a topic's
// subscription; false if it is no longer a member.
func (sg *Groups) NoteLeasing(group, member string, conn uint64, topic string) bool {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	m := sg.memberLocked(group, member)
	if m == nil {
		return false
	}
	if m.leased[conn] == nil {
		m.leased[conn] = map[string]bool{}
	}
	m.leased[conn][topic] = true
	return true
}

// IsMember reports whether member is in group.
func (sg *Groups) IsMember(group, member string) bool {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	return sg.memberLocked(group, member) != nil
}

// View is a copy of a group for ShareGroupDescribe.
type View struct {
	Epoch   int32
	Members []MemberView
}

// MemberView is a copy of a member for ShareGroupDescribe.
type MemberView struct {
	ID, ClientID, Host string
	Rack               *string
	Epoch              int32
	Topics             []string
	Assigned           map[string]Assigned
}

// Describe returns a copy of a group, or false if it has no members.
func (sg *Groups) Describe(group string) (View, bool) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	g := sg.groups[group]
	if g == nil {
		return View{}, false
	}
	v := View{Epoch: g.epoch}
	for _, id := range SortedKeys(g.members) {
		m := g.members[id]
		v.Members = append(v.Members, MemberView{
			ID: m.id, ClientID: m.clientID, Host: m.host, Rack: m.rack, Epoch: m.epoch,
			Topics: slices.Clone(m.topics), Assigned: m.assigned,
		})
	}
	return v, true
}

// ValidMember checks a ShareFetch/ShareAcknowledge group and member.
func ValidMember(group, member *string) (string, string, bool) {
	if group == nil || member == nil || *group == "" || *member == "" || len(*member) > MaxMemberIDLen {
		return "", "", false
	}
	return *group, *member, true
}

// TopicNames maps topic ids to names, built once per request.
type TopicNames struct {
	b *broker.Broker
	m map[[16]byte]string
}

// NewTopicNames returns the names of b's topics, read at first use.
func NewTopicNames(b *broker.Broker) *TopicNames { return &TopicNames{b: b} }

// Name returns the name of the topic with id.
func (tn *TopicNames) Name(id [16]byte) (string, bool) {
	if tn.m == nil {
		tn.m = map[[16]byte]string{}
		for _, t := range tn.b.Topics() {
			tn.m[kwire.UUIDBytes(t.ID)] = t.Name
		}
	}
	n, ok := tn.m[id]
	return n, ok
}

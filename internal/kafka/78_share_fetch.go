package kafka

// ShareFetch (key 78), v0–v2: a share group member acquires records — queue
// leases of the subscription named by the group on each topic (see
// kshare) — and may acknowledge earlier ones in the same request.
//
//   - Session: epoch 0 opens the member's share session with the listed
//     partitions (acknowledgements are refused then: INVALID_REQUEST);
//     later epochs add the listed partitions and drop the forgotten ones;
//     -1 closes it, applying its acknowledgements and releasing every
//     lease the member holds. A wrong epoch is INVALID_SHARE_SESSION_EPOCH,
//     no session SHARE_SESSION_NOT_FOUND, a member not in the group
//     UNKNOWN_MEMBER_ID.
//   - Acknowledgements are applied first: ACCEPT (and GAP) ack, RELEASE
//     nacks (redelivered after the subscription's backoff, delivery count
//     up; past max deliveries, dead-lettered), REJECT dead-letters now,
//     RENEW (v2, only with IsRenewAck) extends the lease by the ack timeout.
//     A partition's answer is in AcknowledgeErrorCode: INVALID_REQUEST for
//     malformed batches, INVALID_RECORD_STATE if some offsets were not held
//     by the member (the rest are applied).
//   - Acquisition: from the session's partitions whose topic has the
//     queue subscription (created by the heartbeat that assigned the topic;
//     a partition without one answers INCONSISTENT_GROUP_PROTOCOL), up to
//     MaxRecords (default 500) leases in all — in the batch-optimized
//     acquire mode (before v2, and ShareAcquireMode 0) rounded up to the
//     end of the last stored batch read, as Kafka does, so that a consumer
//     does not receive and decode one batch again for each few records;
//     in record-limit mode (1) never more — rotating the starting
//     partition every request; each partition's stored record batches (as
//     stored, not re-encoded) up to PartitionMaxBytes, the whole response
//     up to MaxBytes (at least one round of leases). AcquiredRecords lists
//     the leased offsets with their delivery counts; the batches also hold
//     records not leased to this member, which clients skip.
//     AcquisitionLockTimeoutMillis (v1+) is the group's
//     share.record.lock.duration.ms if set (group_configs.go), else the
//     subscriptions' ack timeout (the shortest, with several).
//   - Long poll: with nothing acquired the request waits up to
//     MaxWaitMillis (at most 30 s) for a publish, a lease ending or a
//     redelivery falling due. MinBytes is not used: one record suffices.
//   - v1 adds MaxRecords and BatchSize, v2 ShareAcquireMode and IsRenewAck
//     (then all fetch parameters must be zero and every partition must
//     carry acknowledgements: only acknowledgements are applied). Leases
//     are per record, so BatchSize does not split acquired ranges.

import (
	"context"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kshare"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

// Defaults of a ShareFetch that leaves them unset.
const (
	shareDefaultMaxRecords    = 500 // v0 has no MaxRecords
	shareDefaultLock          = 30 * time.Second
	shareDefaultMaxBytes      = 50 << 20
	shareDefaultPartitionSize = 1 << 20
)

func (s *Server) shareFetch(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ShareFetchRequest)
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
	resp.AcquisitionLockTimeoutMillis = int32(shareDefaultLock.Milliseconds())
	fail := func(code int16, msg string) (kmsg.Response, error) {
		resp.ErrorCode = code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		return resp, nil
	}
	group, member, ok := kshare.ValidMember(req.GroupID, req.MemberID)
	if !ok {
		return fail(kerr.InvalidRequest.Code, "group id and member id (1 to 36 characters) are required")
	}
	if code, msg := s.shareAuthz(ctx, group, shareTopicIDs(req)); code != 0 {
		return fail(code, msg)
	}
	renew := req.Version >= 2 && req.IsRenewAck
	var (
		acks        []kshare.AckIn
		add, forget []kshare.TP
	)
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			tp := kshare.TP{ID: rt.TopicID, P: rp.Partition}
			add = append(add, tp)
			if len(rp.AcknowledgementBatches) == 0 {
				if renew {
					return fail(kerr.InvalidRequest.Code, "a renew-only fetch must acknowledge every partition it names")
				}
				continue
			}
			a := kshare.AckIn{ID: tp.ID, P: tp.P}
			for _, b := range rp.AcknowledgementBatches {
				a.Batches = append(a.Batches, kshare.AckBatchIn{First: b.FirstOffset, Last: b.LastOffset, Types: b.AcknowledgeTypes})
			}
			acks = append(acks, a)
		}
	}
	for _, ft := range req.ForgottenTopicsData {
		for _, p := range ft.Partitions {
			forget = append(forget, kshare.TP{ID: ft.TopicID, P: p})
		}
	}
	switch {
	case renew && (req.MaxBytes != 0 || req.MinBytes != 0 || req.MaxRecords != 0 || req.MaxWaitMillis != 0):
		return fail(kerr.InvalidRequest.Code, "a renew-only fetch must not ask for records")
	case req.ShareSessionEpoch == 0 && len(acks) > 0:
		return fail(kerr.InvalidRequest.Code, "acknowledgements need an open share session")
	case req.ShareSessionEpoch < -1:
		return fail(kerr.InvalidShareSessionEpoch.Code, "")
	}
	res, code, msg := s.shares.Session(kshare.SessionOp{Group: group, Member: member, Conn: c.ID(), Epoch: req.ShareSessionEpoch, Add: add, Forget: forget})
	if code != 0 {
		return fail(code, msg)
	}
	if req.ShareSessionEpoch == 0 {
		// A share session lives on its connection: when the connection
		// ends, close the session and give its leases back at once.
		id := c.ID()
		c.OnClose("share/"+group+"/"+member, func() {
			if r, code, _ := s.shares.Session(kshare.SessionOp{Group: group, Member: member, Conn: id, Epoch: -1}); code == 0 {
				s.shares.Release(group, member, id, r.Leased)
			}
		})
	}
	out := shareFetchOut{resp: resp, idx: map[kshare.TP][2]int{}}
	tn := kshare.NewTopicNames(s.b)
	for _, a := range acks {
		code, msg := s.shares.ApplyAcks(tn, group, member, c.ID(), a, renew, res.Lock)
		rp := out.part(kshare.TP{ID: a.ID, P: a.P})
		rp.AcknowledgeErrorCode = code
		if msg != "" {
			rp.AcknowledgeErrorMessage = &msg
		}
	}
	switch {
	case req.ShareSessionEpoch == -1:
		s.shares.Release(group, member, c.ID(), res.Leased)
	case !renew:
		s.shareAcquire(ctx, req, group, member, c.ID(), res, tn, &out)
	}
	return resp, nil
}

// shareFetchOut builds a ShareFetch response's partitions.
type shareFetchOut struct {
	resp *kmsg.ShareFetchResponse
	idx  map[kshare.TP][2]int // topic index, partition index
}

// part returns the response entry of a partition, adding it if needed. The
// pointer is valid until the next call.
func (o *shareFetchOut) part(tp kshare.TP) *kmsg.ShareFetchResponseTopicPartition {
	if i, ok := o.idx[tp]; ok {
		return &o.resp.Topics[i[0]].Partitions[i[1]]
	}
	ti := -1
	for i := range o.resp.Topics {
		if o.resp.Topics[i].TopicID == tp.ID {
			ti = i
			break
		}
	}
	if ti < 0 {
		rt := kmsg.NewShareFetchResponseTopic()
		rt.TopicID = tp.ID
		o.resp.Topics = append(o.resp.Topics, rt)
		ti = len(o.resp.Topics) - 1
	}
	rp := kmsg.NewShareFetchResponseTopicPartition()
	rp.Partition = tp.P
	rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = -1, -1 // no leader hint
	o.resp.Topics[ti].Partitions = append(o.resp.Topics[ti].Partitions, rp)
	o.idx[tp] = [2]int{ti, len(o.resp.Topics[ti].Partitions) - 1}
	return &o.resp.Topics[ti].Partitions[len(o.resp.Topics[ti].Partitions)-1]
}

func (o *shareFetchOut) fail(tp kshare.TP, code int16, msg string) {
	rp := o.part(tp)
	rp.ErrorCode = code
	if msg != "" {
		rp.ErrorMessage = &msg
	}
}

// shareTarget is a session partition records are acquired from.
type shareTarget struct {
	tp          kshare.TP
	topic       string
	maxInFlight int // its subscription's in-flight limit
}

// shareAcquire leases records of the session's partitions for the member,
// waiting up to MaxWaitMillis for some.
func (s *Server) shareAcquire(ctx context.Context, req *kmsg.ShareFetchRequest, group, member string, conn uint64, res kshare.SessionResult, tn *kshare.TopicNames, out *shareFetchOut) {
	type subInfo struct {
		code        int16
		msg         string
		maxInFlight int
	}
	subs := map[string]subInfo{}
	var targets []shareTarget
	lock := res.Lock // the group's; else the subscriptions' (the shortest)
	for _, tp := range res.Parts {
		topic, ok := tn.Name(tp.ID)
		if !ok {
			out.fail(tp, kerr.UnknownTopicID.Code, "")
			continue
		}
		meta, ok := s.b.Topic(topic)
		if !ok || tp.P < 0 || tp.P >= meta.Config.Partitions {
			out.fail(tp, kerr.UnknownTopicOrPartition.Code, "")
			continue
		}
		info, seen := subs[topic]
		if !seen {
			sub, err := s.b.QueueSubscription(topic, group)
			if err == nil {
				if !s.shares.NoteLeasing(group, member, conn, topic) {
					return // left or evicted meanwhile
				}
				if res.Lock == 0 && (lock == 0 || sub.AckTimeout < lock) {
					lock = sub.AckTimeout
				}
				info.maxInFlight = sub.MaxInFlight
			} else {
				info.code, info.msg = kshare.SubError(topic, group, err)
			}
			subs[topic] = info
		}
		if info.code != 0 {
			out.fail(tp, info.code, info.msg)
			continue
		}
		targets = append(targets, shareTarget{tp: tp, topic: topic, maxInFlight: info.maxInFlight})
	}
	if lock > 0 {
		resp := out.resp
		resp.AcquisitionLockTimeoutMillis = int32(min(lock.Milliseconds(), math.MaxInt32))
	}
	if len(targets) == 0 {
		return
	}
	// Rotate the starting partition so that a small MaxRecords does not
	// always favour the first partitions.
	start := int(res.Epoch) % len(targets)
	targets = append(targets[start:], targets[:start]...)

	deadline := time.Now().Add(min(time.Duration(req.MaxWaitMillis)*time.Millisecond, maxFetchWait))
	for {
		// Subscribe to changes before leasing, so that what arrives
		// between the lease and the wait is not missed.
		var changed []<-chan struct{}
		for topic, info := range subs {
			if info.code != 0 {
				continue
			}
			if ch := s.b.TopicChanged(topic); ch != nil {
				changed = append(changed, ch)
			}
			if ch := s.b.LeasesChanged(topic, group); ch != nil {
				changed = append(changed, ch)
			}
		}
		if s.shareLeaseOnce(req, group, member, conn, res.Lock, targets, out) > 0 || req.MaxWaitMillis <= 0 ||
			!time.Now().Before(deadline) || len(changed) == 0 {
			return
		}
		if !waitAny(ctx, changed, time.Until(deadline)) {
			s.shareLeaseOnce(req, group, member, conn, res.Lock, targets, out)
			return
		}
	}
}

// shareLeaseOnce leases what is ready now and returns how many records it
// leased.
func (s *Server) shareLeaseOnce(req *kmsg.ShareFetchRequest, group, member string, conn uint64, lock time.Duration, targets []shareTarget, out *shareFetchOut) int {
	maxRecords := int(req.MaxRecords)
	if maxRecords <= 0 {
		maxRecords = shareDefaultMaxRecords
	}
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = shareDefaultMaxBytes
	}
	partBytes := map[kshare.TP]int{}
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			partBytes[kshare.TP{ID: rt.TopicID, P: rp.Partition}] = int(rp.PartitionMaxBytes)
		}
	}
	leased, bytes := 0, 0
	if !s.shares.IsMember(group, member) {
		return 0 // left or evicted while waiting: its leases were released
	}
	defer func() {
		// Evicted while leasing: give back what was just leased (the
		// eviction released only what was leased before).
		if leased > 0 && !s.shares.IsMember(group, member) {
			topics := map[string]bool{}
			for _, tg := range targets {
				topics[tg.topic] = true
			}
			s.shares.Release(group, member, conn, topics)
		}
	}()
	for _, tg := range targets {
		if leased >= maxRecords || (leased > 0 && bytes >= maxBytes) {
			break
		}
		limit := partBytes[tg.tp]
		if limit <= 0 {
			limit = shareDefaultPartitionSize
		}
		limit = max(1, min(limit, maxBytes-bytes))
		wholeBatch := req.Version < 2 || req.ShareAcquireMode == 0
		l, err := s.b.Lease(tg.topic, group, kshare.Holder(member, conn), tg.tp.P,
			kshare.LeaseOptions(maxRecords-leased, limit, lock, wholeBatch, tg.maxInFlight))
		if err != nil {
			code := kwire.ErrCode(err)
			if errs.Is(err, errs.TopicNotFound) || errs.Is(err, errs.SubNotFound) {
				code = kerr.UnknownTopicOrPartition.Code
			}
			out.fail(tg.tp, code, "")
			continue
		}
		if l.Leased == 0 {
			continue
		}
		rp := out.part(tg.tp)
		rp.Records = l.Batches
		for _, r := range l.Runs {
			ar := kmsg.NewShareFetchResponseTopicPartitionAcquiredRecord()
			ar.FirstOffset, ar.LastOffset = r.First, r.Last
			ar.DeliveryCount = int16(min(r.Deliveries, math.MaxInt16))
			rp.AcquiredRecords = append(rp.AcquiredRecords, ar)
		}
		leased += l.Leased
		bytes += len(l.Batches)
	}
	return leased
}

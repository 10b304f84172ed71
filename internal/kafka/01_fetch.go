package kafka

// Fetch (key 1), v4–v18. v13+ name topics by id (the Spool topic's UUID,
// as Metadata reports it); an id no topic has is UNKNOWN_TOPIC_ID. Stored
// record batches are returned exactly as stored (no re-encoding); the first
// batch may start before the fetch offset, as in Kafka, and clients skip
// the records before it. Each partition gets at most PartitionMaxBytes and
// the response at most MaxBytes, but always at least one batch so a client
// makes progress. Long poll: with fewer than MinBytes available and no
// partition in error, the request waits up to MaxWaitMillis (at most 30 s)
// for new data. There are no transactions, so LastStableOffset is the high
// watermark and read_committed reads the same as read_uncommitted. There is
// one leader epoch, 0: a CurrentLeaderEpoch above it is
// UNKNOWN_LEADER_EPOCH. Sessions (v7+, KIP-227): see kfetch. On a
// cluster, a partition this node does not lead is NOT_LEADER_OR_FOLLOWER,
// with the leader it knows in CurrentLeader (v12+) and its address in
// NodeEndpoints (v16+) (leader_cluster.go).

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/kafka/kfetch"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

// maxFetchWait bounds a long poll.
const maxFetchWait = 30 * time.Second

// partResult is what one read of a partition found.
type partResult struct {
	code           int16
	hw, lso, start int64
	data           []byte
	leader         int32 // with NOT_LEADER_OR_FOLLOWER: the leader this node knows (-1: none)
}

func (s *Server) fetch(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resolve := s.topicResolver(req.Version)

	var parts []*kfetch.Part
	incremental := false
	fs, incr, code := s.sessions.Begin(req, resolve)
	if code != 0 {
		resp.ErrorCode = code
		return resp, nil
	}
	if fs != nil {
		defer fs.Unlock()
		resp.SessionID = fs.ID()
		parts, incremental = fs.Parts(), incr
	}
	if resp.SessionID == 0 {
		parts = kfetch.RequestParts(req, resolve)
	}

	deadline := time.Now().Add(min(time.Duration(req.MaxWaitMillis)*time.Millisecond, maxFetchWait))
	var results []partResult
	for {
		// Subscribe to changes before reading, so data that arrives between
		// the read and the wait is not missed.
		var changed []<-chan struct{}
		seen := map[string]bool{}
		for _, fp := range parts {
			if fp.Name != "" && !seen[fp.Name] {
				seen[fp.Name] = true
				if ch := s.b.TopicChanged(fp.Name); ch != nil {
					changed = append(changed, ch)
				}
			}
		}
		var total int
		var failed bool
		results, total, failed = s.fetchParts(c, req, parts)
		if total >= int(max(req.MinBytes, 1)) || failed || req.MaxWaitMillis <= 0 || !time.Now().Before(deadline) || len(changed) == 0 {
			break
		}
		if !waitAny(ctx, changed, time.Until(deadline)) {
			results, _, _ = s.fetchParts(c, req, parts)
			break
		}
	}

	// Group partitions by topic, in order of first appearance; an
	// incremental response carries only partitions with news.
	index := map[kfetch.Key]int{} // topic key (partition 0) -> position in resp.Topics
	for i, fp := range parts {
		r := results[i]
		news := !fp.Sent || len(r.data) > 0 || r.code != 0 || r.hw != fp.HW || r.lso != fp.LSO || r.start != fp.Start
		fp.Sent, fp.HW, fp.LSO, fp.Start = true, r.hw, r.lso, r.start
		if incremental && !news {
			continue
		}
		tk := kfetch.Key{Topic: fp.Key.Topic, ID: fp.Key.ID}
		ti, ok := index[tk]
		if !ok {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = fp.Key.Topic, fp.Key.ID
			resp.Topics = append(resp.Topics, st)
			ti = len(resp.Topics) - 1
			index[tk] = ti
		}
		sp := kmsg.NewFetchResponseTopicPartition()
		sp.Partition = fp.Key.Partition
		sp.ErrorCode = r.code
		if r.code == kerr.NotLeaderForPartition.Code && r.leader > 0 {
			sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = r.leader, 0
			if b, ok := s.brokerEndpoint(r.leader); ok && !slices.ContainsFunc(resp.Brokers, func(rb kmsg.FetchResponseBroker) bool { return rb.NodeID == b.NodeID }) {
				resp.Brokers = append(resp.Brokers, kmsg.FetchResponseBroker{NodeID: b.NodeID, Host: b.Host, Port: b.Port})
			}
		}
		sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = r.hw, r.lso, r.start
		// An empty record set, never a null one: librdkafka and kafka-go
		// reject a null set ("MessageSetSize -1").
		sp.RecordBatches = r.data
		if sp.RecordBatches == nil {
			sp.RecordBatches = []byte{}
		}
		resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, sp)
	}
	return resp, nil
}

// topicResolver returns a function naming the topic of a request key,
// caching id lookups for the request ("" for an unknown id).
func (s *Server) topicResolver(version int16) func(kfetch.Key) string {
	if version < 13 {
		return func(k kfetch.Key) string { return k.Topic }
	}
	names := map[[16]byte]string{}
	return func(k kfetch.Key) string {
		if name, ok := names[k.ID]; ok {
			return name
		}
		name := ""
		if t, ok := s.b.TopicByID(kwire.UUIDString(k.ID)); ok {
			name = t.Name
		}
		names[k.ID] = name
		return name
	}
}

// waitAny waits until one of chans is closed (true) or d passes (false).
func waitAny(ctx context.Context, chans []<-chan struct{}, d time.Duration) bool {
	done := make(chan struct{})
	defer close(done)
	woke := make(chan struct{}, 1)
	for _, ch := range chans {
		go func() {
			select {
			case <-ch:
				select {
				case woke <- struct{}{}:
				default:
				}
			case <-done:
			}
		}()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-woke:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// fetchParts reads what is available now from each partition, within the
// request's byte limits. It returns the bytes read and whether any
// partition is in error (which ends a long poll at once, as in Kafka).
func (s *Server) fetchParts(c *conn, req *kmsg.FetchRequest, parts []*kfetch.Part) ([]partResult, int, bool) {
	out := make([]partResult, len(parts))
	budget := int(req.MaxBytes)
	if budget <= 0 {
		budget = 50 << 20
	}
	total := 0
	failed := false
	for i, fp := range parts {
		r := &out[i]
		r.hw, r.lso, r.start = -1, -1, -1
		switch {
		case fp.Name == "" && req.Version >= 13:
			r.code = kerr.UnknownTopicID.Code
		case fp.LeaderEpoch > 0:
			r.code = kerr.UnknownLeaderEpoch.Code
		}
		if r.code != 0 {
			failed = true
			continue
		}
		meta, ok := s.b.Topic(fp.Name)
		switch {
		case !s.can(c.reqCtx(), acl.Topic, fp.Name, acl.Consume):
			r.code = kerr.TopicAuthorizationFailed.Code
		case !ok && req.Version >= 13:
			r.code = kerr.UnknownTopicID.Code
		case !ok:
			r.code = kerr.UnknownTopicOrPartition.Code
		case req.Version >= 13 && meta.ID != kwire.UUIDString(fp.Key.ID):
			r.code = kerr.UnknownTopicID.Code // deleted, and another topic took its name
		case fp.Key.Partition >= 0 && fp.Key.Partition < meta.Config.Partitions:
			if not, lead := s.notLeader(meta.ID, fp.Key.Partition); not {
				r.code, r.leader = kerr.NotLeaderForPartition.Code, lead
			}
		}
		if r.code != 0 {
			failed = true
			continue
		}
		limit := int(fp.MaxBytes)
		if limit <= 0 {
			limit = 1 << 20
		}
		if total > 0 {
			limit = min(limit, budget-total)
		}
		if limit > 0 || total == 0 {
			var raw broker.RawRead
			var err error
			if c != nil {
				bp := c.borrow()
				raw, err = s.b.ReadRawInto(*bp, fp.Name, fp.Key.Partition, fp.Offset, max(limit, 1))
				if cap(raw.Data) > cap(*bp) {
					*bp = raw.Data[:0] // keep the larger buffer
				}
			} else {
				raw, err = s.b.ReadRaw(fp.Name, fp.Key.Partition, fp.Offset, max(limit, 1))
			}
			if err != nil {
				r.code = kwire.ErrCode(err)
				if r.code == kerr.InvalidRequest.Code {
					r.code = kerr.UnknownTopicOrPartition.Code // no such partition
				}
				failed = true
				continue
			}
			r.hw, r.lso, r.start = raw.End, raw.End, raw.Start
			if raw.OutOfRange {
				r.code = kerr.OffsetOutOfRange.Code
				failed = true
			}
			r.data = raw.Data
		} else if start, end, err := s.b.Offsets(fp.Name, fp.Key.Partition); err == nil {
			r.hw, r.lso, r.start = end, end, start
		}
		total += len(r.data)
	}
	return out, total, failed
}

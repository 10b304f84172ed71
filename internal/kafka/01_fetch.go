package kafka

// Fetch (key 1), v4–v12 (v13+ address topics by id and are not offered
// yet: clients fall back). Stored record batches are returned exactly as
// stored (no re-encoding); the first batch may start before the fetch
// offset, as in Kafka, and clients skip the records before it. Each
// partition gets at most PartitionMaxBytes and the response at most
// MaxBytes, but always at least one batch so a client makes progress.
// Long poll: with fewer than MinBytes available the request waits up to
// MaxWaitMillis for new data. There are no transactions, so
// LastStableOffset is the high watermark and read_committed reads the
// same as read_uncommitted. Sessions: see fetch_session.go.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	registrations = append(registrations, func(s *Server) { s.register(1, 4, 12, s.fetch) })
}

// maxFetchWait bounds a long poll.
const maxFetchWait = 30 * time.Second

func (s *Server) fetch(ctx context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FetchRequest)
	deadline := time.Now().Add(min(time.Duration(req.MaxWaitMillis)*time.Millisecond, maxFetchWait))
	for {
		// Subscribe to changes before reading, so data that arrives between
		// the read and the wait is not missed.
		var changed []<-chan struct{}
		for _, rt := range req.Topics {
			if ch := s.b.TopicChanged(rt.Topic); ch != nil {
				changed = append(changed, ch)
			}
		}
		resp, total := s.fetchOnce(req)
		if total >= int(max(req.MinBytes, 1)) || req.MaxWaitMillis <= 0 || !time.Now().Before(deadline) || len(changed) == 0 {
			return resp, nil
		}
		if !waitAny(ctx, changed, time.Until(deadline)) {
			r, _ := s.fetchOnce(req)
			return r, nil
		}
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

// fetchOnce reads what is available now.
func (s *Server) fetchOnce(req *kmsg.FetchRequest) (*kmsg.FetchResponse, int) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	budget := int(req.MaxBytes)
	if budget <= 0 {
		budget = 50 << 20
	}
	total := 0
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			if _, ok := s.b.Topic(rt.Topic); !ok {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			limit := int(rp.PartitionMaxBytes)
			if limit <= 0 {
				limit = 1 << 20
			}
			if total > 0 {
				limit = min(limit, budget-total)
			}
			var r struct {
				data       []byte
				start, end int64
				oor        bool
			}
			if limit > 0 || total == 0 {
				raw, err := s.b.ReadRaw(rt.Topic, rp.Partition, rp.FetchOffset, max(limit, 1))
				if err != nil {
					sp.ErrorCode = errCode(err)
					st.Partitions = append(st.Partitions, sp)
					continue
				}
				r.data, r.start, r.end, r.oor = raw.Data, raw.Start, raw.End, raw.OutOfRange
			} else if start, end, err := s.b.Offsets(rt.Topic, rp.Partition); err == nil {
				r.start, r.end = start, end
			}
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = r.end, r.end, r.start
			if r.oor {
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
			}
			sp.RecordBatches = r.data
			total += len(r.data)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, total
}

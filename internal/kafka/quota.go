package kafka

// Client quotas (internal/quota), as Kafka enforces them (KIP-13,
// KIP-219): a request is served in full, then its response carries
// throttle_time_ms when the connection's principal went over a quota, and
// the connection is muted — the next request is not read — for that time.
// Every request but ApiVersions and the SASL exchange counts against
// request_rate, a Produce request's size against producer_byte_rate, and
// the record bytes of a Fetch (or ShareFetch) response against
// consumer_byte_rate. With no quota set, each request costs one atomic load.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/quota"
)

// quotaExempt are the requests of a connection before it authenticates.
var quotaExempt = map[int16]bool{17: true, 18: true, 36: true}

// chargeRequest charges a request just read (its size for Produce) to the
// connection's principal and returns the throttle it earned so far.
func (c *conn) chargeRequest(h reqHeader, size int) time.Duration {
	l := c.s.limiter
	if !l.Active() || quotaExempt[h.key] {
		return 0
	}
	d := l.Charge(c.principal, quota.Request, 1)
	if h.key == 0 {
		d = max(d, l.Charge(c.principal, quota.Produce, int64(size)))
	}
	return d
}

// throttleResponse charges a response's fetched bytes and sets its
// throttle_time_ms to the larger of that throttle and d (Kafka's rule when
// two quotas are exceeded), returning it.
func (c *conn) throttleResponse(resp kmsg.Response, d time.Duration) time.Duration {
	l := c.s.limiter
	if !l.Active() || resp == nil {
		return d
	}
	if n := fetchedBytes(resp); n > 0 {
		d = max(d, l.Charge(c.principal, quota.Fetch, n))
	}
	if d > 0 {
		if tr, ok := resp.(kmsg.SetThrottleResponse); ok {
			ms := int32(d / time.Millisecond)
			if cur, _ := resp.(kmsg.ThrottleResponse).Throttle(); cur < ms {
				tr.SetThrottle(ms)
			}
		}
	}
	return d
}

// fetchedBytes is the record bytes a response delivers.
func fetchedBytes(resp kmsg.Response) int64 {
	var n int64
	switch r := resp.(type) {
	case *kmsg.FetchResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				n += int64(len(r.Topics[i].Partitions[j].RecordBatches))
			}
		}
	case *kmsg.ShareFetchResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				n += int64(len(r.Topics[i].Partitions[j].Records))
			}
		}
	}
	return n
}

// throttledProduce makes a pipelined produce's response carry throttle d.
func (c *conn) throttledProduce(finish func() kmsg.Response, d time.Duration) func() kmsg.Response {
	if d <= 0 {
		return finish
	}
	return func() kmsg.Response {
		resp := finish()
		if tr, ok := resp.(kmsg.SetThrottleResponse); ok {
			tr.SetThrottle(int32(d / time.Millisecond))
		}
		return resp
	}
}

// mute stops reading the connection for d (its responses already sent or
// being sent), or until the server closes.
func (c *conn) mute(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.s.ctx.Done():
	}
}

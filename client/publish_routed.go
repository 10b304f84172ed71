package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/recordbatch"
)

// maxRedirects bounds how often one Publish call follows a leader hint
// without an attempt failing (nodes that disagree about a leader for a
// moment could otherwise send it back and forth).
const maxRedirects = 8

// fillResults puts a Publish answer's results for the messages at idx
// (nil: all of them, in order) into out.
func fillResults(out []PublishResult, idx []int, resp *spoolv1.PublishResponse) error {
	want := len(out)
	if idx != nil {
		want = len(idx)
	}
	if n := len(resp.GetResults()); n != want {
		return fmt.Errorf("client: server returned %d results for %d messages", n, want)
	}
	for k, r := range resp.GetResults() {
		i := k
		if idx != nil {
			i = idx[k]
		}
		out[i] = resultFromProto(r)
	}
	return nil
}

// publishRouted is Publish on a cluster: every message of req gets its
// partition for good (so that a retry goes to the same partition, whose
// leader's de-duplication window knows its id), and each partition's
// messages go to its leader, the leaders' requests at once. tl is what
// is known of the topic's leaders (nil: ask); failed counts the attempts
// that failed already; preferSelf: the home node refused the
// request, and its keyless messages go to a partition it leads if there
// is one (its window would know them, should an earlier attempt have
// stored them).
func (c *Client) publishRouted(ctx context.Context, topic string, req *spoolv1.PublishRequest, tl *topicLeaders, failed int, preferSelf bool) ([]PublishResult, error) {
	for tl == nil {
		var err error
		if tl, err = c.describeLeaders(ctx, topic); err == nil {
			break
		}
		failed++
		if !IsRetriable(err) || failed >= c.cfg.publishAttempts {
			return nil, err
		}
		if !sleep(ctx, c.cfg.backoff.delay(failed, retryAfterOf(err))) {
			return nil, err
		}
	}
	msgs := req.GetMessages()
	parts := c.pin(tl, msgs, preferSelf)
	out := make([]PublishResult, len(msgs))
	pending := make([]int, len(msgs))
	for i := range pending {
		pending[i] = i
	}
	redirects := 0
	for {
		groups := map[string][]int{}
		for _, i := range pending {
			route := ""
			if p := parts[i]; p >= 0 && p < tl.n {
				route = tl.routes[p]
			}
			groups[route] = append(groups[route], i)
		}
		errs := c.publishGroups(ctx, topic, msgs, groups, out)
		pending = pending[:0]
		var lastErr error
		moved, failure, blind := false, false, false
		var retryAfter time.Duration
		for route, err := range errs {
			if err == nil {
				continue
			}
			if !IsRetriable(err) {
				c.rememberLeaders(topic, nil)
				return nil, err
			}
			pending = append(pending, groups[route]...)
			lastErr = err
			h := leaderOf(err)
			if h != nil && h.topic == topic {
				var m bool
				if tl, m = c.follow(tl, h); m {
					moved = true
					continue
				}
			}
			blind = blind || h == nil // the node may be down: ask another who leads
			failure = true
			retryAfter = max(retryAfter, retryAfterOf(err))
		}
		if len(pending) == 0 {
			c.rememberLeaders(topic, tl)
			return out, nil
		}
		if !failure {
			if redirects++; redirects <= maxRedirects && moved {
				continue
			}
		}
		failed++
		if failed >= c.cfg.publishAttempts || !sleep(ctx, c.cfg.backoff.delay(failed, retryAfter)) {
			c.rememberLeaders(topic, nil)
			return nil, lastErr
		}
		if !blind {
			continue
		}
		if fresh, err := c.describeLeaders(ctx, topic); err == nil && fresh.n >= tl.n {
			tl = fresh
		}
	}
}

// pin fixes the partition of every message in msgs, as the server would
// choose it (an explicit partition, or the key's), and one partition for
// all keyless messages: one with a leader, rotating between calls, led by
// the home node (the client's own, which refused the call) if preferSelf
// and it leads one. It returns the
// partitions.
func (c *Client) pin(tl *topicLeaders, msgs []*spoolv1.Message, preferSelf bool) []int32 {
	parts := make([]int32, len(msgs))
	sticky := int32(-1)
	for i, m := range msgs {
		switch {
		case m.Partition != nil:
			parts[i] = m.GetPartition()
			continue
		case len(m.GetKey()) > 0:
			parts[i] = recordbatch.KeyPartition(m.GetKey(), tl.n)
		default:
			if sticky < 0 {
				sticky = c.keylessPartition(tl, preferSelf)
			}
			parts[i] = sticky
		}
		p := parts[i]
		m.Partition = &p
	}
	return parts
}

// keylessPartition chooses the partition of a call's keyless messages.
func (c *Client) keylessPartition(tl *topicLeaders, preferSelf bool) int32 {
	var cands []int32
	home := c.homeRoute() // the node that refused, with preferSelf
	for _, self := range []bool{true, false} {
		if self && !preferSelf {
			continue
		}
		for p := range tl.n {
			if tl.led[p] && (!self || tl.routes[p] == home || tl.routes[p] == "") {
				cands = append(cands, p)
			}
		}
		if len(cands) > 0 {
			break
		}
	}
	k := c.rr.Add(1)
	if len(cands) == 0 {
		return int32(k % uint32(tl.n))
	}
	return cands[k%uint32(len(cands))]
}

// publishGroups sends each group of messages (by route) to its node, at
// once, fills out with what was stored, and returns each group's error.
func (c *Client) publishGroups(ctx context.Context, topic string, msgs []*spoolv1.Message, groups map[string][]int, out []PublishResult) map[string]error {
	errs := make(map[string]error, len(groups))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for route, idx := range groups {
		sub := &spoolv1.PublishRequest{Topic: topic, Messages: make([]*spoolv1.Message, len(idx))}
		for k, i := range idx {
			sub.Messages[k] = msgs[i]
		}
		send := func() {
			resp, err := callOn(ctx, c, route, publishRPC(spoolv1connect.PublishServiceClient.Publish), sub)
			if err == nil {
				err = fillResults(out, idx, resp) // groups fill disjoint entries
			}
			mu.Lock()
			errs[route] = err
			mu.Unlock()
		}
		if len(groups) == 1 {
			send()
			break
		}
		wg.Go(send)
	}
	wg.Wait()
	return errs
}

package client

// Routing on a cluster (docs/cluster.md): every node answers admin calls
// and reads, but only a partition's leader takes its publishes. A node
// that does not lead a partition refuses a publish to it with a retriable
// unavailable error whose ErrorInfo names the leader and its native
// address (NotLeader), and DescribeTopic names every partition's leader.
// The client then sends that partition's publishes to the leader, over a
// connection made for that node when first needed (every node's services
// share the client's HTTP client and are closed with it; nodes.go), and
// resends what was refused with the same message ids or producer
// sequences, so that nothing is stored twice. A single node never refuses
// a publish so, and names no leaders: everything goes to the client's
// address, as it always did, without any extra call.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

const (
	// maxAddrLen bounds a node address a server names.
	maxAddrLen = 255
	// maxNodes bounds the node connections a client keeps (a cluster has
	// 3 or 5 nodes; more appear as nodes are replaced).
	maxNodes = 64
	// maxRouteTopics bounds the topics whose leaders a client remembers
	// for Publish.
	maxRouteTopics = 1024
	// maxTopicPartitions bounds the partitions a DescribeTopic answer may
	// list (a server allows 1,024).
	maxTopicPartitions = 1 << 16
	// describeTimeout bounds one node's DescribeTopic when looking for
	// leaders, so that a node that does not answer does not hold up the
	// others.
	describeTimeout = 3 * time.Second
)

// leaderHint is what a cluster node said of a partition it does not lead.
type leaderHint struct {
	topic     string
	partition int32
	node      uint64 // the leader; 0: none right now (an election)
	addr      string // its native address, host:port; "": unknown
}

// leaderHintOf converts an ErrorInfo's NotLeader, dropping an address
// that is not a plain host:port.
func leaderHintOf(nl *spoolv1.NotLeader) *leaderHint {
	if nl == nil {
		return nil
	}
	h := &leaderHint{topic: nl.GetTopic(), partition: nl.GetPartition(), node: nl.GetLeader()}
	if a := nl.GetLeaderAddr(); validAddr(a) {
		h.addr = a
	}
	return h
}

// validAddr reports whether a is host:port and nothing more, short enough
// to keep.
func validAddr(a string) bool {
	if a == "" || len(a) > maxAddrLen || strings.ContainsAny(a, "/?#@ \t\r\n") {
		return false
	}
	host, port, err := net.SplitHostPort(a)
	return err == nil && host != "" && port != ""
}

// leaderOf returns the leader hint err carries, if any.
func leaderOf(err error) *leaderHint {
	var e *Error
	if errors.As(err, &e) {
		return e.leader
	}
	return nil
}

// routeOf returns the route of a leader's address: the address itself
// (a node's route is its host:port; "" stands for the home node).
func (c *Client) routeOf(addr string) string { return addr }

// topicLeaders is what a DescribeTopic said of a topic's partitions.
type topicLeaders struct {
	n      int32    // the partition count
	routes []string // per partition: its leader's route ("": not known; the home node)
	led    []bool   // per partition: a leader was named
	at     time.Time
}

// cluster reports whether the answer came from a cluster: some partition
// has a leader (a single node names none).
func (tl *topicLeaders) cluster() bool {
	for _, ok := range tl.led {
		if ok {
			return true
		}
	}
	return false
}

// describeLeaders asks for a topic's partitions and their leaders: the
// home node first, then each other node the client knows, so that one
// node down does not hide the others. It returns the first answer, or the
// first node's error.
func (c *Client) describeLeaders(ctx context.Context, topic string) (*topicLeaders, error) {
	var first error
	for i, route := range c.homeRoutes() {
		if i > 0 && !IsRetriable(first) {
			break // the topic is missing, or the call is refused: asking elsewhere does not help
		}
		dctx, cancel := context.WithTimeout(ctx, describeTimeout)
		resp, err := callUnbounded(dctx, c, topicsRPC(spoolv1connect.TopicServiceClient.DescribeTopic).on(c, route), &spoolv1.DescribeTopicRequest{Name: topic})
		cancel()
		if err == nil {
			if i > 0 && unreachable(first) {
				c.setHome(route)
			}
			return leadersFromProto(resp, c)
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// leadersFromProto checks and converts a DescribeTopic answer.
func leadersFromProto(resp *spoolv1.DescribeTopicResponse, c *Client) (*topicLeaders, error) {
	n := resp.GetTopic().GetConfig().GetPartitions()
	if n <= 0 || n > maxTopicPartitions {
		return nil, &Error{Code: "internal", Message: fmt.Sprintf("the server described a topic with %d partitions", n)}
	}
	tl := &topicLeaders{n: n, routes: make([]string, n), led: make([]bool, n), at: time.Now()}
	for _, p := range resp.GetPartitions() {
		i := p.GetPartition()
		if i < 0 || i >= n || p.GetLeader() == 0 {
			continue
		}
		tl.led[i] = true
		if a := p.GetLeaderAddr(); validAddr(a) {
			tl.routes[i] = c.routeOf(a)
		}
	}
	return tl, nil
}

// leadersFor returns the leaders the client remembers for topic, nil if
// they are older than metadataMaxAge (to be asked again), and whether the
// topic is known to be on a cluster at all.
func (c *Client) leadersFor(topic string) (*topicLeaders, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tl := c.leaders[topic]
	if tl == nil {
		return nil, false
	}
	if time.Since(tl.at) > metadataMaxAge {
		return nil, true
	}
	return tl, true
}

// rememberLeaders keeps tl for topic's later Publish calls (nil: forget).
// Only a cluster's leaders are kept: a single node's topic needs none.
func (c *Client) rememberLeaders(topic string, tl *topicLeaders) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tl == nil || !tl.cluster() {
		delete(c.leaders, topic)
		return
	}
	if _, ok := c.leaders[topic]; !ok && len(c.leaders) >= maxRouteTopics {
		for k := range c.leaders {
			delete(c.leaders, k)
			break
		}
	}
	c.leaders[topic] = tl
}

// follow records a leader hint in tl (a copy, which it returns, dated as
// tl): the partition's route becomes the leader's when one is named with
// its address; moved reports whether the route changed.
func (c *Client) follow(tl *topicLeaders, h *leaderHint) (out *topicLeaders, moved bool) {
	if h == nil || h.partition < 0 || h.partition >= tl.n || h.node == 0 || h.addr == "" {
		return tl, false
	}
	route := c.routeOf(h.addr)
	if tl.led[h.partition] && tl.routes[h.partition] == route {
		return tl, false
	}
	cp := *tl
	cp.routes = append([]string(nil), tl.routes...)
	cp.led = append([]bool(nil), tl.led...)
	cp.routes[h.partition], cp.led[h.partition] = route, true
	return &cp, true
}

// initProducer asks for a producer id: the home node first, then (after a
// retriable failure) each other node the client knows. Ids
// are the cluster's: a producer id from any node is good on every node.
func (c *Client) initProducer(ctx context.Context, req *spoolv1.InitProducerRequest) (*spoolv1.InitProducerResponse, error) {
	var first error
	for i, route := range c.homeRoutes() {
		if i > 0 && !IsRetriable(first) {
			break
		}
		ictx, cancel := context.WithTimeout(ctx, describeTimeout)
		resp, err := callUnbounded(ictx, c, publishRPC(spoolv1connect.PublishServiceClient.InitProducer).on(c, route), req)
		cancel()
		if err == nil {
			if i > 0 && unreachable(first) {
				c.setHome(route)
			}
			return resp, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

package client

// The nodes a client talks to (docs/cluster.md). A client is made with
// one address or several (the seeds). Calls that any node answers go to
// the client's home node: the first seed until it cannot be reached, then
// the next node that answers among the seeds and the nodes the client has
// learned of (partition leaders it was sent to, the cluster's nodes a
// DescribeSubscription named). Subscription operations (Consume sessions,
// resets, purges, redrives) go to the cluster's coordinator once the
// client knows it: a node that does not coordinate refuses them with an
// ErrorInfo naming the coordinator (NotCoordinator), and DescribeSubscription
// names it up front. When the coordinator cannot be reached the client
// forgets it and asks its home node again, which names the new one. A
// single node never names a coordinator nor refuses anything so: every
// call goes to the client's address, as it always did, with no extra call.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// maxCoordRedirects bounds how often one call (or one consumer between
// two memberships) follows a coordinator named in a refusal before it
// backs off: the nodes may disagree for a moment after an election.
const maxCoordRedirects = 4

// coordRefusalAttempts bounds the attempts of a unary subscription call
// refused while the cluster has no coordinator (an election): a refusal
// did nothing, so trying again is safe.
const coordRefusalAttempts = 3

// coordHint is what a cluster node said of the coordinator when it
// refused a subscription operation.
type coordHint struct {
	node uint64 // the coordinator; 0: none right now (an election)
	addr string // its native address, host:port; "": unknown
}

// coordHintOf converts an ErrorInfo's NotCoordinator, dropping an address
// that is not a plain host:port.
func coordHintOf(nc *spoolv1.NotCoordinator) *coordHint {
	if nc == nil {
		return nil
	}
	h := &coordHint{node: nc.GetCoordinator()}
	if a := nc.GetCoordinatorAddr(); validAddr(a) {
		h.addr = a
	}
	return h
}

// coordOf returns the coordinator hint err carries, if any.
func coordOf(err error) *coordHint {
	var e *Error
	if errors.As(err, &e) {
		return e.coord
	}
	return nil
}

// unreachable reports whether err is a failure to reach a node (refused
// or broken connection, a proxy's 502/503): unavailable, without the
// ErrorInfo every answer of a Spool server carries.
func unreachable(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeUnavailable {
		return false
	}
	var ce *connect.Error
	return errors.As(e.cause, &ce) && len(ce.Details()) == 0
}

// notSent reports whether err is a failure to connect to a node: the
// request was certainly not sent, so any node may be asked instead.
func notSent(err error) bool {
	var op *net.OpError
	return unreachable(err) && errors.As(err, &op) && op.Op == "dial"
}

// fromServer reports whether err is a Spool server's answer (it carries an
// ErrorInfo), not a transport failure.
func fromServer(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	var ce *connect.Error
	if errors.As(e.cause, &ce) {
		return len(ce.Details()) > 0
	}
	return e.cause == nil && e.Code != "" // an in-stream error
}

// parseSeeds splits a client's address list ("http://a:1,http://b:2")
// into the addresses (without a trailing slash) and their host:port, all
// of one scheme.
func parseSeeds(list string, more []string) (addrs, hosts []string, scheme string, err error) {
	var all []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" || len(all) == 0 {
			all = append(all, a)
		}
	}
	all = append(all, more...)
	for _, a := range all {
		u, perr := url.Parse(a)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, nil, "", errAddr(a, "is not http://host:port or https://host:port")
		}
		if scheme != "" && u.Scheme != scheme {
			return nil, nil, "", errAddr(a, "has another scheme than "+scheme+"://: a client's addresses share one")
		}
		scheme = u.Scheme
		if slices.Contains(hosts, u.Host) {
			continue
		}
		addrs, hosts = append(addrs, strings.TrimRight(a, "/")), append(hosts, u.Host)
	}
	if len(hosts) > maxNodes {
		return nil, nil, "", errAddr(list, "lists more than 64 servers")
	}
	return addrs, hosts, scheme, nil
}

func errAddr(a, why string) error {
	return fmt.Errorf("%w: address %q %s", ErrInvalidOption, a, why)
}

// nodeConn is the services of one node.
type nodeConn struct {
	publish spoolv1connect.PublishServiceClient
	topics  spoolv1connect.TopicServiceClient
	subs    spoolv1connect.SubscriptionServiceClient
	consume spoolv1connect.ConsumeServiceClient
	cluster spoolv1connect.ClusterServiceClient
}

// node returns the services of the node at route (host:port; "": the
// home node), made when first needed. A seed is reached at the address it
// was given as; another node with the client's scheme.
func (c *Client) node(route string) *nodeConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if route == "" {
		route = c.home
	}
	if n := c.nodes[route]; n != nil {
		return n
	}
	if len(c.nodes) >= maxNodes {
		for k := range c.nodes { // forget one; it is made again if needed
			delete(c.nodes, k)
			break
		}
	}
	base := c.scheme + "://" + route
	if i := slices.Index(c.seeds, route); i >= 0 {
		base = c.seedAddrs[i]
	}
	n := &nodeConn{
		publish: spoolv1connect.NewPublishServiceClient(c.hc, base, c.copts...),
		topics:  spoolv1connect.NewTopicServiceClient(c.hc, base, c.copts...),
		subs:    spoolv1connect.NewSubscriptionServiceClient(c.hc, base, c.copts...),
		consume: spoolv1connect.NewConsumeServiceClient(c.hc, base, c.copts...),
		cluster: spoolv1connect.NewClusterServiceClient(c.hc, base, c.copts...),
	}
	c.nodes[route] = n
	return n
}

// homeRoute returns the node unrouted calls go to.
func (c *Client) homeRoute() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.home
}

// knownRoutes returns every node the client knows: the seeds, in the order
// given, then the nodes it learned of or was sent to.
func (c *Client) knownRoutes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.seeds)
	var more []string
	for r := range c.learned {
		if !slices.Contains(out, r) {
			more = append(more, r)
		}
	}
	for r := range c.nodes {
		if !slices.Contains(out, r) && !c.learned[r] {
			more = append(more, r)
		}
	}
	slices.Sort(more)
	return append(out, more...)
}

// homeRoutes returns the nodes to try for an unrouted call: the home node,
// then every other node the client knows.
func (c *Client) homeRoutes() []string {
	home := c.homeRoute()
	out := []string{home}
	for _, r := range c.knownRoutes() {
		if r != home {
			out = append(out, r)
		}
	}
	return out
}

// setHome makes route the home node.
func (c *Client) setHome(route string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if route != "" {
		c.home = route
	}
}

// homeDown moves the home node on from route, which could not be reached
// (if it is still the home node): to the next node the client knows.
func (c *Client) homeDown(route string) {
	routes := c.knownRoutes()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.home != route || len(routes) < 2 {
		return
	}
	i := slices.Index(routes, route)
	c.home = routes[(i+1)%len(routes)]
}

// learn records nodes' native addresses a cluster node named.
func (c *Client) learn(addrs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range addrs {
		if validAddr(a) && !c.learned[a] && len(c.learned) < maxNodes {
			c.learned[a] = true
		}
	}
}

// coordinator returns the node believed to coordinate subscriptions; ""
// when not known (a single node, or not yet asked).
func (c *Client) coordinator() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.coord
}

// setCoordinator records route as the coordinator.
func (c *Client) setCoordinator(route string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.coord = route
	if len(c.learned) < maxNodes {
		c.learned[route] = true
	}
}

// forgetCoordinator forgets route as the coordinator (if it still is).
func (c *Client) forgetCoordinator(route string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.coord == route {
		c.coord = ""
	}
}

// coordMoved follows a refusal of a subscription operation that the node
// at from answered with: true when it named another node as coordinator,
// which the next attempt goes to.
func (c *Client) coordMoved(from string, err error) bool {
	h := coordOf(err)
	if h == nil {
		return false
	}
	switch {
	case h.addr == from:
		c.setCoordinator(from) // a new coordinator not serving yet: wait for it
		return false
	case h.node == 0 || h.addr == "":
		c.forgetCoordinator(from) // an election: ask the home node next time
		return false
	}
	c.setCoordinator(h.addr)
	return true
}

// nodeFailed notes a call or stream to the node at from that failed other
// than by the node's answer: it may be down. A coordinator is then
// forgotten (the home node names the next), and a home node that could
// not be reached gives way to the next node the client knows.
func (c *Client) nodeFailed(from string, err error) {
	if err == nil || fromServer(err) {
		return
	}
	c.forgetCoordinator(from)
	if unreachable(err) {
		c.homeDown(from)
	}
}

// rpc is a unary method of one of a node's services.
type rpc[Req, Res any] func(n *nodeConn, ctx context.Context, req *connect.Request[Req]) (*connect.Response[Res], error)

type unaryFunc[Req, Res any] func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error)

func topicsRPC[Req, Res any](m func(spoolv1connect.TopicServiceClient, context.Context, *connect.Request[Req]) (*connect.Response[Res], error)) rpc[Req, Res] {
	return func(n *nodeConn, ctx context.Context, r *connect.Request[Req]) (*connect.Response[Res], error) {
		return m(n.topics, ctx, r)
	}
}

func subsRPC[Req, Res any](m func(spoolv1connect.SubscriptionServiceClient, context.Context, *connect.Request[Req]) (*connect.Response[Res], error)) rpc[Req, Res] {
	return func(n *nodeConn, ctx context.Context, r *connect.Request[Req]) (*connect.Response[Res], error) {
		return m(n.subs, ctx, r)
	}
}

func publishRPC[Req, Res any](m func(spoolv1connect.PublishServiceClient, context.Context, *connect.Request[Req]) (*connect.Response[Res], error)) rpc[Req, Res] {
	return func(n *nodeConn, ctx context.Context, r *connect.Request[Req]) (*connect.Response[Res], error) {
		return m(n.publish, ctx, r)
	}
}

func clusterRPC[Req, Res any](m func(spoolv1connect.ClusterServiceClient, context.Context, *connect.Request[Req]) (*connect.Response[Res], error)) rpc[Req, Res] {
	return func(n *nodeConn, ctx context.Context, r *connect.Request[Req]) (*connect.Response[Res], error) {
		return m(n.cluster, ctx, r)
	}
}

// on binds m to the node at route.
func (m rpc[Req, Res]) on(c *Client, route string) unaryFunc[Req, Res] {
	n := c.node(route)
	return func(ctx context.Context, r *connect.Request[Req]) (*connect.Response[Res], error) {
		return m(n, ctx, r)
	}
}

// callHome runs m on the home node, and on the next node the client knows
// while a node cannot be reached; it returns the node that answered (or
// failed last). Without the request timeout.
func callHome[Req, Res any](ctx context.Context, c *Client, m rpc[Req, Res], req *Req) (*Res, string, error) {
	routes := c.homeRoutes()
	var first error
	for i, route := range routes {
		resp, err := callUnbounded(ctx, c, m.on(c, route), req)
		if i > 0 && (err == nil || fromServer(err)) {
			c.setHome(route) // it answered
		}
		if err == nil {
			return resp, route, nil
		}
		if !notSent(err) || ctx.Err() != nil {
			c.nodeFailed(route, err)
			return nil, route, err
		}
		if first == nil {
			first = err
		}
	}
	return nil, routes[0], first
}

// callCoord runs a subscription operation m on the coordinator, with the
// request timeout.
func callCoord[Req, Res any](ctx context.Context, c *Client, m rpc[Req, Res], req *Req) (*Res, string, error) {
	ctx, cancel := c.unaryContext(ctx)
	defer cancel()
	return callCoordUnbounded(ctx, c, m, req)
}

// callCoordUnbounded runs a subscription operation m on the coordinator:
// the node the client knows as coordinator, or the home node. It follows
// a refusal that names another node, forgets a coordinator it cannot
// reach or whose connection broke (asking the home node again), and
// retries a refusal during an election after a backoff, a few times. It
// returns the node that answered. m must be safe to repeat.
func callCoordUnbounded[Req, Res any](ctx context.Context, c *Client, m rpc[Req, Res], req *Req) (*Res, string, error) {
	redirects, refusals := 0, 0
	for {
		var (
			resp  *Res
			route = c.coordinator()
			err   error
		)
		if route != "" {
			resp, err = callUnbounded(ctx, c, m.on(c, route), req)
		} else {
			resp, route, err = callHome(ctx, c, m, req)
		}
		if err == nil {
			return resp, route, nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return nil, route, err
		}
		switch {
		case c.coordMoved(route, err) && redirects < maxCoordRedirects:
			redirects++
			continue
		case coordOf(err) != nil && refusals+1 < coordRefusalAttempts:
			refusals++
			if !sleep(ctx, c.cfg.backoff.delay(refusals, retryAfterOf(err))) {
				return nil, route, err
			}
			continue
		case route == c.coordinator() && !fromServer(err) && redirects < maxCoordRedirects:
			// The coordinator may be down: the home node names the next.
			// Subscription operations may be repeated (a reset or purge
			// sets a position, a redrive moves each message once, the
			// rest read), so the call is sent again even if the failure
			// came after it was sent.
			c.nodeFailed(route, err)
			redirects++
			continue
		}
		return nil, route, err
	}
}

package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/trace"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// DefaultAddr is the address `spool serve` listens on by default.
const DefaultAddr = "http://127.0.0.1:7070"

// Client is a connection to a Spool server or cluster: admin calls,
// Publish, and the factory of Producers and Consumers. It is safe for concurrent use; make
// one per process and Close it at exit.
type Client struct {
	cfg       clientConfig
	addr      string
	transport *http.Transport // the client's own; nil when WithHTTPClient was given

	// The nodes (nodes.go) and routing to a cluster's partition leaders
	// (routing.go).
	hc        connect.HTTPClient
	copts     []connect.ClientOption
	scheme    string        // of every address
	seeds     []string      // the addresses' host:port, in the order given
	seedAddrs []string      // the addresses, as given
	rr        atomic.Uint32 // rotates the partition of keyless messages in routed Publish calls
	tr        tracing       // OpenTelemetry (tracing.go)

	mu        sync.Mutex
	home      string                   // the node unrouted calls go to (host:port)
	coord     string                   // the subscription coordinator, if known (host:port)
	learned   map[string]bool          // nodes a cluster named, by host:port
	nodes     map[string]*nodeConn     // nodes' services, by host:port
	leaders   map[string]*topicLeaders // a cluster's topics' leaders, for Publish
	closed    bool
	producers map[*Producer]struct{}
	consumers map[*Consumer]struct{}           // running ones
	reads     map[*context.CancelFunc]struct{} // ReadTopic iterations running, by their cancel
}

// New returns a client for the server at addr ("http://host:port", or
// "https://…" for TLS); it does not connect until the first call. addr may
// list several nodes of a cluster, separated by commas
// ("http://a:7070,http://b:7070"; WithServers adds more): calls go to the
// first that can be reached, and the client finds the rest of the cluster
// through it (docs/cluster.md). The
// default transport speaks HTTP/2 only: cleartext (h2c) for "http://", TLS
// with ALPN for "https://", with HTTP/2 keep-alive pings so that dead
// connections are noticed. An invalid addr or option is an error that
// matches ErrInvalidOption.
func New(addr string, opts ...Option) (*Client, error) {
	cfg := defaultClientConfig()
	for _, o := range opts {
		if o.apply != nil {
			o.apply(&cfg)
		}
	}
	if len(cfg.errs) > 0 {
		return nil, errors.Join(cfg.errs...)
	}
	addrs, hosts, scheme, err := parseSeeds(addr, cfg.servers)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:       cfg,
		addr:      addrs[0],
		scheme:    scheme,
		seeds:     hosts,
		seedAddrs: addrs,
		home:      hosts[0],
		learned:   map[string]bool{},
		nodes:     map[string]*nodeConn{},
		leaders:   map[string]*topicLeaders{},
		producers: map[*Producer]struct{}{},
		consumers: map[*Consumer]struct{}{},
		reads:     map[*context.CancelFunc]struct{}{},
	}
	c.tr = newTracing(&cfg)
	hc := cfg.httpClient
	if hc != nil && cfg.tls != nil {
		return nil, fmt.Errorf("%w: WithTLS and WithHTTPClient together: configure the HTTP client's transport", ErrInvalidOption)
	}
	if hc == nil {
		c.transport = newTransport()
		if cfg.tls != nil {
			c.transport.TLSClientConfig = cfg.tls.Clone()
			// Full-size records from the first byte: batches stream to the
			// broker, and small records (which a connection returns to
			// after each idle second) cost throughput, not latency.
			c.transport.TLSClientConfig.DynamicRecordSizingDisabled = true
		}
		hc = &http.Client{Transport: c.transport}
	}
	if cfg.apiKey != "" {
		h := *hc
		base := h.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		h.Transport = bearerTransport{base: base, value: "Bearer " + cfg.apiKey}
		hc = &h
	}
	var copts []connect.ClientOption
	if cfg.grpc {
		copts = append(copts, connect.WithGRPC())
	}
	c.hc, c.copts = hc, copts
	return c, nil
}

// newTransport is the default HTTP/2-only transport.
func newTransport() *http.Transport {
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		Protocols:           &protocols,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 15 * time.Second,
			PingTimeout:     10 * time.Second,
		},
	}
}

// Addr returns the (first) server address the client was made with,
// without a trailing slash.
func (c *Client) Addr() string { return c.addr }

// Close closes the producers still open (their unsent messages fail with
// ErrProducerClosed at once: Close them yourself first to flush), stops
// running consumers as if their Run context were cancelled and waits for
// them, ends running ReadTopic reads (with ErrClosed), and releases idle
// connections. Later calls fail with ErrClosed; Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	producers := make([]*Producer, 0, len(c.producers))
	for p := range c.producers {
		producers = append(producers, p)
	}
	consumers := make([]*Consumer, 0, len(c.consumers))
	for k := range c.consumers {
		consumers = append(consumers, k)
	}
	for cancel := range c.reads {
		(*cancel)()
	}
	clear(c.nodes)
	clear(c.leaders)
	c.mu.Unlock()

	for _, p := range producers {
		_ = p.close(context.Background(), true)
	}
	for _, k := range consumers {
		k.stop()
	}
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// unaryContext applies the request timeout to ctx when it has no deadline.
func (c *Client) unaryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || c.cfg.requestTimeout == 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.requestTimeout)
}

// call runs one unary RPC on the home node (nodes.go) with the client's
// timeout and error conversion.
func call[Req, Res any](ctx context.Context, c *Client, m rpc[Req, Res], req *Req) (*Res, error) {
	ctx, cancel := c.unaryContext(ctx)
	defer cancel()
	resp, _, err := callHome(ctx, c, m, req)
	return resp, err
}

// callOn runs one unary RPC on the node at route with the client's
// timeout and error conversion.
func callOn[Req, Res any](ctx context.Context, c *Client, route string, m rpc[Req, Res], req *Req) (*Res, error) {
	ctx, cancel := c.unaryContext(ctx)
	defer cancel()
	return callUnbounded(ctx, c, m.on(c, route), req)
}

// callUnbounded is call without the request timeout, for calls whose
// duration grows with the work they do.
func callUnbounded[Req, Res any](ctx context.Context, c *Client, f func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error), req *Req) (*Res, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	resp, err := f(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, transportError(ctx, convertError(err))
	}
	return resp.Msg, nil
}

// transportError makes a call's "canceled" that the caller did not ask
// for (ctx is not done: the connection was reset or closed under the call)
// the retriable unavailable it is: the server may or may not have done
// the work, as after any failure of the network.
func transportError(ctx context.Context, err error) error {
	var e *Error
	if ctx.Err() != nil || !errors.As(err, &e) || e.Code != "canceled" {
		return err
	}
	var ce *connect.Error
	if !errors.As(e.cause, &ce) || len(ce.Details()) > 0 {
		return err // the server's own answer
	}
	return &Error{Code: CodeUnavailable, Message: e.Message, Retriable: true, cause: e.cause}
}

// Publish publishes msgs to topic in one request and returns one result per
// message, in order. Messages without an ID get one, so retrying a
// retriable failure (done here up to WithPublishAttempts times, with
// backoff) never stores a message twice. Messages for one partition are
// stored all or nothing; after an error, messages for other partitions may
// have been stored. Publishing no messages is a no-op. One request holds at
// most 10,000 messages and 100,000 headers (the server's limits; more fail
// with ErrInvalidArgument before anything is sent). For throughput, use a
// Producer.
//
// On a cluster, where only a partition's leader takes its publishes, the
// first node that refuses a partition names its leader: Publish then
// fixes each message's partition (its key's, or one for the keyless
// messages of the call), sends each partition's messages to its leader and
// follows leaders that change; later calls for the topic go to the
// leaders directly. Redirects do not count as attempts; a partition with
// no leader (an election) does.
//
// Tracing is as for Producer.Send: the trace context of ctx (or, with
// WithTracerProvider, of each message's publish span, which ends when
// Publish returns) is written into the headers of the messages that have
// no traceparent header; msgs itself is not changed.
func (c *Client) Publish(ctx context.Context, topic string, msgs ...Message) ([]PublishResult, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	if len(msgs) > maxPublishMessages {
		return nil, invalidArgument("%d messages in one Publish; the limit is %d (a Producer splits batches for you)", len(msgs), maxPublishMessages)
	}
	var spans []trace.Span // with a tracer: the messages' publish spans
	if c.tr.tracer != nil {
		spans = make([]trace.Span, len(msgs))
	}
	req, err := c.publishRequest(ctx, topic, msgs, spans)
	var out []PublishResult
	if err == nil {
		out, err = c.publish(ctx, topic, req, len(msgs))
	}
	for i, span := range spans {
		switch {
		case span == nil:
		case err != nil:
			endPublish(span, PublishResult{}, err)
		default:
			endPublish(span, out[i], nil)
		}
	}
	return out, err
}

// publishRequest checks and converts msgs for Publish. With a tracer it
// starts their publish spans in spans; the trace context is written into
// copies of the messages (see Producer.Send).
func (c *Client) publishRequest(ctx context.Context, topic string, msgs []Message, spans []trace.Span) (*spoolv1.PublishRequest, error) {
	traced := spans != nil || trace.SpanContextFromContext(ctx).IsValid()
	name := ""
	if spans != nil {
		name = "publish " + topic
	}
	req := &spoolv1.PublishRequest{Topic: topic, Messages: make([]*spoolv1.Message, len(msgs))}
	headers := 0
	for i := range msgs {
		m := &msgs[i]
		if err := m.check(); err != nil {
			return nil, err
		}
		var span trace.Span
		if traced {
			mc := *m // the caller's message is left as it is
			span = c.tr.startPublish(ctx, name, topic, &mc)
			m = &mc
		}
		pm := m.proto()
		if span != nil {
			spans[i] = span
			if m.ID == "" {
				span.SetAttributes(attrMessageID.String(pm.Id))
			}
		}
		req.Messages[i] = pm
		if headers += len(pm.Headers); headers > maxRequestHeaders {
			return nil, invalidArgument("more than %d headers in one Publish (the limit)", maxRequestHeaders)
		}
	}
	return req, nil
}

// publish sends Publish's request of n messages, retrying and following
// leaders.
func (c *Client) publish(ctx context.Context, topic string, req *spoolv1.PublishRequest, n int) ([]PublishResult, error) {
	if tl, ok := c.leadersFor(topic); ok {
		return c.publishRouted(ctx, topic, req, tl, 0, false)
	}
	for attempt := 1; ; attempt++ {
		resp, err := call(ctx, c, publishRPC(spoolv1connect.PublishServiceClient.Publish), req)
		if err == nil {
			out := make([]PublishResult, n)
			return out, fillResults(out, nil, resp)
		}
		if leaderOf(err) != nil {
			// A cluster node that does not lead a partition of the
			// request refused all of it: send each partition's messages
			// to its leader.
			return c.publishRouted(ctx, topic, req, nil, attempt-1, true)
		}
		if !IsRetriable(err) || attempt >= c.cfg.publishAttempts {
			return nil, err
		}
		var e *Error
		errors.As(err, &e)
		if !sleep(ctx, c.cfg.backoff.delay(attempt, e.RetryAfter)) {
			return nil, err
		}
	}
}

// register records a producer so Close can close it; false if closed.
func (c *Client) register(p *Producer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.producers[p] = struct{}{}
	return true
}

func (c *Client) unregister(p *Producer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.producers, p)
}

// startConsumer records a running consumer; false if closed.
func (c *Client) startConsumer(k *Consumer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.consumers[k] = struct{}{}
	return true
}

func (c *Client) stopConsumer(k *Consumer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.consumers, k)
}

// startRead records a running ReadTopic iteration so that Close can end it;
// false if closed.
func (c *Client) startRead(cancel *context.CancelFunc) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.reads[cancel] = struct{}{}
	return true
}

func (c *Client) stopRead(cancel *context.CancelFunc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.reads, cancel)
}

// bearerTransport adds the Authorization header of WithAPIKey to every
// request.
type bearerTransport struct {
	base  http.RoundTripper
	value string
}

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", t.value)
	return t.base.RoundTrip(r)
}

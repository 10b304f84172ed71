package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Option configures a Client (New). Producer and consumer settings are the
// distinct types ProducerOption and ConsumerOption, so a misplaced option
// does not compile. The zero Option does nothing.
type Option struct{ apply func(*clientConfig) }

// ProducerOption configures a Producer (Client.NewProducer).
type ProducerOption struct{ apply func(*producerConfig) }

// ConsumerOption configures a Consumer (Client.NewConsumer).
type ConsumerOption struct{ apply func(*consumerConfig) }

type clientConfig struct {
	httpClient      *http.Client  // nil: the client's own h2c transport
	requestTimeout  time.Duration // for unary calls whose context has no deadline; 0 = none
	clientID        string
	logger          *slog.Logger
	grpc            bool
	backoff         backoff
	publishAttempts int
	servers         []string                      // more addresses of the cluster (WithServers)
	tls             *tls.Config                   // nil: the system's roots, no client certificate
	tracerProvider  trace.TracerProvider          // nil: no spans
	propagator      propagation.TextMapPropagator // nil: propagation.TraceContext{}
	apiKey          string                        // "": no Authorization header
	errs            []error
}

func defaultClientConfig() clientConfig {
	return clientConfig{
		requestTimeout:  30 * time.Second,
		clientID:        "spool-go",
		logger:          slog.Default(),
		backoff:         backoff{min: 50 * time.Millisecond, max: 5 * time.Second},
		publishAttempts: 3,
	}
}

func (c *clientConfig) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// WithHTTPClient makes the client send every call through hc instead of its
// own transport; hc must speak HTTP/2 (h2c for "http://" addresses), or the
// Consume and PublishStream streams fail. nil is an invalid option.
func WithHTTPClient(hc *http.Client) Option {
	return Option{func(c *clientConfig) {
		if hc == nil {
			c.fail("WithHTTPClient: nil client")
		}
		c.httpClient = hc
	}}
}

// WithTLS makes the client's own transport use cfg for "https://"
// addresses: the CAs it trusts (RootCAs) and, for servers that require
// mutual TLS, its certificate (Certificates). Without it, https://
// addresses are verified against the system's roots. It cannot be combined
// with WithHTTPClient (configure that client's transport instead); nil is
// an invalid option.
func WithTLS(cfg *tls.Config) Option {
	return Option{func(c *clientConfig) {
		if cfg == nil {
			c.fail("WithTLS: nil config")
		}
		c.tls = cfg
	}}
}

// WithServers adds addresses of other nodes of the same cluster to the one
// given to New ("http://host:port", all of New's scheme): when the first
// cannot be reached the client goes on through the next. Every node shares
// the client's HTTP client. Without it, a client made with one address
// still learns the cluster's other nodes from what that node tells it.
func WithServers(addrs ...string) Option {
	return Option{func(c *clientConfig) {
		for _, a := range addrs {
			if a == "" {
				c.fail("WithServers: empty address")
				continue
			}
			c.servers = append(c.servers, a)
		}
	}}
}

// WithRequestTimeout bounds each unary call (admin calls, Publish) whose
// context has no deadline; default 30 s; 0 means no bound; negative is
// invalid. Streams are never bounded by it.
func WithRequestTimeout(d time.Duration) Option {
	return Option{func(c *clientConfig) {
		if d < 0 {
			c.fail("WithRequestTimeout: negative duration %v", d)
		}
		c.requestTimeout = d
	}}
}

// WithAPIKey sends key as a bearer token (Authorization: Bearer key) on
// every request, streams included, for servers with authentication
// enabled (spool user rotate issues keys). An empty key is an invalid
// option.
func WithAPIKey(key string) Option {
	return Option{func(c *clientConfig) {
		if key == "" || strings.ContainsAny(key, " \r\n") {
			c.fail("WithAPIKey: empty or malformed key")
			return
		}
		c.apiKey = key
	}}
}

// WithClientID names this client in the server's member lists (describe
// output); default "spool-go".
func WithClientID(id string) Option {
	return Option{func(c *clientConfig) { c.clientID = id }}
}

// WithLogger sends the client's logs (reconnects, handler errors, commit
// failures) to l; default slog.Default(); nil discards them.
func WithLogger(l *slog.Logger) Option {
	return Option{func(c *clientConfig) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	}}
}

// WithGRPC speaks the gRPC protocol instead of Connect (the default); both
// are served on the same port.
func WithGRPC() Option {
	return Option{func(c *clientConfig) { c.grpc = true }}
}

// WithBackoff sets the capped exponential backoff, with jitter, used between
// retries and reconnects: the first wait is about min, each later one
// doubles, none exceeds max; defaults 50 ms and 5 s. A server's retry-after
// hint lengthens a wait, never shortens it. Requires 0 < min ≤ max.
func WithBackoff(min, max time.Duration) Option {
	return Option{func(c *clientConfig) {
		if min <= 0 || max < min {
			c.fail("WithBackoff: need 0 < min ≤ max, got %v and %v", min, max)
		}
		c.backoff = backoff{min: min, max: max}
	}}
}

// WithPublishAttempts sets how many times Client.Publish tries a request
// whose error is retriable (same message IDs each time, so no duplicates);
// default 3; 1 disables retries; less than 1 is invalid.
func WithPublishAttempts(n int) Option {
	return Option{func(c *clientConfig) {
		if n < 1 {
			c.fail("WithPublishAttempts: %d < 1", n)
		}
		c.publishAttempts = n
	}}
}

// WithTracerProvider makes the client record OpenTelemetry spans with tp:
// a "publish <topic>" span (kind producer) for every message published by
// a Producer or Publish, from Send to the message's outcome, a child of
// the span in the publish context; and a "process <topic>" span (kind
// consumer) for every handler call, a child of the publish span whose
// context the message carries, that records the handler's error and what
// became of the message. The handler's context holds it. Attributes
// follow OpenTelemetry's messaging conventions (messaging.system "spool",
// messaging.destination.name, messaging.consumer.group.name,
// messaging.destination.partition.id, …; Spool's own are
// messaging.spool.*). Default none: no span is started. Either way the
// trace context is carried in message headers (see WithPropagator). nil
// is the same as no provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return Option{func(c *clientConfig) { c.tracerProvider = tp }}
}

// WithPropagator sets how trace context is written into message headers
// and read back from them; default propagation.TraceContext{}: the W3C
// traceparent and tracestate headers. A message published from a context
// that carries a valid span context gets that context's headers (the
// publish span's, with WithTracerProvider) unless it has one of the
// propagator's headers already; a handler called on a message with one of
// them runs in a context holding the trace context it carries, so spans it
// starts continue the producer's trace. This happens with or without
// WithTracerProvider. nil is invalid.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return Option{func(c *clientConfig) {
		if p == nil {
			c.fail("WithPropagator: nil propagator")
		}
		c.propagator = p
	}}
}

type producerConfig struct {
	linger          time.Duration
	maxBatchMsgs    int
	maxBatchBytes   int64
	maxInFlight     int
	maxBuffered     int64
	deliveryTimeout time.Duration
	errs            []error
}

func defaultProducerConfig() producerConfig {
	return producerConfig{
		linger:          5 * time.Millisecond,
		maxBatchMsgs:    maxPublishMessages,
		maxBatchBytes:   1 << 20,
		maxInFlight:     16,
		maxBuffered:     16 << 20,
		deliveryTimeout: time.Minute,
	}
}

func (c *producerConfig) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// ProducerLinger is how long a batch waits for more messages before it is
// sent; default 5 ms; 0 sends as soon as a request slot is free (messages
// still batch up while all slots are busy); negative is invalid.
func ProducerLinger(d time.Duration) ProducerOption {
	return ProducerOption{func(c *producerConfig) {
		if d < 0 {
			c.fail("ProducerLinger: negative duration %v", d)
		}
		c.linger = d
	}}
}

// ProducerMaxBatchMessages caps the messages in one publish request;
// default 10,000, the server's limit, so that requests are bounded by
// ProducerMaxBatchBytes as Kafka clients' batches are (a count of 1,000
// made requests of small messages four times as many, and pipelined
// publishing a quarter slower); must be between 1 and 10,000.
func ProducerMaxBatchMessages(n int) ProducerOption {
	return ProducerOption{func(c *producerConfig) {
		if n < 1 || n > maxPublishMessages {
			c.fail("ProducerMaxBatchMessages: %d not in 1–%d", n, maxPublishMessages)
		}
		c.maxBatchMsgs = n
	}}
}

// ProducerMaxBatchBytes caps the approximate size of one publish request;
// default 1 MiB (of encoded records in the batch form: its requests carry
// as many messages as a Kafka client's 1 MB batches); a single larger
// message is still sent, alone; must be at least 1.
func ProducerMaxBatchBytes(n int64) ProducerOption {
	return ProducerOption{func(c *producerConfig) {
		if n < 1 {
			c.fail("ProducerMaxBatchBytes: %d < 1", n)
		}
		c.maxBatchBytes = n
	}}
}

// ProducerMaxInFlight caps the unanswered requests on the producer's stream;
// default 16; must be at least 1. Per-key order holds for any value (see
// Producer).
func ProducerMaxInFlight(n int) ProducerOption {
	return ProducerOption{func(c *producerConfig) {
		if n < 1 {
			c.fail("ProducerMaxInFlight: %d < 1", n)
		}
		c.maxInFlight = n
	}}
}

// ProducerMaxBufferedBytes bounds the memory held by messages sent but not
// yet acknowledged; Send blocks (until its context ends) while it is
// reached; default 16 MiB (a partition's five batches in flight of 1 MiB
// and more being filled; with 64 MiB, pipelined publishing spent a quarter
// more CPU per message, its records out of the CPU's caches by the time
// they were batched and acknowledged); a message larger than the bound is
// accepted when nothing else is buffered; must be at least 1.
func ProducerMaxBufferedBytes(n int64) ProducerOption {
	return ProducerOption{func(c *producerConfig) {
		if n < 1 {
			c.fail("ProducerMaxBufferedBytes: %d < 1", n)
		}
		c.maxBuffered = n
	}}
}

// ProducerDeliveryTimeout bounds the time from Send to acknowledgement,
// retries included, after which the message fails with ErrDeliveryTimeout;
// default 1 minute. Retries of messages without an ID are recognised by
// the producer's sequence numbers; for messages with an ID (sent one by
// one, see Producer) keep it below the topic's DedupWindow (default 2
// minutes): a retry after the window can store a duplicate. Must be > 0.
func ProducerDeliveryTimeout(d time.Duration) ProducerOption {
	return ProducerOption{func(c *producerConfig) {
		if d <= 0 {
			c.fail("ProducerDeliveryTimeout: %v is not positive", d)
		}
		c.deliveryTimeout = d
	}}
}

type consumerConfig struct {
	prefetch          int
	prefetchSet       bool // ConsumerPrefetch was given (queue mode otherwise defaults to 2 × concurrency)
	concurrency       int
	sessionTimeout    time.Duration // 0: the server's default
	instanceID        string
	commitInterval    time.Duration
	commitEvery       int
	handlerRetries    int
	handlerRetriesSet bool
	stopOnError       bool
	shutdownTimeout   time.Duration
	onAssigned        func(context.Context, []int32)
	onRevoked         func(context.Context, []int32)
	onError           func(*Message, error)
	onFailure         func(*Message, FailureAction, error)
	// Queue mode.
	keyOrdered   bool
	maxInFlight  int
	ackInterval  time.Duration
	ackEvery     int
	maxExtension time.Duration
	errs         []error
}

func defaultConsumerConfig() consumerConfig {
	return consumerConfig{
		prefetch:        1000,
		concurrency:     1,
		commitInterval:  time.Second,
		commitEvery:     1000,
		shutdownTimeout: 30 * time.Second,
		ackInterval:     5 * time.Millisecond,
		ackEvery:        1000,
		maxExtension:    12 * time.Hour,
	}
}

// credit is the stream's credit: ConsumerPrefetch, or in queue mode without
// it twice the concurrency, so that a slow consumer does not sit on leases
// other members could work on.
func (c *consumerConfig) credit(queue bool) int {
	if queue && !c.prefetchSet {
		return min(2*c.concurrency, 1_000_000)
	}
	return c.prefetch
}

func (c *consumerConfig) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// ConsumerPrefetch is how many delivered messages the consumer may hold
// unfinished, running or waiting (the stream's credit); default 1000 in
// stream mode and twice ConsumerConcurrency in queue mode, where every
// message held is a lease that other members cannot take; 1–1,000,000.
func ConsumerPrefetch(n int) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if n < 1 || n > 1_000_000 {
			c.fail("ConsumerPrefetch: %d not in 1–1000000", n)
		}
		c.prefetch, c.prefetchSet = n, true
	}}
}

// ConsumerConcurrency caps the handler calls running at once; default 1;
// must be at least 1. In stream mode each owned partition is processed by
// its own worker, one message at a time and in offset order, so n > 1 only
// adds parallelism across partitions. In queue mode n workers take any
// message (see ConsumerKeyOrdered).
func ConsumerConcurrency(n int) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if n < 1 {
			c.fail("ConsumerConcurrency: %d < 1", n)
		}
		c.concurrency = n
	}}
}

// ConsumerSessionTimeout asks the server to evict the member after this
// long without hearing from it; 0 (default) uses the server's (10 s).
// Heartbeats go every third of the timeout the server applies. Negative is
// invalid.
func ConsumerSessionTimeout(d time.Duration) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if d < 0 {
			c.fail("ConsumerSessionTimeout: negative duration %v", d)
		}
		c.sessionTimeout = d
	}}
}

// ConsumerInstanceID enables static membership: a consumer that rejoins with
// the same id within the session timeout keeps its partitions without a
// rebalance. Give every process its own stable id; empty disables.
func ConsumerInstanceID(id string) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) { c.instanceID = id }}
}

// ConsumerCommitInterval is how often processed offsets are committed;
// default 1 s; must be > 0. Commits also happen after ConsumerCommitEvery
// messages, on revocation and at shutdown.
func ConsumerCommitInterval(d time.Duration) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if d <= 0 {
			c.fail("ConsumerCommitInterval: %v is not positive", d)
		}
		c.commitInterval = d
	}}
}

// ConsumerCommitEvery commits as soon as n messages were processed since the
// last commit; default 1000; 1 commits after every message; must be ≥ 1.
func ConsumerCommitEvery(n int) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if n < 1 {
			c.fail("ConsumerCommitEvery: %d < 1", n)
		}
		c.commitEvery = n
	}}
}

// ConsumerHandlerRetries overrides the subscription's attempts: a message
// whose handler returned an error is retried up to n more times (n + 1
// calls in all), waiting the subscription's Backoff between calls. By
// default a stream consumer makes the subscription's MaxDeliveries calls
// (default 5). A message still failing is then reported to the server,
// which applies the subscription's OnFailure action: dead-letter (the
// message is copied to the dead-letter topic and committed as processed)
// or stop (the partition halts without committing past it, until it is
// reset). Stream mode only: in queue mode a handler error nacks the message
// and the server redelivers it (the subscription's Backoff and
// MaxDeliveries). Negative is invalid.
func ConsumerHandlerRetries(n int) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if n < 0 {
			c.fail("ConsumerHandlerRetries: negative %d", n)
		}
		c.handlerRetries, c.handlerRetriesSet = n, true
	}}
}

// ConsumerStopOnError makes a handler error (after any retries) fatal: Run
// shuts down gracefully and returns it, and the failed message is not
// committed, so it is redelivered to the next consumer. In queue mode the
// failed message is nacked first; a Reject is not a failure and does not
// stop the consumer.
func ConsumerStopOnError() ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) { c.stopOnError = true }}
}

// ConsumerShutdownTimeout bounds how long shutdown and revocation wait for
// running handlers before cancelling their context (they must then return);
// default 30 s; must be > 0. In queue mode the messages of handlers given up
// on are nacked at that moment.
func ConsumerShutdownTimeout(d time.Duration) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if d <= 0 {
			c.fail("ConsumerShutdownTimeout: %v is not positive", d)
		}
		c.shutdownTimeout = d
	}}
}

// ConsumerOnAssigned is called with the partitions newly assigned to the
// member, before any of their messages is handled. It runs on the session
// goroutine (heartbeats continue, deliveries wait), so keep it short. Stream
// mode only (queue members own no partitions), like ConsumerOnRevoked.
func ConsumerOnAssigned(f func(ctx context.Context, partitions []int32)) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) { c.onAssigned = f }}
}

// ConsumerOnRevoked is called with partitions taken away from the member:
// after their running handlers returned and their progress was committed,
// before the server is told they are released. Also called, without a
// commit, for partitions lost when the session breaks or the server drops
// them without a revoke. Keep it short, as ConsumerOnAssigned.
func ConsumerOnRevoked(f func(ctx context.Context, partitions []int32)) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) { c.onRevoked = f }}
}

// ConsumerOnError is called, from the worker that ran the handler, after
// every failed handler call (in queue mode Reject included), with the
// message and the handler's error; the error is also logged at warn level.
func ConsumerOnError(f func(m *Message, err error)) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) { c.onError = f }}
}

// ConsumerOnFailure is called, from the worker that ran the handler, once
// a stream consumer gave up on a message and the server applied the
// subscription's failure action (FailureDeadLetter: the copy is durable;
// FailureStop: the partition is halted), with the handler's last error.
func ConsumerOnFailure(f func(m *Message, action FailureAction, err error)) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) { c.onFailure = f }}
}

// ConsumerKeyOrdered makes a queue-mode consumer handle messages with the
// same key one at a time, in the order they arrived; messages with other
// keys, or without a key, run in parallel (ConsumerConcurrency). The order
// holds within this consumer only, and a nacked message may be redelivered
// after later messages of its key were handled. A subscription created with
// OrderingKey needs none of this: the server never leases two messages of
// one key at once, to any member, and redelivers a failed message before
// the next of its key. Stream mode ignores it (partitions are already
// handled in order).
func ConsumerKeyOrdered() ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) { c.keyOrdered = true }}
}

// ConsumerMaxInFlight caps the leases this queue-mode consumer holds at
// once, finished messages whose acknowledgement is not yet sent included
// (ConsumeStart.max_in_flight); default 0: only ConsumerPrefetch bounds
// it. Must not be negative. Stream mode ignores it.
func ConsumerMaxInFlight(n int) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if n < 0 || n > 1_000_000 {
			c.fail("ConsumerMaxInFlight: %d not in 0–1000000", n)
		}
		c.maxInFlight = n
	}}
}

// ConsumerAckInterval is how long a queue-mode acknowledgement may wait to
// be sent with others (contiguous offsets travel as one range); default
// 5 ms; 0 sends each at once; negative is invalid. Acknowledgements are
// also sent after ConsumerAckEvery messages, when the consumer has nothing
// else in hand, and at shutdown. Nacks and rejects are sent at once.
func ConsumerAckInterval(d time.Duration) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if d < 0 {
			c.fail("ConsumerAckInterval: negative duration %v", d)
		}
		c.ackInterval = d
	}}
}

// ConsumerAckEvery sends the pending queue-mode acknowledgements as soon as
// n messages were acknowledged; default 1000; 1–65536.
func ConsumerAckEvery(n int) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if n < 1 || n > maxAckOffsets {
			c.fail("ConsumerAckEvery: %d not in 1–%d", n, maxAckOffsets)
		}
		c.ackEvery = n
	}}
}

// ConsumerMaxExtension caps how long a queue-mode consumer keeps a message's
// lease alive: it extends the lease of every message it holds, waiting or
// running, at about two thirds of the lease, until the message is finished
// or it has held it for d; then the lease runs out and the message is
// redelivered. Default 12 h; 0 disables extension; negative is invalid.
func ConsumerMaxExtension(d time.Duration) ConsumerOption {
	return ConsumerOption{func(c *consumerConfig) {
		if d < 0 {
			c.fail("ConsumerMaxExtension: negative duration %v", d)
		}
		c.maxExtension = d
	}}
}

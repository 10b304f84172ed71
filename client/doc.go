// Package client is the Go SDK for Spool, the durable event broker. It
// speaks Spool's native API (Connect or gRPC over HTTP/2) and exposes only
// Go types.
//
// A Client is a connection to a server, or to the nodes of a cluster:
//
//	c, err := client.New("http://127.0.0.1:7070")
//	…
//	defer c.Close()
//
// Admin calls manage topics and subscriptions: CreateTopic, AlterTopic,
// AddPartitions, DeleteTopic, ListTopics, DescribeTopic,
// CreateSubscription, AlterSubscription, DeleteSubscription,
// ListSubscriptions, DescribeSubscription and ResetSubscription (with the
// positions Earliest, Latest, AtTime and AtOffset); for queue
// subscriptions, ListDeadLetters and Redrive.
//
// Reading without a subscription: ReadTopic returns an iterator over a
// topic's messages from a position, in one partition or all of them,
// optionally following new ones; nothing is stored on the server. For
// debugging and audits:
//
//	for m, err := range c.ReadTopic(ctx, "orders", client.ReadFrom(client.AtTime(t))) {
//		…
//	}
//
// Publishing: Client.Publish is one request, for simple uses. A Producer
// batches and pipelines messages over one stream, retries without
// duplicating, keeps per-key order, and bounds its memory. Futures report
// each message's outcome; PublishSync waits for it. A Producer builds the
// Kafka record batches the server stores itself (the batch form of
// PublishRequest, with a producer id and sequence numbers that make
// retries safe, as Kafka's idempotent producers do); messages with an ID or
// a Delay go one by one (the message form), where the topic's
// de-duplication window and the broker's clock apply.
//
// Clusters: give any node's address, or several
// (New("http://a:7070,http://b:7070") or WithServers): calls go to the first
// node that can be reached, and the client learns the others from what
// the cluster tells it. Only a partition's leader takes its publishes; a
// node that does not lead a partition refuses a publish to it and names
// the leader, and DescribeTopic names every partition's leader
// (PartitionInfo.Leader, LeaderAddr). Publish and the Producer follow them:
// each partition's messages go to its leader over a connection made for
// that node when first needed (closed with the client), refused or
// interrupted ones are resent there with the same message ids or producer
// sequences (so nothing is stored twice), and during an election they
// wait within the retry budget (WithPublishAttempts for Publish, the
// delivery timeout for a Producer). Subscriptions are served by one node,
// the coordinator: a Consumer's sessions (and with them its commits and
// acknowledgements), ResetSubscription, PurgeSubscription, Redrive,
// DescribeSubscription and ListDeadLetters go to it. Another node refuses
// them naming the coordinator, and DescribeSubscription names it up
// front; when the coordinator cannot be reached (it stopped), the client
// asks the other nodes it knows and follows the new one, a Consumer within
// its usual reconnect backoff. After such a move a stream Consumer goes on
// from the last commit and a queue Consumer's unacknowledged messages are
// delivered again (at-least-once: nothing is skipped, a message handled
// but not yet committed or acknowledged may be handled twice). Other admin
// calls and ReadTopic are answered by any node. On a single node none of
// this costs anything: no leader or coordinator is ever named, and no
// extra call is made.
//
// Consuming: a Consumer joins a subscription and calls a Handler for every
// message. On a stream subscription it handles messages in order per
// partition, commits after the handler returns and follows rebalances. On
// a queue subscription every delivery is a lease: the handler's nil acks
// the message, an error nacks it (redelivered after the subscription's
// backoff, or RetryAfter's delay), Reject dead-letters it; acks are
// batched and leases extended while the message is held. Either way the
// consumer reconnects after failures and shuts down gracefully when its
// context is cancelled.
//
// Tracing (OpenTelemetry, docs/sdk-tracing.md): with WithTracerProvider
// the client records a "publish <topic>" span (kind producer) per message
// published, a child of the publish context's span that ends when the
// message is durable or failed, and a "process <topic>" span (kind
// consumer) per handler call, a child of the publish span, that records
// the handler's error and the message's outcome; the handler's context
// holds it. Without a provider no span is started, but the trace context
// still travels: a message published from a context with a valid span
// context gets its traceparent (and tracestate) header, unless it has a
// traceparent already, and a handler runs in a context holding the trace
// context its message carries, so that its own spans continue the
// producer's trace. WithPropagator replaces the W3C propagator. The SDK
// depends on OpenTelemetry's API only.
//
// Errors from the server are *Error values carrying a stable Code, a
// Retriable flag and a RetryAfter hint; errors.Is matches them against
// ErrTopicNotFound, ErrTopicFull and the other sentinels, and IsRetriable
// tells whether trying again can help.
//
// Options are typed: Option configures a Client, ProducerOption a Producer,
// ConsumerOption a Consumer and ReadOption a ReadTopic call, so a misplaced
// option does not compile.
// Their documentation states every default.
//
// This package never imports Spool's internal packages; it depends only on
// the generated API code (and OpenTelemetry's API).
package client

// Package handle holds composable middlewares of client.Handler for
// queue-mode consumers: error classification, a circuit breaker that
// pauses consumption while a dependency is down, a concurrency limit
// shared across consumers, a per-call timeout, and panic recovery, with
// hooks for metrics and the handler's OpenTelemetry span.
//
//	br := handle.NewBreaker(handle.BreakerConfig{Name: "payments", OpenFor: 5 * time.Second})
//	h := handle.Chain(charge,
//		handle.Classify(),           // errors → nack, reject (dead-letter) or drop
//		br.Middleware(),             // wait while the payments service is down
//		limiter.Middleware(),        // at most n calls to it at once
//		handle.Timeout(time.Second), // a slow call is nacked, not waited for
//		handle.Recover(false),       // a panic is an error, not a crash
//	)
//	k, err := c.NewConsumer("orders", "billing", h)
//
// Classification: a Classifier maps an error to Retry (nack: redelivered
// after the subscription's backoff or a delay), Reject (client.Reject:
// dead-lettered at once with the error's text) or Drop (acknowledged).
// DefaultClassifier rejects errors wrapped with Permanent, drops those
// wrapped with DropMessage and retries the rest; IsTransient recognises
// timeouts and network errors for classifiers of one's own.
//
// The breaker never nacks a message because it is open: nacking would
// spend one of the message's deliveries (the server counts every
// delivery towards MaxDeliveries), so an outage longer than MaxDeliveries
// backoffs would dead-letter healthy messages. Calls wait instead, holding
// their messages, whose leases the consumer extends; the consumer takes
// no more messages than its workers and prefetch hold. See
// docs/toolkit-middleware.md.
//
// The package depends on the SDK and OpenTelemetry's API only.
package handle

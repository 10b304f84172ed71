// Package saga runs sagas choreographed through Spool topics: ordered
// steps, each with an action and a compensating action, each performed
// by the service that consumes the step's topic.
//
// When a step's action succeeds, its service publishes the next step's
// command on that step's topic (the last step publishes the saga's
// Outcome on the Definition's ResultTopic). When a step fails (Abort, or
// an error on its last attempt) or times out, compensations of the
// completed steps are published, latest first, each on its step's
// topic; the first step's compensation publishes the aborted Outcome.
//
// State: every message carries the whole saga (its id, the step, the
// data the steps built up, the reason of an abort), so any instance of a
// step's service resumes a saga from the message in hand, after a crash
// or on another node; nothing else is needed to go on. A Ledger in each
// service (its database: NewSQLLedger; MemoryLedger for tests) records how each of its
// steps ended and which compensations were applied, so that duplicate
// deliveries are no-ops: a step already ended only publishes its
// follow-up again (which the topic drops as a duplicate: every message
// id is derived from the saga, the step and the kind), and a compensation
// already applied is not applied again. An action or compensation can
// still run twice if the process dies after its effect and before the
// ledger records it; Exec.Key is an idempotency key for such effects
// (or the ledger can live in the same database transaction as them).
//
// Timeouts use delayed delivery: a step with a Timeout has a timeout
// message published with its command (client.Message.Delay). Whichever
// ends the step first in the ledger wins: a step that completes first
// makes the timeout a no-op; a timeout that comes first compensates the
// earlier steps, and an action completing after it is compensated too.
//
// Compensations that fail are nacked and retried with the
// subscription's backoff; after its MaxDeliveries (at once for Abort)
// the compensation is dead-lettered with its error, and the earlier
// steps' compensations wait until it is redriven (its message still
// carries the saga).
//
// See docs/toolkit-middleware.md.
package saga

package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/handle"
)

// Step is one step of a saga.
type Step struct {
	// Name names the step, unique within its Definition.
	Name string
	// Topic carries the step's messages: its commands, its compensations
	// and its timeouts. The service that performs the step consumes it
	// (Saga.Handler). Steps may share a topic only if one service
	// performs all of them.
	Topic string
	// Action performs the step. nil succeeds at once. An error is
	// retried (nack with the subscription's backoff) until the message
	// was delivered Attempts times, then the step fails; an error
	// wrapping Abort's, handle.Permanent's or client.Reject's fails it at
	// once. A failed step is not compensated (its action must leave
	// nothing behind); the steps before it are, latest first.
	Action func(ctx context.Context, x *Exec) error
	// Compensate undoes a completed Action; nil means nothing to undo.
	// An error is retried with the subscription's backoff up to its
	// MaxDeliveries, then the message is dead-lettered with the error's
	// text (at once for Abort's or handle.Permanent's): the compensations
	// of earlier steps then wait for the dead letter to be redriven.
	Compensate func(ctx context.Context, x *Exec) error
	// Timeout, if positive, fails the step when it has not completed this
	// long after its command was published (a delayed message). An
	// Action that completes after its step timed out is compensated.
	Timeout time.Duration
	// Attempts bounds the deliveries of the step's command before the
	// step fails; default 3. Keep it at most the subscription's
	// MaxDeliveries, or the command is dead-lettered before the saga
	// compensates.
	Attempts int32
}

// Definition is a saga: ordered steps, each with an action and a
// compensation.
type Definition struct {
	// Name names the saga type; it prefixes message ids and ledger keys.
	Name  string
	Steps []Step
	// ResultTopic, if set, receives one Outcome message per saga when it
	// completes or has been compensated.
	ResultTopic string
}

// Exec is what an Action or a Compensate function is given.
type Exec struct {
	SagaID string // the saga's id, given to Start
	Step   int    // the step's index in the Definition
	Name   string // the step's name
	// Key is unique to this saga, step and kind of work ("…/do" or
	// "…/undo"): an idempotency key for the step's own effects.
	Key string
	// Data is the saga's data as the previous steps left it. An Action
	// may replace it; the next steps (and compensations) see the new one.
	Data []byte
	// Reason is, for a compensation, why the saga is aborting.
	Reason string
	// Message is the delivered message.
	Message *client.Message
}

// Status is how a saga ended.
type Status string

const (
	Completed Status = "completed" // every step's action succeeded
	Aborted   Status = "aborted"   // a step failed; the earlier ones were compensated
)

// Outcome is the message a saga's ResultTopic receives: its value is the
// Outcome in JSON, its key the saga's id.
type Outcome struct {
	Saga   string `json:"saga"`
	Def    string `json:"def"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"` // Aborted: the failure
	Data   []byte `json:"data,omitempty"`   // the saga's data at the end
}

// DecodeOutcome decodes a message of a ResultTopic.
func DecodeOutcome(m *client.Message) (Outcome, error) {
	var o Outcome
	if err := json.Unmarshal(m.Value, &o); err != nil {
		return o, fmt.Errorf("saga: not an outcome: %w", err)
	}
	return o, nil
}

// AbortError fails a step at once; build it with Abort.
type AbortError struct{ Err error }

// Abort wraps err so that an Action returning it fails its step without
// further attempts, and a Compensate returning it dead-letters the
// compensation at once.
func Abort(err error) error { return &AbortError{Err: err} }

func (e *AbortError) Error() string {
	if e.Err == nil {
		return "aborted"
	}
	return e.Err.Error()
}

func (e *AbortError) Unwrap() error { return e.Err }

// permanent reports whether err asks not to retry.
func permanent(err error) bool {
	var ab *AbortError
	var rj *client.RejectError
	if errors.As(err, &ab) || errors.As(err, &rj) {
		return true
	}
	var pe *handle.PermanentError
	return errors.As(err, &pe)
}

// maxIDLen bounds saga ids, and with them message ids and ledger keys.
const maxIDLen = 200

// Kinds of saga messages.
const (
	kindDo      = "do"
	kindUndo    = "undo"
	kindTimeout = "timeout"
)

// How a step ended, in the ledger.
const (
	endOK      = "ok"
	endFailed  = "failed"
	endTimeout = "timeout"
)

// envelope is the value of every saga message: the saga's whole state,
// so that any instance of a step's service can go on from it.
type envelope struct {
	Saga   string `json:"saga"`
	Def    string `json:"def"`
	Step   int    `json:"step"`
	Kind   string `json:"kind"`
	Data   []byte `json:"data,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Saga runs one Definition: it starts sagas and handles the messages of
// its steps.
type Saga struct {
	def    Definition
	c      *client.Client
	ledger Ledger
	log    *slog.Logger
	locks  keyLocks
}

// Option configures a Saga.
type Option func(*Saga)

// WithLogger logs to l; default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(s *Saga) {
		if l != nil {
			s.log = l
		}
	}
}

// New returns a Saga of def publishing with c and recording steps in
// ledger. Every service taking part in the saga makes one with the same
// Definition (the functions of the steps it does not perform may be nil).
func New(c *client.Client, def Definition, ledger Ledger, opts ...Option) (*Saga, error) {
	switch {
	case c == nil || ledger == nil:
		return nil, errors.New("saga: nil client or ledger")
	case def.Name == "" || len(def.Name) > maxIDLen || strings.Contains(def.Name, "/"):
		return nil, fmt.Errorf("saga: invalid name %q", def.Name)
	case len(def.Steps) == 0:
		return nil, fmt.Errorf("saga %s: no steps", def.Name)
	}
	def.Steps = slices.Clone(def.Steps)
	names := map[string]bool{}
	for i, st := range def.Steps {
		if st.Name == "" || st.Topic == "" || names[st.Name] || st.Timeout < 0 || st.Attempts < 0 {
			return nil, fmt.Errorf("saga %s: step %d: need a unique name, a topic, and no negative timeout or attempts", def.Name, i)
		}
		names[st.Name] = true
		if st.Attempts == 0 {
			def.Steps[i].Attempts = 3
		}
	}
	s := &Saga{def: def, c: c, ledger: ledger, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	s.log = s.log.With("saga_def", def.Name)
	return s, nil
}

// Setup creates, where missing, the topics of the steps and of the
// results, and a subscription sub of config cfg on each step topic (its
// Mode is set to queue). Existing ones are left as they are.
func (s *Saga) Setup(ctx context.Context, sub string, topic client.TopicConfig, cfg client.SubscriptionConfig) error {
	cfg.Mode = client.ModeQueue
	done := map[string]bool{}
	for _, st := range s.def.Steps {
		if done[st.Topic] {
			continue
		}
		done[st.Topic] = true
		if _, err := s.c.CreateTopic(ctx, st.Topic, topic); err != nil && !errors.Is(err, client.ErrTopicExists) {
			return fmt.Errorf("saga %s: topic %s: %w", s.def.Name, st.Topic, err)
		}
		if _, err := s.c.CreateSubscription(ctx, st.Topic, sub, cfg); err != nil && !errors.Is(err, client.ErrSubscriptionExists) {
			return fmt.Errorf("saga %s: subscription %s/%s: %w", s.def.Name, st.Topic, sub, err)
		}
	}
	if t := s.def.ResultTopic; t != "" {
		if _, err := s.c.CreateTopic(ctx, t, topic); err != nil && !errors.Is(err, client.ErrTopicExists) {
			return fmt.Errorf("saga %s: topic %s: %w", s.def.Name, t, err)
		}
	}
	return nil
}

// Start starts saga id (unique among the Definition's sagas) with data:
// it publishes the first step's command (and its timeout). Starting the
// same id again within the topic's de-duplication window publishes
// nothing new; after it, the first step's ledger makes it a no-op.
func (s *Saga) Start(ctx context.Context, id string, data []byte) error {
	if id == "" || len(id) > maxIDLen || strings.Contains(id, "/") {
		return fmt.Errorf("saga %s: invalid saga id %q (1–%d bytes, no slash)", s.def.Name, id, maxIDLen)
	}
	return s.publishDo(ctx, envelope{Saga: id, Def: s.def.Name, Step: 0, Data: data})
}

// Handler returns the handler of the saga's messages, for queue
// consumers of the step topics: it performs the commands, compensations
// and timeouts of the steps whose topic the message came from. A message
// that is not one of this Definition's, or arrives on another step's
// topic, is dead-lettered (client.Reject).
func (s *Saga) Handler() client.Handler { return s.handle }

// msgID is the idempotency id of a saga message.
func (s *Saga) msgID(e envelope, kind string) string {
	return fmt.Sprintf("saga/%s/%s/%d/%s", s.def.Name, e.Saga, e.Step, kind)
}

// key is a ledger key of e's step.
func (s *Saga) key(e envelope, what string) string {
	return fmt.Sprintf("%s/%s/%d/%s", s.def.Name, e.Saga, e.Step, what)
}

func (s *Saga) message(e envelope, kind string) (client.Message, error) {
	e.Kind = kind
	v, err := json.Marshal(e)
	if err != nil {
		return client.Message{}, err
	}
	return client.Message{ID: s.msgID(e, kind), Key: []byte(e.Saga), Value: v}, nil
}

// publishDo publishes step e.Step's command, and its timeout if it has one.
func (s *Saga) publishDo(ctx context.Context, e envelope) error {
	st := s.def.Steps[e.Step]
	e.Reason = ""
	do, err := s.message(e, kindDo)
	if err != nil {
		return err
	}
	msgs := []client.Message{do}
	if st.Timeout > 0 {
		to, err := s.message(e, kindTimeout)
		if err != nil {
			return err
		}
		to.Delay = st.Timeout
		msgs = append(msgs, to)
	}
	if _, err := s.c.Publish(ctx, st.Topic, msgs...); err != nil {
		return fmt.Errorf("saga %s %s: publishing step %s: %w", s.def.Name, e.Saga, st.Name, err)
	}
	return nil
}

// next publishes what follows a completed step: the next step's command,
// or the saga's outcome.
func (s *Saga) next(ctx context.Context, e envelope) error {
	if e.Step+1 < len(s.def.Steps) {
		e.Step++
		return s.publishDo(ctx, e)
	}
	return s.outcome(ctx, e, Completed, "")
}

// undo publishes the compensation of step e.Step (none before step 0:
// the saga's outcome instead).
func (s *Saga) undo(ctx context.Context, e envelope, reason string) error {
	if e.Step < 0 {
		return s.outcome(ctx, e, Aborted, reason)
	}
	e.Reason = reason
	m, err := s.message(e, kindUndo)
	if err != nil {
		return err
	}
	if _, err := s.c.Publish(ctx, s.def.Steps[e.Step].Topic, m); err != nil {
		return fmt.Errorf("saga %s %s: publishing the compensation of step %s: %w", s.def.Name, e.Saga, s.def.Steps[e.Step].Name, err)
	}
	return nil
}

func (s *Saga) outcome(ctx context.Context, e envelope, st Status, reason string) error {
	s.log.Info("spool: saga ended", "saga", e.Saga, "status", st, "reason", reason)
	if s.def.ResultTopic == "" {
		return nil
	}
	v, err := json.Marshal(Outcome{Saga: e.Saga, Def: s.def.Name, Status: st, Reason: reason, Data: e.Data})
	if err != nil {
		return err
	}
	id := fmt.Sprintf("saga/%s/%s/outcome", s.def.Name, e.Saga)
	if _, err := s.c.Publish(ctx, s.def.ResultTopic, client.Message{ID: id, Key: []byte(e.Saga), Value: v}); err != nil {
		return fmt.Errorf("saga %s %s: publishing the outcome: %w", s.def.Name, e.Saga, err)
	}
	return nil
}

func (s *Saga) handle(ctx context.Context, m *client.Message) error {
	var e envelope
	if err := json.Unmarshal(m.Value, &e); err != nil {
		return client.Reject(fmt.Errorf("saga %s: not a saga message: %w", s.def.Name, err))
	}
	if e.Def != s.def.Name || e.Step < 0 || e.Step >= len(s.def.Steps) || e.Saga == "" {
		return client.Reject(fmt.Errorf("saga %s: message of saga %q step %d: not one of this definition's", s.def.Name, e.Def, e.Step))
	}
	if st := s.def.Steps[e.Step]; st.Topic != m.Topic {
		return client.Reject(fmt.Errorf("saga %s: step %s's message on topic %s, not %s", s.def.Name, st.Name, m.Topic, st.Topic))
	}
	switch e.Kind {
	case kindDo:
		return s.do(ctx, m, e)
	case kindUndo:
		return s.compensate(ctx, m, e)
	case kindTimeout:
		return s.timeout(ctx, e)
	}
	return client.Reject(fmt.Errorf("saga %s: unknown message kind %q", s.def.Name, e.Kind))
}

// ended encodes how a step ended in the ledger: the kind, and for a
// completed step the data it left.
type ended struct {
	End    string `json:"end"`
	Data   []byte `json:"data,omitempty"`   // endOK: the data the step left
	Reason string `json:"reason,omitempty"` // endFailed: why
}

func (s *Saga) claimEnd(ctx context.Context, e envelope, end ended) (ended, error) {
	v, err := json.Marshal(end)
	if err != nil {
		return ended{}, err
	}
	got, err := s.ledger.Claim(ctx, s.key(e, "end"), string(v))
	if err != nil {
		return ended{}, fmt.Errorf("saga %s %s: ledger: %w", s.def.Name, e.Saga, err)
	}
	var out ended
	if err := json.Unmarshal([]byte(got), &out); err != nil {
		return ended{}, fmt.Errorf("saga %s %s: ledger value %q: %w", s.def.Name, e.Saga, got, err)
	}
	return out, nil
}

// follow publishes what follows a step that ended as end: again, when a
// message of an ended step is delivered again (the first publish may have
// been lost with a crash; topics drop duplicates within their
// de-duplication window, ledgers after it).
func (s *Saga) follow(ctx context.Context, e envelope, end ended) error {
	reason := end.Reason
	switch end.End {
	case endOK:
		e.Data = end.Data
		return s.next(ctx, e)
	case endTimeout:
		reason = fmt.Sprintf("step %s timed out", s.def.Steps[e.Step].Name)
	}
	e.Step--
	return s.undo(ctx, e, reason)
}

// do performs a step's command.
func (s *Saga) do(ctx context.Context, m *client.Message, e envelope) error {
	unlock := s.locks.lock(s.key(e, kindDo))
	defer unlock()
	st := s.def.Steps[e.Step]
	log := s.log.With("saga", e.Saga, "step", st.Name)
	if v, ok, err := s.ledger.Get(ctx, s.key(e, "end")); err != nil {
		return fmt.Errorf("saga %s %s: ledger: %w", s.def.Name, e.Saga, err)
	} else if ok {
		var end ended
		if err := json.Unmarshal([]byte(v), &end); err != nil {
			return fmt.Errorf("saga %s %s: ledger value %q: %w", s.def.Name, e.Saga, v, err)
		}
		log.Debug("spool: saga step already ended; its follow-up published again", "end", end.End)
		return s.follow(ctx, e, end)
	}
	x := &Exec{SagaID: e.Saga, Step: e.Step, Name: st.Name, Key: s.key(e, kindDo), Data: e.Data, Message: m}
	var err error
	if st.Action != nil {
		err = st.Action(ctx, x)
	}
	if err != nil {
		if ctx.Err() != nil || (!permanent(err) && m.DeliveryCount < st.Attempts) {
			return err // nacked: redelivered after the backoff
		}
		log.Warn("spool: saga step failed; compensating", "err", err)
		end, cerr := s.claimEnd(ctx, e, ended{End: endFailed, Reason: fmt.Sprintf("step %s failed: %v", st.Name, err)})
		if cerr != nil {
			return cerr
		}
		return s.follow(ctx, e, end)
	}
	end, err := s.claimEnd(ctx, e, ended{End: endOK, Data: x.Data})
	if err != nil {
		return err
	}
	if end.End == endTimeout {
		// Completed after its timeout compensated the earlier steps: undo
		// it too (the compensation of the step before is then a no-op).
		log.Warn("spool: saga step completed after its timeout; compensating it")
		e.Data = x.Data
		return s.undo(ctx, e, fmt.Sprintf("step %s completed after its timeout", st.Name))
	}
	return s.follow(ctx, e, end)
}

// timeout fails a step that has not ended when its timeout arrives.
func (s *Saga) timeout(ctx context.Context, e envelope) error {
	end, err := s.claimEnd(ctx, e, ended{End: endTimeout})
	if err != nil {
		return err
	}
	if end.End != endTimeout {
		return nil // it ended first; its own follow-up is published
	}
	s.log.Warn("spool: saga step timed out; compensating", "saga", e.Saga, "step", s.def.Steps[e.Step].Name)
	return s.follow(ctx, e, end)
}

// compensate applies a step's compensation once.
func (s *Saga) compensate(ctx context.Context, m *client.Message, e envelope) error {
	key := s.key(e, kindUndo)
	unlock := s.locks.lock(key)
	defer unlock()
	st := s.def.Steps[e.Step]
	prev := e
	prev.Step--
	if _, ok, err := s.ledger.Get(ctx, key); err != nil {
		return fmt.Errorf("saga %s %s: ledger: %w", s.def.Name, e.Saga, err)
	} else if ok {
		return s.undo(ctx, prev, e.Reason)
	}
	if st.Compensate != nil {
		x := &Exec{SagaID: e.Saga, Step: e.Step, Name: st.Name, Key: key, Data: e.Data, Reason: e.Reason, Message: m}
		if err := st.Compensate(ctx, x); err != nil {
			err = fmt.Errorf("saga %s %s: compensating step %s: %w", s.def.Name, e.Saga, st.Name, err)
			if permanent(err) {
				return client.Reject(err)
			}
			return err
		}
	}
	if _, err := s.ledger.Claim(ctx, key, "done"); err != nil {
		return fmt.Errorf("saga %s %s: ledger: %w", s.def.Name, e.Saga, err)
	}
	return s.undo(ctx, prev, e.Reason)
}

// Package queue is the deterministic core of queue-mode subscriptions: for
// one partition of one subscription it decides which messages to deliver,
// tracks leases, acknowledgements, redelivery with exponential backoff and
// jitter, dead-lettering, delays, expiry and key ordering. It does no I/O,
// starts no goroutines and reads no clock: the broker feeds it messages read
// from the log, passes the time to every call, persists what it reports, and
// acts on its effects (delivering, dead-lettering, parking).
//
// # States of an offset
//
// Offsets below the floor are finished (acked, dead-lettered or dropped) or
// parked: held durably by the broker's schedule store until due, and no longer
// tracked here. Offsets between the floor and the cursor are tracked here in
// one of these states:
//
//	ready      can be delivered now (new, or due again)
//	waiting    not before a due time (backoff after a nack or lease expiry, or
//	           a deliver-at delay) that is within the park horizon
//	blocked    key-ordered mode: an earlier message with the same key is not
//	           finished
//	leased     delivered to a member; finished by Ack, Reject or dead-letter;
//	           back to waiting/ready by Nack, lease expiry or member loss
//	done       acked, dead-lettered, dropped or parked (until the floor
//	           passes it); offsets missing from the log count as done
//
// The floor is the lowest offset tracked in [floor, cursor), or the cursor if
// none; it never decreases.
//
// A message whose due time is beyond the park horizon (a long delay or a long
// backoff) is handed to the broker with a Park effect and forgotten; the
// broker gives it back with Unpark when it is nearly due. This keeps memory
// bounded however many delayed messages are pending. A message given back is
// tracked again until it is finished or parked again, whatever its offset,
// but it stays "parked" for the floor and the snapshot: it never holds the
// floor back, and its offset is reported done.
//
// Time is the now passed to each call, in milliseconds; a now earlier than
// one seen before counts as the latest seen. Only Poll and Tick act on what
// fell due (lease expiries, TTLs, waits); a lease ends at its Deadline all
// the same: from then on Ack, Nack, Extend and Reject treat it as stale.
//
// # Persistence
//
// Persistent state is Snapshot(): the floor, the finished offsets above it,
// the delivery counts and first-delivery times of offsets delivered but not
// finished. The broker writes it (or a delta) periodically and at shutdown; a
// crash loses at most what changed since the last write: acked messages may be
// delivered again, and a delivery count may be one lower. Leases are never
// persisted: after a crash every leased message is simply deliverable again.
//
// What the broker owes in return:
//
//   - Write a DeadLetter copy, and a Parked message to the schedule store,
//     before persisting a snapshot taken after the effect: the snapshot
//     counts the offset done.
//   - Keep a schedule-store entry after handing it back with Unpark, until
//     the message is finished (a non-stale Ack or Missing, or a DeadLetter
//     or Dropped effect for it) or parked again (a Parked effect replaces it). After a
//     restart, hand back at once every entry that was handed back before:
//     the snapshot counts it done, so nothing else delivers it. Delivery
//     counts of such messages are in the snapshot and are kept for one park
//     horizon after the restart, to be merged into the Unpark (the larger
//     count wins).
//   - After a restart, read the log (Offer) before handing back parked
//     messages where possible: in key order, a message given back can only
//     wait for earlier messages of its key that are tracked.
package queue

import (
	"math/rand/v2"
	"time"
)

// Jitter is how backoff delays are randomized.
type Jitter int

const (
	// JitterFull draws the delay uniformly from [0, d] ("full jitter").
	JitterFull Jitter = iota
	// JitterEqual draws the delay uniformly from [d/2, d] ("equal jitter").
	JitterEqual
	// JitterNone uses d exactly.
	JitterNone
)

// Backoff is the redelivery delay policy, applied alike to nacks without an
// explicit delay, to lease expiries and to released leases. The n-th
// redelivery (n = 1, 2, …) is delayed by d = min(Initial × Multiplier^(n-1),
// Max), randomized by Jitter; if Delays is set, d = Delays[min(n,
// len(Delays)) - 1] instead. Full and equal jitter never give less than
// min(d, JitterFloor()) (Initial/10, at least 1 ms), so a jittered
// redelivery is never immediate. Delays round up to whole milliseconds.
type Backoff struct {
	Initial    time.Duration // default 1 s; must be > 0
	Max        time.Duration // default 5 min; must be >= Initial
	Multiplier float64       // default 2; must be >= 1
	Jitter     Jitter        // default JitterFull
	Delays     []time.Duration
}

// Ordering is the delivery order policy.
type Ordering int

const (
	// OrderNone: any ready message may be delivered to any member.
	OrderNone Ordering = iota
	// OrderKey: messages with the same key are never leased at the same
	// time and are delivered in offset order; different keys proceed in
	// parallel. A failing key blocks only itself until its head message is
	// acked or dead-lettered. Messages without a key are unordered.
	//
	// A waiting redelivery keeps its place (a keyed message that was
	// delivered is never parked: its wait stays in memory, however long).
	// A deliver-at delay does not: a delayed message joins its key's order
	// when it becomes due, behind a lease of the key if there is one.
	OrderKey
)

// ExpiredAction says what happens to a message whose TTL passed before it
// was acked. A lease is not cut short by the TTL: a leased message expires
// only if its lease ends without an ack (or a reject).
type ExpiredAction int

const (
	ExpireDeadLetter ExpiredAction = iota // dead-letter with reason "expired" (default)
	ExpireDrop                            // drop it (counted)
)

// Config configures a Partition. Zero fields take the defaults.
type Config struct {
	AckTimeout    time.Duration // lease length; default 30 s
	MaxDeliveries int           // dead-letter after this many deliveries; default 5; must be >= 1 (a message restored with as many is dead-lettered when next due)
	Backoff       Backoff
	Ordering      Ordering
	OnExpired     ExpiredAction
	// MaxInFlight bounds the leases of the partition; default 1000.
	MaxInFlight int
	// MaxTracked bounds the offsets tracked between floor and cursor; when
	// reached the partition stops asking for more messages (Want returns
	// 0) until the floor moves or messages finish. Default 100,000.
	MaxTracked int
	// ParkHorizon: a message not due within this much time is parked.
	// Default 1 minute.
	ParkHorizon time.Duration
	// MaxErrorLen bounds the nack error text kept; default 1024 bytes.
	MaxErrorLen int
}

// Msg is a message as the broker reads it from the log.
type Msg struct {
	Offset    int64
	KeyHash   uint64 // hash of the key; 0 and HasKey false for no key
	HasKey    bool
	Timestamp int64 // ms; the publish time
	DeliverAt int64 // ms; 0 (or negative) = deliverable at once
	ExpiresAt int64 // ms; 0 (or negative) = never (the broker computes it from the message's or topic's TTL)
}

// Lease is one delivery of a message to a member.
type Lease struct {
	Offset           int64
	Member           string
	DeliveryCount    int   // this delivery included
	FirstDeliveredAt int64 // ms
	Deadline         int64 // ms; the lease expires then unless extended
}

// Reason is why a message was dead-lettered or dropped.
type Reason string

const (
	ReasonMaxDeliveries Reason = "max-deliveries"
	ReasonRejected      Reason = "rejected"
	ReasonExpired       Reason = "expired"
)

// DeadLetter asks the broker to copy a message to the dead-letter topic
// (exactly once: the offset is finished here when the effect is emitted; the
// broker must write the copy before persisting the snapshot that records it
// finished).
type DeadLetter struct {
	Offset        int64
	Reason        Reason
	DeliveryCount int
	LastError     string // text of the last nack, if any
}

// Parked is a message the broker must keep durably (schedule store) and
// give back with Unpark at Due. Due is the earlier of when it is due and
// when it expires (it is then expired on its return).
type Parked struct {
	Offset           int64
	Due              int64 // ms
	DeliveryCount    int
	FirstDeliveredAt int64
	LastError        string
	KeyHash          uint64
	HasKey           bool
	ExpiresAt        int64
}

// Effects is what a call changed that the broker must act on. Each list is in
// the order things happened; an offset appears in at most one of
// DeadLetters, Dropped and Parked per call.
type Effects struct {
	DeadLetters []DeadLetter
	Dropped     []int64  // expired and dropped (ExpireDrop)
	Parked      []Parked // hand to the schedule store
	Expired     []Lease  // leases that timed out (already rescheduled, dead-lettered or parked here)
}

// Snapshot is the persistent state of a partition. A Partition restored
// from it reads the log again from Floor, skipping the Done ranges, so
// everything that was ready, waiting, blocked or leased becomes deliverable
// again (with its delivery count from Counts).
type Snapshot struct {
	Floor  int64           // every offset below is finished or parked
	Done   [][2]int64      // finished ranges [from, to) above the floor, ascending, disjoint
	Counts map[int64]Count // delivery state of unfinished offsets delivered at least once
}

// Count is the delivery state of a message that was delivered at least once.
type Count struct {
	Deliveries       int
	FirstDeliveredAt int64
	LastError        string
}

// Stats describe the partition for describe output and metrics.
type Stats struct {
	Floor, Cursor   int64
	Ready           int // deliverable now
	Waiting         int // backing off or delayed (in memory)
	Blocked         int // waiting behind their key
	Leased          int
	Done            int   // finished (or parked, or missing from the log) in [floor, cursor)
	InFlightLimited bool  // delivery is held back by MaxInFlight
	TrackedLimited  bool  // reading is held back by MaxTracked
	OldestReady     int64 // ms timestamp of the oldest ready message (given-back parked ones: their Due); 0 if none
}

// Partition is the queue state of one partition of one subscription. It is
// not safe for concurrent use: the broker serializes calls.
//
// The methods below are the contract the broker is written against.
type Partition interface {
	// Want returns how many more messages the partition wants offered
	// (0 when MaxTracked is reached), and the cursor to read from. The
	// cursor skips restored done ranges, so done messages are not read
	// again. n is advisory: Offer takes whatever it is given.
	Want() (n int, cursor int64)
	// Offer adds messages read from the log at the cursor, in offset order;
	// gaps (offsets not offered, e.g. removed by retention) are skipped.
	// Offsets below the cursor, in restored done ranges, or already
	// tracked (given back by Unpark) are ignored. Expired messages are
	// dead-lettered or dropped at once; messages due beyond the park
	// horizon are parked.
	Offer(now time.Time, msgs []Msg) Effects
	// Poll first does what Tick does, then leases up to max ready messages
	// to member (lowest offset first, honouring key order and
	// MaxInFlight); an empty member leases nothing.
	Poll(now time.Time, member string, max int) ([]Lease, Effects)
	// Ack finishes leased messages. Acks of offsets that are not leased by
	// member (unknown, expired, double acks) are reported in stale; they
	// change nothing.
	Ack(now time.Time, member string, offsets []int64) (stale []int64, eff Effects)
	// Nack ends a lease early: the message is redelivered after delay if
	// delay >= 0, else after the backoff; errText is kept for the
	// dead-letter headers (cut to MaxErrorLen). Past MaxDeliveries it is
	// dead-lettered; due beyond the park horizon it is parked (but see
	// OrderKey).
	Nack(now time.Time, member string, offset int64, delay time.Duration, errText string) (bool, Effects)
	// Missing finishes a message leased to member that the broker cannot
	// deliver because it is no longer in the log (retention removed it
	// after it was offered): it is done, as every offset missing from the
	// log is, without an ack (observers hear nothing) and without effects.
	// False, changing nothing, if member holds no live lease on offset.
	Missing(now time.Time, member string, offset int64) bool
	// Extend moves a lease's deadline to now + d (d <= 0: AckTimeout; at
	// most MaxExtend or AckTimeout, whichever is longer).
	Extend(now time.Time, member string, offset int64, d time.Duration) (Lease, bool)
	// Reject dead-letters a leased message at once with ReasonRejected
	// (LastError: errText, or the last nack's if errText is empty).
	Reject(now time.Time, member string, offset int64, errText string) (bool, Effects)
	// Release returns every lease of member (it left or was evicted) as if
	// each were nacked now without a delay (error text "member left"; past
	// MaxDeliveries dead-lettered); they are not reported in Effects.Expired.
	Release(now time.Time, member string) Effects
	// Unpark gives back a parked message that is due (or nearly); it
	// waits until Due if that is later, and is parked again if Due is
	// beyond the horizon. Ignored if the offset is tracked already.
	Unpark(now time.Time, p Parked) Effects
	// Tick expires leases, moves due messages to ready and expires TTLs.
	Tick(now time.Time) Effects
	// NextDeadline returns the earliest time Tick has something to do
	// (O(1); never later than needed).
	NextDeadline() (time.Time, bool)
	// Snapshot returns the persistent state (O(tracked)).
	Snapshot() Snapshot
	// Stats describes the partition (O(ready), for OldestReady).
	Stats(now time.Time) Stats
	// LeaseCounts returns how many leases each member holds, leases past
	// their deadline that no Tick or Poll has expired yet included
	// (O(leased)). The broker uses it to return in-flight slots when it
	// discards the partition (a reset).
	LeaseCounts() map[string]int
	// SetConfig replaces the configuration for every later decision
	// (a subscription's settings changed while it runs). What was decided
	// stands: leases keep their deadlines, waiting and parked messages their
	// due times, expiry times stay. From then on new leases and Extend
	// without a duration use the new AckTimeout; the next lease end (nack,
	// expiry, release) uses the new Backoff and MaxDeliveries, so a message
	// that already had as many deliveries as the new MaxDeliveries is
	// dead-lettered when its lease ends or when it is next due, never
	// leased again; Poll leases only while fewer than the new MaxInFlight
	// are leased (leases beyond it stay until they end); Want asks for
	// nothing while MaxTracked or more are tracked; expiries use the new
	// OnExpired and nack texts the new MaxErrorLen. Ordering and
	// ParkHorizon are fixed at New: a config changing either, or an
	// invalid one, is an error and changes nothing.
	SetConfig(cfg Config) error
	// Observe makes o hear of leases and acks from now on (nil: nobody).
	Observe(o Observer)
	// Limited reports, in O(1), what Stats.InFlightLimited does, and the
	// floor.
	Limited() (inFlightLimited bool, floor int64)
}

// Observer hears what a partition delivers and finishes, for metrics. It
// is called inside Poll and Ack, under the lock the broker serializes
// calls with: it only counts. Times are Unix nanoseconds of the call's
// now; availableMs is when the message became deliverable, in Unix
// milliseconds: its publish time, or its deliver-at when that is later (a
// parked message's due time stands for both).
type Observer interface {
	// Leased: a message was leased; delivery counts this one (1: first).
	Leased(availableMs int64, delivery int, nowNs int64)
	// Acked: a leased message was acknowledged; leasedNs is when its
	// lease began.
	Acked(availableMs, leasedNs, nowNs int64)
}

// New returns a Partition restored from a snapshot (for a new subscription,
// a Snapshot whose Floor is its start offset). rng drives jitter; tests seed
// it.
func New(cfg Config, snap Snapshot, rng *rand.Rand) (Partition, error) {
	return newPartition(cfg, snap, rng)
}

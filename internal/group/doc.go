// Package group is the deterministic core of Spool's stream subscriptions: consumer groups in
// which the broker, not the client, decides which member receives which partition's messages and
// pushes them to that member over its stream.
//
// A Coordinator holds one subscription's members and partition ownership. It starts no
// goroutines, does no I/O and never reads the clock: every call that can change state takes the
// current time, the broker runs it under its own mutex, and the broker acts on the Effects it
// returns (tell member streams about their new assignment, start or stop delivery, close the
// streams of removed members, log the changes).
//
// # Members and sessions
//
// A member joins with Join and stays a member while it heartbeats: its session deadline is the
// time of its last Join or Heartbeat plus its session timeout. Leave removes a member at once;
// a member whose deadline has been reached is evicted. Every state-changing call first applies
// the passage of time (evictions and revocation timeouts up to now), so the state never depends
// on how often the broker calls Tick; Tick exists for when nothing else happens, and
// NextDeadline says when it is next needed.
//
// A member may join with a static instance id. A join that names the instance id of a live
// member replaces that member: the newcomer gets a new member id and inherits its partitions as
// they are, without a rebalance; the old member id becomes unknown.
//
// # Generations and the target assignment
//
// The coordinator computes a target assignment: partitions 0..N-1 spread over the members so
// that counts differ by at most one. It is sticky: a partition stays with its owner (or, while
// it waits for a hand-over, with its target) unless that would unbalance the result; as few
// owned partitions as possible are revoked, a member keeps those it has owned longest, and ties
// are broken by member id, so the result depends only on the calls made. The generation is
// incremented whenever a change of membership or partition count changes the target
// assignment; a commit is accepted only with the current generation.
//
// # Partition states
//
// The target says who should own a partition; the owner is who may deliver it now. They differ
// only while a partition is being handed over, and no partition ever has two owners:
//
//	unassigned ──► owned(A) ──► revoking(A→B) ──► owned(B)
//	                  ▲               │
//	                  └───────────────┘  target moved back to A: revocation cancelled
//
// In detail:
//
//   - unassigned: the group has no members. When a member appears, the partition is granted to
//     its target at once.
//   - owned(A): A delivers the partition and commits its offsets.
//   - revoking(A→B): the target moved to B. A must stop delivery at once, may finish in-flight
//     work and still commit; B does not get the partition yet. The partition is granted to B
//     when A confirms with Revoked, when A leaves or is evicted, or when the revocation timeout
//     passes. If the target moves on to C meanwhile, the partition stays revoking(A→C) with the
//     same deadline.
//
// A partition whose owner leaves or is evicted goes straight to its new target: the owner's
// stream is gone, so there is nobody to wait for.
package group

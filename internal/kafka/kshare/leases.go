package kshare

// What Kafka's acquisition and acknowledgement rules mean for the broker's
// leases (broker.Lease, broker.SettleLeases): the queue semantics — lease
// lengths, delivery counts, backoff, dead letters, the in-flight limit —
// are the broker's; these are Kafka's.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

// Kafka's acknowledge types.
const (
	ackGap     int8 = 0 // no record at the offset (or not wanted): finished, like an accept
	ackAccept  int8 = 1 // processed
	ackRelease int8 = 2 // given back: redelivered after the backoff (a nack)
	ackReject  int8 = 3 // unprocessable: dead-lettered now
	ackRenew   int8 = 4 // extend the lock (v2, IsRenewAck)
)

// Error texts kept for the dead-letter headers of messages a share
// consumer released or rejected.
const (
	releasedText = "released by a share consumer"
	rejectedText = "rejected by a share consumer"
)

// halfInFlightFrom is the smallest in-flight limit of which one
// acquisition takes at most half.
const halfInFlightFrom = 256

// LeaseOptions are the broker options of one partition's acquisition:
// up to maxRecords leases (rounded up to the end of the last stored batch
// read with wholeBatch, Kafka's batch-optimized acquire mode), reading up
// to maxBytes, for lock (0: the subscription's ack timeout), in a
// subscription allowing maxInFlight leases at once.
//
// One acquisition takes at most half the in-flight limit, so that a
// consumer that fetches ahead while it works (as Kafka clients do) finds
// room for its next fetch before its acks arrive, instead of waiting for
// them in a long poll they cannot reach. A small limit (below 256) is a
// deliberate throttle and is used whole.
func LeaseOptions(maxRecords, maxBytes int, lock time.Duration, wholeBatch bool, maxInFlight int) broker.LeaseOptions {
	o := broker.LeaseOptions{MaxRecords: maxRecords, MaxBytes: maxBytes, Lease: lock, WholeBatch: wholeBatch}
	if maxInFlight >= halfInFlightFrom {
		o.Cap = maxInFlight / 2
	}
	return o
}

// AckIn is one partition's acknowledgement batches from a request.
type AckIn struct {
	ID      [16]byte
	P       int32
	Batches []AckBatchIn
}

// AckBatchIn is an acknowledgement batch: offsets First–Last, one type for
// all or one per offset.
type AckBatchIn struct {
	First, Last int64
	Types       []int8
}

// leaseOp is what an acknowledgement type does to a lease; lock is the
// length a RENEW extends it to (0: the subscription's ack timeout).
func leaseOp(first, last int64, typ int8, lock time.Duration) broker.LeaseOp {
	op := broker.LeaseOp{First: first, Last: last}
	switch typ {
	case ackGap, ackAccept:
		op.Action = broker.LeaseAck
	case ackRelease:
		op.Action, op.For, op.Reason = broker.LeaseNack, -1, releasedText
	case ackReject:
		op.Action, op.Reason = broker.LeaseReject, rejectedText
	case ackRenew:
		op.Action, op.For = broker.LeaseExtend, lock
	}
	return op
}

// ApplyAcks validates and applies one partition's acknowledgements by
// member and returns the partition's Kafka error code and message.
func (sg *Groups) ApplyAcks(tn *TopicNames, group, member string, conn uint64, a AckIn, allowRenew bool, lock time.Duration) (int16, string) {
	maxType := ackReject
	if allowRenew {
		maxType = ackRenew
	}
	var ops []broker.LeaseOp
	prevEnd := int64(-1)
	total := int64(0)
	for _, b := range a.Batches {
		n := b.Last - b.First + 1
		if b.First < 0 || b.First > b.Last || b.First <= prevEnd || len(b.Types) == 0 || (len(b.Types) > 1 && int64(len(b.Types)) != n) {
			return kerr.InvalidRequest.Code, "malformed acknowledgement batch"
		}
		if total += n; total > shareMaxAckOffsets {
			return kerr.InvalidRequest.Code, "acknowledgement batches cover too many offsets"
		}
		prevEnd = b.Last
		for _, t := range b.Types {
			if t < 0 || t > maxType {
				if t == ackRenew {
					return kerr.InvalidRequest.Code, "renew acknowledgements need IsRenewAck"
				}
				return kerr.InvalidRequest.Code, "unknown acknowledgement type"
			}
		}
		if len(b.Types) == 1 {
			ops = append(ops, leaseOp(b.First, b.Last, b.Types[0], lock))
			continue
		}
		for i, t := range b.Types { // per-offset types: runs of one action
			off := b.First + int64(i)
			op := leaseOp(off, off, t, lock)
			if k := len(ops); k > 0 && ops[k-1].Last+1 == off && ops[k-1].Action == op.Action {
				ops[k-1].Last = off
				continue
			}
			ops = append(ops, op)
		}
	}
	topic, ok := tn.Name(a.ID)
	if !ok {
		return kerr.UnknownTopicID.Code, ""
	}
	stale, err := sg.b.SettleLeases(topic, group, Holder(member, conn), a.P, ops)
	switch {
	case err == nil && stale > 0:
		return kerr.InvalidRecordState.Code, "some acknowledged records are not acquired by this member (their lock expired, or they were acknowledged already)"
	case err == nil:
		return 0, ""
	case errs.Is(err, errs.TopicNotFound):
		return kerr.UnknownTopicOrPartition.Code, ""
	case errs.Is(err, errs.SubNotFound), errs.Is(err, errs.FailedPrecondition):
		return kerr.InvalidRecordState.Code, "the records are not acquired by this member"
	case errs.Is(err, errs.InvalidArgument):
		return kerr.InvalidRequest.Code, err.Error()
	}
	return kwire.ErrCode(err), err.Error()
}

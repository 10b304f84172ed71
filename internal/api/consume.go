package api

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
)

// Bounds on consume requests (lists are bounded by the codecs).
const (
	maxNackDelay = 30 * 24 * time.Hour // the redelivery delay of a nack
	maxMemberIDs = 1024                // bytes of a client, instance or member id
)

// consume implements ConsumeService.
type consume struct {
	b        *broker.Broker
	max      int64        // concurrent sessions and topic reads allowed
	sessions atomic.Int64 // concurrent sessions and topic reads
}

// acquire takes one of the stream slots that Consume and ReadTopic streams
// share (each holds up to one event of messages in memory), or fails with
// resource_exhausted when none is free.
func (h *consume) acquire() error {
	if h.sessions.Add(1) > h.max {
		h.sessions.Add(-1)
		return toConnect(errs.New(errs.ResourceExhausted, "too many consumer sessions and topic reads (limit %d)", h.max))
	}
	return nil
}

// release gives back a slot taken by acquire.
func (h *consume) release() { h.sessions.Add(-1) }

// Consume joins the subscription named by the first message and then runs
// two loops: this goroutine sends what the session yields (assignments,
// messages as far as credits allow, commit results); a second one applies
// the client's requests. The member leaves when the stream ends.
func (h *consume) Consume(ctx context.Context, stream *connect.BidiStream[spoolv1.ConsumeRequest, spoolv1.ConsumeResponse]) error {
	if err := h.acquire(); err != nil {
		return err
	}
	defer h.release()
	first, err := stream.Receive()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	start := first.GetStart()
	if start == nil {
		return invalid("the first message on a Consume stream must be start")
	}
	timeout, err := dur(start.SessionTimeout)
	if err != nil {
		return err
	}
	if start.Credits < 0 {
		return invalid("credits must not be negative")
	}
	if len(start.ClientId) > maxMemberIDs || len(start.InstanceId) > maxMemberIDs || len(start.MemberId) > maxMemberIDs {
		return invalid("client, instance and member ids are limited to %d bytes", maxMemberIDs)
	}
	sess, err := h.b.Join(broker.JoinRequest{
		Topic:          start.Topic,
		Subscription:   start.Subscription,
		ClientID:       start.ClientId,
		MemberID:       start.MemberId,
		InstanceID:     start.InstanceId,
		SessionTimeout: timeout,
		Credits:        int(start.Credits),
		MaxInFlight:    int(start.MaxInFlight),
	})
	if err != nil {
		return toConnect(err)
	}
	defer sess.Leave()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readDone := make(chan error, 1)
	go func() {
		defer cancel()
		readDone <- h.readLoop(stream, sess)
	}()
	sendErr := h.sendLoop(ctx, stream, sess)
	cancel()
	sess.Leave()
	// The send loop ends when the read loop did (the client closed its side
	// or sent something invalid), or when the session ended: its topic or
	// subscription was deleted, or the server is stopping. Then the client
	// is still waiting for messages and its side stays open, so the handler
	// returns without waiting for the read loop: Connect sends the error
	// and closes the request body, which ends the read loop.
	var readErr error
	select {
	case readErr = <-readDone:
	default:
	}
	switch {
	case readErr != nil && !errors.Is(readErr, io.EOF):
		return readErr
	case sendErr != nil && !errors.Is(sendErr, context.Canceled):
		return toConnect(sendErr)
	}
	return nil
}

// readLoop applies the client's requests until the stream's read side
// ends (io.EOF when the client closed it).
func (h *consume) readLoop(stream *connect.BidiStream[spoolv1.ConsumeRequest, spoolv1.ConsumeResponse], sess *broker.Session) error {
	for {
		req, err := stream.Receive()
		if err != nil {
			return err
		}
		switch k := req.Kind.(type) {
		case *spoolv1.ConsumeRequest_Credits:
			if k.Credits.Messages < 0 {
				return invalid("credits must not be negative")
			}
			sess.AddCredits(int(k.Credits.Messages))
		case *spoolv1.ConsumeRequest_Commit:
			offsets := make(map[int32]int64, len(k.Commit.Offsets))
			for _, po := range k.Commit.Offsets {
				offsets[po.Partition] = po.Offset
			}
			sess.Commit(k.Commit.CommitId, k.Commit.Generation, offsets) // the outcome is sent by the send loop
		case *spoolv1.ConsumeRequest_Revoked:
			if err := sess.Revoked(k.Revoked.Partitions); err != nil {
				return toConnect(err)
			}
		case *spoolv1.ConsumeRequest_Heartbeat:
			sess.Heartbeat()
		case *spoolv1.ConsumeRequest_Ack:
			ranges := make([]broker.OffsetRange, len(k.Ack.Ranges))
			for i, r := range k.Ack.Ranges {
				ranges[i] = broker.OffsetRange{Partition: r.Partition, From: r.From, To: r.To}
			}
			leaseReply(sess, k.Ack.RequestId, sess.Ack(k.Ack.RequestId, ranges))
		case *spoolv1.ConsumeRequest_Nack:
			delay := time.Duration(-1)
			if k.Nack.Delay != nil {
				d, err := dur(k.Nack.Delay)
				if err == nil && (d < 0 || d > maxNackDelay) {
					err = errs.New(errs.InvalidArgument, "nack delay %s is outside [0, %s]", d, maxNackDelay)
				}
				if err != nil {
					leaseReply(sess, k.Nack.RequestId, err)
					continue
				}
				delay = d
			}
			leaseReply(sess, k.Nack.RequestId, sess.Nack(k.Nack.RequestId, k.Nack.Partition, k.Nack.Offset, delay, k.Nack.Error))
		case *spoolv1.ConsumeRequest_Extend:
			d, err := dur(k.Extend.By)
			if err == nil && len(k.Extend.Offsets) > MaxLeaseOffsets {
				err = errs.New(errs.InvalidArgument, "extend covers at most %d offsets", MaxLeaseOffsets)
			}
			if err != nil {
				leaseReply(sess, k.Extend.RequestId, err)
				continue
			}
			leaseReply(sess, k.Extend.RequestId, sess.Extend(k.Extend.RequestId, k.Extend.Partition, k.Extend.Offsets, d))
		case *spoolv1.ConsumeRequest_Reject:
			leaseReply(sess, k.Reject.RequestId, sess.Reject(k.Reject.RequestId, k.Reject.Partition, k.Reject.Offset, k.Reject.Error))
		case *spoolv1.ConsumeRequest_Failed:
			f := k.Failed
			sess.Failed(f.RequestId, f.Partition, f.Offset, int(f.Attempts), f.Error)
		case *spoolv1.ConsumeRequest_Start:
			return invalid("start may only be the first message of a Consume stream")
		default:
			return invalid("empty consume request")
		}
	}
}

// sendLoop sends session events until the session or the context ends.
func (h *consume) sendLoop(ctx context.Context, stream *connect.BidiStream[spoolv1.ConsumeRequest, spoolv1.ConsumeResponse], sess *broker.Session) error {
	for {
		ev, err := sess.Next(ctx)
		if err != nil {
			if errs.Is(err, errs.Canceled) {
				return context.Canceled
			}
			return err
		}
		var resp *spoolv1.ConsumeResponse
		switch {
		case ev.Assignment != nil:
			a := ev.Assignment
			pa := &spoolv1.Assignment{MemberId: a.MemberID, Generation: a.Generation, Revoke: a.Revoke,
				SessionTimeout: durationpb.New(a.SessionTimeout), FromReset: a.Reset, ResetPartitions: a.ResetPartitions}
			if a.Failure.Action != "" {
				pa.FailurePolicy = failurePolicyToProto(a.Failure)
			}
			for _, p := range a.Partitions {
				pa.Partitions = append(pa.Partitions, &spoolv1.PartitionOffset{Partition: p.Partition, Offset: p.Offset})
			}
			resp = &spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_Assignment{Assignment: pa}}
		case ev.Commit != nil:
			cr := &spoolv1.CommitResult{CommitId: ev.Commit.ID}
			if ev.Commit.Err != nil {
				cr.Error, cr.ErrorMessage = errorInfo(ev.Commit.Err)
			}
			resp = &spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_CommitResult{CommitResult: cr}}
		case ev.Lease != nil:
			lr := &spoolv1.LeaseResult{RequestId: ev.Lease.ID}
			if ev.Lease.Err != nil {
				lr.Error, lr.ErrorMessage = errorInfo(ev.Lease.Err)
			}
			for _, st := range ev.Lease.Stale {
				lr.Stale = append(lr.Stale, &spoolv1.PartitionOffset{Partition: st.Partition, Offset: st.Offset})
			}
			resp = &spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_LeaseResult{LeaseResult: lr}}
		case ev.Failed != nil:
			fr := &spoolv1.FailedResult{RequestId: ev.Failed.ID}
			if ev.Failed.Err != nil {
				fr.Error, fr.ErrorMessage = errorInfo(ev.Failed.Err)
			} else {
				fr.Action = failureActionToProto(ev.Failed.Action)
				fr.DeadLetterTopic, fr.DeadLetterOffset = ev.Failed.DeadLetterTopic, ev.Failed.DeadLetterOffset
			}
			resp = &spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_FailedResult{FailedResult: fr}}
		case ev.Heartbeat:
			resp = &spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_Heartbeat{Heartbeat: &spoolv1.Heartbeat{}}}
		default:
			ds := &spoolv1.Deliveries{Messages: deliveriesToProto(ev.Deliveries)}
			for _, n := range ev.Next {
				ds.Next = append(ds.Next, &spoolv1.PartitionOffset{Partition: n.Partition, Offset: n.Offset})
			}
			resp = &spoolv1.ConsumeResponse{Kind: &spoolv1.ConsumeResponse_Deliveries{Deliveries: ds}}
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// leaseReply answers an invalid lease request in-stream; valid ones are
// answered by the session itself.
func leaseReply(sess *broker.Session, id uint64, err error) {
	if err != nil {
		sess.Refuse(id, err)
	}
}

package kafka

// InitProducerId (key 22), v0–v5, for idempotent producers only. A request
// without a transactional id gets a producer id never handed out before
// (ids are reserved in durable blocks: unique across restarts) with epoch
// 0. From v3 a client may name its current producer id and epoch
// (KIP-360): if this broker issued that id, the answer is the same id with
// the epoch bumped (a new id with epoch 0 once the epoch would reach
// MaxInt16); an id it never issued gets a new id. Epochs are not stored:
// the partitions see the new epoch on the producer's next batch and refuse
// older ones from then on (internal/producer). The ids come from the
// producer table the native API's InitProducer draws from too.
//
// A transactional id (non-empty) is refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED: Spool has no transactions, and a
// non-retriable error tells the client at once instead of letting it retry
// a coordinator that will never appear. A storage failure reserving ids is
// COORDINATOR_NOT_AVAILABLE (retriable).

import (
	"context"
	"errors"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kwire"
	"github.com/spoolmq/spool/internal/producer"
)

func (s *Server) initProducerID(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil && *req.TransactionalID != "" {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	}
	if !s.canIdempotentWrite(ctx) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	pt := s.producers
	if req.Version >= 3 && req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < math.MaxInt16-1 {
		ok, err := pt.Issued(req.ProducerID)
		if err != nil {
			s.logger.Warn("reserving producer ids", "err", err)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp, nil
		}
		if ok {
			resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
			return resp, nil
		}
	}
	id, err := pt.NewProducerID()
	if err != nil {
		s.logger.Warn("reserving producer ids", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}

// producerErrCode is the Produce error code of the producer table's
// refusal of an idempotent batch (0 for nil).
func producerErrCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, producer.ErrTransactional):
		return kerr.InvalidTxnState.Code
	case errs.Is(err, errs.DeadlineExceeded), errs.Is(err, errs.Canceled):
		return kerr.RequestTimedOut.Code
	}
	return kwire.AppendErrCode(err)
}

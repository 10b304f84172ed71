package api

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// errNotBatches: the request is not of the batch form; decode it with
// proto.Unmarshal.
var errNotBatches = errors.New("not a batch-form request")

// Field numbers of PublishRequest and PartitionBatch (publish.proto).
const (
	fieldTopic      = 1
	fieldMessages   = 2
	fieldRequestID  = 3
	fieldBatches    = 4
	fieldPartition  = 1
	fieldRecords    = 2
	fieldBrokerTime = 3
)

// decodeBatches decodes a binary PublishRequest of the batch form with its
// records aliasing data (the request's own copy): proto.Unmarshal would
// copy every batch, which is most of the request. A request with messages,
// or one this decoder cannot follow, returns errNotBatches; unknown fields
// are skipped, as proto.Unmarshal skips them.
func decodeBatches(data []byte, req *spoolv1.PublishRequest) error {
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errNotBatches
		}
		b = b[n:]
		switch {
		case num == fieldTopic && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errNotBatches
			}
			req.Topic = string(v)
			b = b[n:]
		case num == fieldRequestID && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errNotBatches
			}
			req.RequestId = v
			b = b[n:]
		case num == fieldBatches && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errNotBatches
			}
			pb, err := decodePartitionBatch(v)
			if err != nil {
				return err
			}
			req.Batches = append(req.Batches, pb)
			b = b[n:]
		case num == fieldMessages:
			return errNotBatches
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errNotBatches
			}
			b = b[n:]
		}
	}
	if len(req.Batches) == 0 {
		return errNotBatches
	}
	return nil
}

func decodePartitionBatch(b []byte) (*spoolv1.PartitionBatch, error) {
	pb := &spoolv1.PartitionBatch{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, errNotBatches
		}
		b = b[n:]
		switch {
		case num == fieldPartition && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, errNotBatches
			}
			pb.Partition = int32(v)
			b = b[n:]
		case num == fieldRecords && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, errNotBatches
			}
			pb.Records = v[:len(v):len(v)]
			b = b[n:]
		case num == fieldBrokerTime && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, errNotBatches
			}
			pb.BrokerTime = protowire.DecodeBool(v)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, errNotBatches
			}
			b = b[n:]
		}
	}
	return pb, nil
}

package api

import (
	"google.golang.org/protobuf/reflect/protoreflect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/catalog"
)

// Bounds on the lists a request may carry. They are checked on the encoded
// request, before it is decoded (see boundedCodec), because decoding
// allocates per element: an 8 MiB body of empty messages is 2.8 million
// of them.
const (
	// MaxPublishMessages bounds the messages of one publish request. The
	// SDK's producer sends at most 1,000 by default and refuses a batch
	// option above this.
	MaxPublishMessages = 10_000
	// MaxMessageHeaders bounds the headers of one published message.
	MaxMessageHeaders = 1_000
	// MaxRequestHeaders bounds the headers of all messages of one publish
	// request together.
	MaxRequestHeaders = 100_000
	// MaxLeaseOffsets bounds the offset ranges of one Ack, the offsets
	// they cover together, and the offsets of one Extend.
	MaxLeaseOffsets = 1 << 16
	// maxBackoffDelays bounds a subscription's explicit backoff delays.
	maxBackoffDelays = 100
	// maxMaskPaths bounds the paths of an update mask.
	maxMaskPaths = 100
	// defaultListCap bounds any repeated field not named in listCaps.
	defaultListCap = 1_000
)

// listCap bounds one repeated field: each list at most each elements, all
// of its lists in one request together at most total (0: no such bound).
type listCap struct{ each, total int }

// listCaps bounds every repeated field of every request message, by the
// field's full name. Commits and revocations name partitions, so they are
// bounded by the number of partitions a topic may have.
var listCaps = map[protoreflect.FullName]listCap{
	"spool.v1.PublishRequest.messages": {each: MaxPublishMessages},
	"spool.v1.TopicConfig.labels":      {each: catalog.MaxLabels},
	"spool.v1.PublishRequest.batches":  {each: catalog.MaxPartitions},
	"spool.v1.Message.headers":         {each: MaxMessageHeaders, total: MaxRequestHeaders},
	"spool.v1.Ack.ranges":              {each: MaxLeaseOffsets},
	"spool.v1.Extend.offsets":          {each: MaxLeaseOffsets},
	"spool.v1.Commit.offsets":          {each: catalog.MaxPartitions},
	"spool.v1.Revoked.partitions":      {each: catalog.MaxPartitions},
	"spool.v1.Backoff.delays":          {each: maxBackoffDelays},
	"google.protobuf.FieldMask.paths":  {each: maxMaskPaths},
	// A partition has at most five replicas; more is refused with a
	// clearer message than the decoder's.
	"spool.v1.ReassignPartitionRequest.replicas": {each: 64},
}

// capOf returns the bound of a repeated field.
func capOf(fd protoreflect.FieldDescriptor) listCap {
	if c, ok := listCaps[fd.FullName()]; ok {
		return c
	}
	return listCap{each: defaultListCap}
}

// What a publish request costs the server, charged against the publish
// budget before it is decoded: per byte as it arrived, per message and per
// header. The bytes are held up to four times — the copy taken from
// Connect's buffer, decoded, encoded into record batches, queued in the
// partition log — and JSON decoding makes more copies on the way
// (strings, base64). Each message costs its decoded proto, the broker's
// copy, partitioning and de-duplication state, its result and its share of
// the reply; each header its decoded proto and the broker's copy.
// TestPublishCost checks these against what requests of every shape
// allocate (empty messages: about 0.7 KiB each in binary and 1.1 KiB in
// JSON; empty headers 0.15 and 0.3 KiB).
const (
	costPerByte     = 4
	costPerJSONByte = 5
	costPerMessage  = 1536
	costPerHeader   = 384
)

// headersField is Message.headers.
var headersField = (*spoolv1.Message)(nil).ProtoReflect().Descriptor().Fields().ByName("headers")

// publishCost is what a publish request of size bytes (as JSON or binary)
// with msgs messages and headers headers is charged against the publish
// budget. One request of at most 8 MiB (MaxPublishMessages messages,
// MaxRequestHeaders headers) costs at most 5 × 8 + 15 + 37.5 MiB.
func publishCost(size int, json bool, msgs, headers int) int64 {
	perByte := int64(costPerByte)
	if json {
		perByte = costPerJSONByte
	}
	return perByte*int64(size) + int64(msgs)*costPerMessage + int64(headers)*costPerHeader
}

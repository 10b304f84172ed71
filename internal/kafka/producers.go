package kafka

import (
	"github.com/spoolmq/spool/internal/batch"
)

// producerTable holds idempotent producers' state (producer id, epoch,
// sequence numbers per partition). See 22_init_producer_id.go.
type producerTable struct{}

// append checks an idempotent producer's batches and queues them.
func (pt *producerTable) append(s *Server, topic string, p int32, h batch.Header, records []byte) (appended, int16) {
	pa, err := s.b.AppendRaw(topic, p, records)
	if err != nil {
		return appended{}, produceErrCode(err)
	}
	return appended{pa: pa}, 0
}

package kwire

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/spoolmq/spool/internal/errs"
)

// Every Spool error code has an explicit Kafka error code.
func TestKafkaCodesComplete(t *testing.T) {
	for _, c := range errs.Codes() {
		k, ok := kafkaCodes[c]
		if !ok {
			t.Errorf("error code %q has no Kafka code in kafkaCodes (errors.go)", c)
			continue
		}
		if kerr.ErrorForCode(k) == nil && k != 0 {
			t.Errorf("error code %q maps to %d, which is not a Kafka error code", c, k)
		}
	}
	if got := ErrCode(errs.New(errs.TopicNotFound, "x")); got != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("ErrCode(topic_not_found) = %d", got)
	}
	if ErrCode(nil) != 0 {
		t.Error("ErrCode(nil) is not 0")
	}
}

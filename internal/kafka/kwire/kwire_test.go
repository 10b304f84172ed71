package kwire

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.uber.org/goleak"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/errs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestUUID(t *testing.T) {
	const id = "54807c9c-f137-4cf8-96df-09913c503bfe"
	b := UUIDBytes(id)
	if b[0] != 0x54 || b[15] != 0xfe || UUIDString(b) != id {
		t.Fatalf("%x %s", b, UUIDString(b))
	}
	if UUIDBytes("not a uuid") != ([16]byte{}) {
		t.Fatal("a bad id parsed")
	}
}

func TestErrCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int16
	}{
		{nil, 0},
		{errs.New(errs.TopicNotFound, "x"), kerr.UnknownTopicOrPartition.Code},
		{fmt.Errorf("plain"), kerr.UnknownServerError.Code},
	} {
		if got := ErrCode(c.err); got != c.want {
			t.Errorf("ErrCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	if got := AppendErrCode(fmt.Errorf("wrapped: %w", batch.ErrInvalidBatch)); got != kerr.CorruptMessage.Code {
		t.Errorf("invalid batch: %d", got)
	}
	if got := AppendErrCode(errs.New(errs.InvalidArgument, "control batch")); got != kerr.InvalidRecord.Code {
		t.Errorf("refused batch: %d", got)
	}
	if got := AppendErrCode(errs.New(errs.StorageFailed, "disk")); got != kerr.KafkaStorageError.Code {
		t.Errorf("storage: %d", got)
	}
}

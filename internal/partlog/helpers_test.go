package partlog

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/internal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// logOpts are small segments, so that tests roll often.
func logOpts() seglog.Options {
	return seglog.Options{
		Replicated:    true,
		SegmentBytes:  seglog.MinSegmentBytes,
		IndexInterval: 256,
		FlushBytes:    2 << 10,
		Limits:        batch.Limits{MaxBatchBytes: 2 << 10, MaxDecompressedBytes: 1 << 20, MaxRecords: 1 << 10, CheckRecords: true},
		Logger:        quiet,
	}
}

// disk is one node's storage: a partition log (on fs) and a state store
// (real Pebble files in dir).
type disk struct {
	fs  vfs.FS
	dir string
	st  *state.Store
	log *seglog.Log
	s   *Storage
}

func openDisk(t *testing.T, fs vfs.FS, dir string) *disk {
	t.Helper()
	d, err := tryOpenDisk(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func tryOpenDisk(fs vfs.FS, dir string) (*disk, error) {
	d := &disk{fs: fs, dir: dir}
	var err error
	if d.st, err = state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet}); err != nil {
		return nil, err
	}
	if d.log, _, err = seglog.Open(fs, filepath.Join(dir, "log"), logOpts()); err != nil {
		d.st.Close()
		return nil, err
	}
	if d.s, err = Open(d.log, d.st, 7); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *disk) close() {
	d.log.Close()
	d.st.Close()
}

// dataBatch builds a one-record batch whose value is tag, with the base
// offset and epoch a leader gives a proposal.
func dataBatch(tag string, offset int64, term uint64) []byte {
	b, err := batch.Encode(nil, batch.Header{BaseTimestamp: 1000, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]batch.Record{{Key: []byte("k"), Value: []byte(tag)}})
	if err != nil {
		panic(err)
	}
	batch.SetBaseOffset(b, offset)
	batch.SetPartitionLeaderEpoch(b, int32(term))
	return b
}

// valueOf returns the value of a one-record batch, or "" if data is not one.
func valueOf(data []byte) string {
	recs, err := batch.Records(data, 1<<20)
	if err != nil || len(recs) != 1 {
		return ""
	}
	return string(recs[0].Value)
}

// offsetAfter returns the offset after the last data batch among ents.
func offsetAfter(ents []*raftpb.Entry) int64 {
	for k := len(ents) - 1; k >= 0; k-- {
		if e := ents[k]; e.GetType() == raftpb.EntryNormal && isDataBatch(e.GetData()) {
			h, _ := batch.ParseHeader(e.GetData())
			return h.LastOffset() + 1
		}
	}
	return 0
}

func seeded(t *testing.T, stream uint64) *rand.Rand {
	seed := rand.Uint64()
	if v := os.Getenv("SPOOL_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SPOOL_SEED: %v", err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d (replay with SPOOL_SEED=%d)", seed, seed)
		}
	})
	return rand.New(rand.NewPCG(seed, stream))
}

func appendMsg(ents []*raftpb.Entry, hs *raftpb.HardState) *raftpb.Message {
	m := &raftpb.Message{Type: raftpb.MsgStorageAppend.Enum(), Entries: ents}
	if hs != nil {
		m.Term, m.Vote, m.Commit = new(hs.GetTerm()), new(hs.GetVote()), new(hs.GetCommit())
	}
	return m
}

func describe(e *raftpb.Entry) string {
	return fmt.Sprintf("{i%d t%d %v %dB}", e.GetIndex(), e.GetTerm(), e.GetType(), len(e.GetData()))
}

type discardLogger struct{}

func (discardLogger) Debug(...any)              {}
func (discardLogger) Debugf(string, ...any)     {}
func (discardLogger) Error(...any)              {}
func (discardLogger) Errorf(string, ...any)     {}
func (discardLogger) Info(...any)               {}
func (discardLogger) Infof(string, ...any)      {}
func (discardLogger) Warning(...any)            {}
func (discardLogger) Warningf(string, ...any)   {}
func (discardLogger) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (discardLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }

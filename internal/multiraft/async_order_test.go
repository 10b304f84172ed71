package multiraft

import (
	"errors"
	"sync"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/spoolmq/spool/internal/peer"
)

// fakeWrite is an asynchronous write completed by the test.
type fakeWrite struct {
	done  chan struct{}
	err   error
	resps []*raftpb.Message
}

func (w *fakeWrite) Done() <-chan struct{}        { return w.done }
func (w *fakeWrite) Wait() error                  { <-w.done; return w.err }
func (w *fakeWrite) Responses() []*raftpb.Message { return w.resps }

type sentLog struct {
	mu   sync.Mutex
	sent []uint64 // the indexes of the append answers sent
}

func (s *sentLog) Send(_ uint64, envs ...peer.Envelope) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range envs {
		s.sent = append(s.sent, e.Msg.GetIndex())
	}
	return true
}

func appResp(index uint64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgAppResp.Enum(), From: new(uint64(1)), To: new(uint64(2)), Index: new(index)}
}

// TestNoAnswersAfterFailedWrite: raft acknowledges entries it already
// holds with its next append, which may carry no entries and complete at
// once. When the write that carried those entries fails (a torn write),
// that acknowledgement must not reach the leader: it would count entries
// this node never made durable, and after a restart this node's log would
// lack what it acknowledged (raft then panics on the leader's commit
// index). The answers of writes that follow a failed one are dropped; in
// order and complete otherwise.
func TestNoAnswersAfterFailedWrite(t *testing.T) {
	for _, fail := range []bool{false, true} {
		log := &sentLog{}
		n := &Node{cfg: Config{ID: 1, Sender: log}, groups: map[uint64]*group{}}
		n.cond = sync.NewCond(&n.mu)
		g := &group{id: 7}
		first := &fakeWrite{done: make(chan struct{}), resps: []*raftpb.Message{appResp(82)}}
		if fail {
			first.err = errors.New("injected: short write")
		}
		closed := make(chan struct{})
		close(closed)
		second := &fakeWrite{done: closed, resps: []*raftpb.Message{appResp(83)}} // no entries: done at once
		n.deliverWhenDurable(g, first)
		n.deliverWhenDurable(g, second)
		close(first.done)
		n.writes.Wait()
		log.mu.Lock()
		sent := log.sent
		log.mu.Unlock()
		switch {
		case fail && (len(sent) != 0 || g.writeErr == nil):
			t.Errorf("after a failed write: sent answers for %v, write error %v; want none sent and the error kept", sent, g.writeErr)
		case !fail && (len(sent) != 2 || sent[0] != 82 || sent[1] != 83 || g.writeErr != nil):
			t.Errorf("after good writes: sent answers for %v (error %v); want 82 then 83", sent, g.writeErr)
		}
	}
}

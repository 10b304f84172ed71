package peer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// snapInbox collects the snapshot frames and connection ends a node saw.
type snapInbox struct {
	mu     sync.Mutex
	chunks []*SnapChunk
	conns  []uint64 // connection numbers the frames came on
	closed []uint64 // connections reported closed
}

func (s *snapInbox) HandleSnapshot(from, conn uint64, c *SnapChunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := *c
	cp.Data = bytes.Clone(c.Data) // it aliases the frame
	s.chunks = append(s.chunks, &cp)
	s.conns = append(s.conns, conn)
}

func (s *snapInbox) ConnClosed(peer, conn uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = append(s.closed, conn)
}

func (s *snapInbox) wait(t *testing.T, n int) []*SnapChunk {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := append([]*SnapChunk(nil), s.chunks...)
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d snapshot frames, want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func snapMsg() *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(3)),
		Snapshot: &raftpb.Snapshot{Data: []byte{0, 0, 0, 0, 0, 0, 0, 9}, Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(77)), Term: new(uint64(2))}}}
}

// TestSnapshotStream: a transfer's frames arrive in order, between the
// messages sent meanwhile, each written before Send returns; the
// receiver's abort notice reaches the sender; a stream fails once its
// connection is gone, and the receiver hears that connection ended.
func TestSnapshotStream(t *testing.T) {
	ts, ins := cluster(t, 2)
	var sn1, sn2 snapInbox
	ts[0].SetSnapshotHandler(&sn1)
	ts[1].SetSnapshotHandler(&sn2)
	waitConnected(t, ts[0], 2)
	waitConnected(t, ts[1], 1)
	s, err := ts[0].SnapshotStream(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := []*SnapChunk{{Kind: SnapBegin, Group: 5, Transfer: 9, Manifest: SnapManifest{Index: 77, Term: 2, Start: 3,
		Segments: []SnapSegment{{Base: 0, Size: 1000}, {Base: 40, Size: 2 << 20}}}}}
	for seq := uint64(1); seq <= 20; seq++ {
		want = append(want, &SnapChunk{Kind: SnapData, Group: 5, Transfer: 9, Seq: seq, Data: bytes.Repeat([]byte{byte(seq)}, 100<<10)})
	}
	want = append(want, &SnapChunk{Kind: SnapEnd, Group: 5, Transfer: 9, Seq: 21, Msg: snapMsg()})
	for k, c := range want {
		if err := s.Send(ctx, c); err != nil {
			t.Fatal(err)
		}
		ts[0].Send(2, Envelope{Group: 5, Msg: msg(uint64(k + 1))})
	}
	got := sn2.wait(t, len(want))
	for k := range want {
		g, w := got[k], want[k]
		if g.Kind != w.Kind || g.Group != w.Group || g.Transfer != w.Transfer || g.Seq != w.Seq || !bytes.Equal(g.Data, w.Data) ||
			!reflect.DeepEqual(g.Manifest, w.Manifest) || !proto.Equal(g.Msg, w.Msg) {
			t.Fatalf("frame %d: got %+v", k, g)
		}
	}
	ins[1].wait(t, 1, len(want))

	sn2.mu.Lock()
	conn := sn2.conns[0]
	sn2.mu.Unlock()
	if !ts[1].SendSnapshotNotice(1, conn, &SnapChunk{Kind: SnapAbort, Group: 5, Transfer: 9, Reason: "no thanks"}) {
		t.Fatal("notice not queued")
	}
	if ts[1].SendSnapshotNotice(1, conn+1, &SnapChunk{Kind: SnapAbort, Group: 5, Transfer: 9}) {
		t.Fatal("notice queued for a connection that is not the current one")
	}
	if got := sn1.wait(t, 1); got[0].Kind != SnapAbort || got[0].Reason != "no thanks" || got[0].Transfer != 9 {
		t.Fatalf("notice: %+v", got[0])
	}

	ts[1].Disconnect(1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Send(ctx, &SnapChunk{Kind: SnapData, Group: 5, Transfer: 9, Seq: 22, Data: []byte{1}})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream still sends after its connection closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		sn2.mu.Lock()
		closed := append([]uint64(nil), sn2.closed...)
		sn2.mu.Unlock()
		if len(closed) > 0 {
			if closed[0] != conn {
				t.Fatalf("connection %d reported closed, frames came on %d", closed[0], conn)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the receiver was not told the connection closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A new stream goes over the new connection (once there is one: the
	// old one may still be reported for a moment after it failed).
	var s2 *SnapshotStream
	for {
		s2, err = ts[0].SnapshotStream(2)
		if err == nil && s2.Send(ctx, &SnapChunk{Kind: SnapAbort, Group: 1, Transfer: 2}) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream over a new connection: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s2.Send(cctx, &SnapChunk{Kind: SnapAbort, Group: 1, Transfer: 2}); !errors.Is(err, context.Canceled) {
		t.Logf("send with a cancelled context: %v", err) // may have been written first
	}
	if _, err := ts[0].SnapshotStream(9); err == nil {
		t.Fatal("stream to an unknown peer")
	}
}

// TestBadSnapshotFrames: a snapshot frame that does not decode closes the
// connection; one that decodes reaches the handler, which judges it.
func TestBadSnapshotFrames(t *testing.T) {
	ln := listen(t)
	in := newInbox()
	var sn snapInbox
	tr, err := New(Config{Cluster: ClusterID{7}, Node: 5, Listener: ln, Peers: map[uint64]string{1: "127.0.0.1:1"}, Handle: in.handle,
		Logger: quiet, MaxFrameBytes: 1 << 20, Snapshots: &sn})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	good, _ := appendSnapFrame(nil, &SnapChunk{Kind: SnapData, Group: 3, Transfer: 4, Seq: 1, Data: []byte("abc")})
	frame := func(payload []byte) []byte {
		f := binary.BigEndian.AppendUint32(nil, uint32(len(payload)+5))
		f = append(f, frameSnapshot)
		f = binary.BigEndian.AppendUint32(f, crc32c(payload))
		return append(f, payload...)
	}
	head := func(kind SnapKind) []byte {
		p := []byte{byte(kind), 3}
		p = binary.BigEndian.AppendUint64(p, 4)
		return append(p, 0)
	}
	countBomb := binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(head(SnapBegin), 5), 1), 0), 1<<40)
	cut := append([]byte(nil), good[:len(good)-1]...)
	cut = frame(cut[frameHeader:])
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 1
	for name, f := range map[string][]byte{
		"crc":        badCRC,
		"count":      frame(countBomb),
		"kind":       frame(head(9)),
		"empty data": frame(head(SnapData)),
		"end":        frame(append(head(SnapEnd), 0xff, 0xff)),
		"no id":      frame([]byte{byte(SnapData), 3, 1, 2}),
		"ack body":   frame(append(head(SnapAck), 1)),
		"trailing":   frame(append(binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(head(SnapBegin), 5), 1), 0), 0), 7)),
	} {
		c := dialRaw(t, ln.Addr().String(), hello{version: version, cluster: ClusterID{7}, from: 1, to: 5})
		if err := readAnswer(c); err != nil {
			t.Fatal(err)
		}
		c.Write(good)
		c.Write(cut) // decodes: a shorter chunk is still a chunk
		c.Write(f)
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("%s: connection still open", name)
		}
	}
	got := sn.wait(t, 16)
	if string(got[0].Data) != "abc" || string(got[1].Data) != "ab" {
		t.Fatalf("frames before the bad ones: %+v %+v", got[0], got[1])
	}
}

func FuzzDecodeSnapChunk(f *testing.F) {
	for _, c := range []*SnapChunk{
		{Kind: SnapBegin, Group: 1, Transfer: 2, Manifest: SnapManifest{Index: 9, Term: 2, Start: 4, Segments: []SnapSegment{{0, 100}, {7, 50}}}},
		{Kind: SnapData, Group: 1, Transfer: 2, Seq: 1, Data: []byte("bytes")},
		{Kind: SnapEnd, Group: 1, Transfer: 2, Seq: 2, Msg: snapMsg()},
		{Kind: SnapAbort, Group: 1, Transfer: 2, Reason: "why"},
		{Kind: SnapAck, Group: 1, Transfer: 2, Seq: 3},
	} {
		b, err := appendSnapFrame(nil, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[frameHeader:])
	}
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := decodeSnapChunk(p)
		if err != nil {
			return
		}
		again, err := appendSnapFrame(nil, c)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", c, err)
		}
		c2, err := decodeSnapChunk(again[frameHeader:])
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if c2.Kind != c.Kind || c2.Group != c.Group || c2.Transfer != c.Transfer || c2.Seq != c.Seq || !bytes.Equal(c2.Data, c.Data) ||
			!reflect.DeepEqual(c2.Manifest, c.Manifest) || c2.Reason != c.Reason || !proto.Equal(c2.Msg, c.Msg) {
			t.Fatalf("round trip changed the frame: %+v → %+v", c, c2)
		}
	})
}

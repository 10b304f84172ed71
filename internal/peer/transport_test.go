package peer

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// inbox collects what a node received.
type inbox struct {
	mu   sync.Mutex
	got  map[uint64][]Envelope // by sender
	cond *sync.Cond
}

func newInbox() *inbox {
	in := &inbox{got: map[uint64][]Envelope{}}
	in.cond = sync.NewCond(&in.mu)
	return in
}

func (in *inbox) handle(from uint64, envs []Envelope) {
	in.mu.Lock()
	in.got[from] = append(in.got[from], envs...)
	in.cond.Broadcast()
	in.mu.Unlock()
}

// wait returns the first n envelopes from a sender, failing after 5 s.
func (in *inbox) wait(t *testing.T, from uint64, n int) []Envelope {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	in.mu.Lock()
	defer in.mu.Unlock()
	for len(in.got[from]) < n {
		if time.Now().After(deadline) {
			t.Fatalf("received %d messages from %d, want %d", len(in.got[from]), from, n)
		}
		in.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		in.mu.Lock()
	}
	return append([]Envelope(nil), in.got[from][:n]...)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// cluster starts n transports of one cluster, all peers of each other.
func cluster(t *testing.T, n int) ([]*Transport, []*inbox) {
	t.Helper()
	lns := make([]net.Listener, n)
	for i := range lns {
		lns[i] = listen(t)
	}
	ts := make([]*Transport, n)
	ins := make([]*inbox, n)
	for i := range ts {
		peers := map[uint64]string{}
		for j, ln := range lns {
			if j != i {
				peers[uint64(j+1)] = ln.Addr().String()
			}
		}
		ins[i] = newInbox()
		tr, err := New(Config{Cluster: ClusterID{1}, Node: uint64(i + 1), Listener: lns[i], Peers: peers, Handle: ins[i].handle, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ts[i] = tr
		t.Cleanup(func() { tr.Close() })
	}
	return ts, ins
}

func waitConnected(t *testing.T, tr *Transport, peers ...uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok := 0
		for _, st := range tr.Status() {
			for _, p := range peers {
				if st.ID == p && st.Connected {
					ok++
				}
			}
		}
		if ok == len(peers) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not connected to %v: %+v", peers, tr.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func msg(i uint64) *raftpb.Message {
	m := new(raftpb.Message)
	m.Type = new(raftpb.MsgApp)
	m.Index = new(i)
	m.Entries = []*raftpb.Entry{{Index: new(i), Term: new(uint64(3)), Data: bytes.Repeat([]byte{byte(i)}, int(i%300))}}
	return m
}

func TestMessagesBothWaysInOrder(t *testing.T) {
	ts, ins := cluster(t, 3)
	waitConnected(t, ts[0], 2, 3)
	waitConnected(t, ts[2], 1, 2)
	const n = 2000
	for i := uint64(1); i <= n; i++ {
		for !ts[0].Send(3, Envelope{Group: i % 7, Msg: msg(i)}) {
			time.Sleep(time.Millisecond) // queue full: raft would send again later
		}
		for !ts[2].Send(1, Envelope{Group: i, Msg: msg(i)}) {
			time.Sleep(time.Millisecond)
		}
	}
	for _, c := range []struct {
		in   *inbox
		from uint64
		grp  func(uint64) uint64
	}{{ins[2], 1, func(i uint64) uint64 { return i % 7 }}, {ins[0], 3, func(i uint64) uint64 { return i }}} {
		got := c.in.wait(t, c.from, n)
		for k, e := range got {
			i := uint64(k + 1)
			if e.Group != c.grp(i) || e.Msg.GetIndex() != i || len(e.Msg.GetEntries()) != 1 ||
				!bytes.Equal(e.Msg.GetEntries()[0].GetData(), bytes.Repeat([]byte{byte(i)}, int(i%300))) {
				t.Fatalf("message %d from %d: group %d index %d", i, c.from, e.Group, e.Msg.GetIndex())
			}
		}
	}
	var frames, msgs int64
	for _, st := range ts[0].Status() {
		if st.ID == 3 {
			frames, msgs = st.SentFrames, st.SentMessages
		}
	}
	if msgs != n || frames > msgs {
		t.Fatalf("sent %d messages in %d frames", msgs, frames)
	}
	t.Logf("%d messages in %d frames", msgs, frames)
}

func TestReconnectAfterPeerRestart(t *testing.T) {
	ln1, ln2 := listen(t), listen(t)
	addr2 := ln2.Addr().String()
	in1, in2 := newInbox(), newInbox()
	t1, err := New(Config{Cluster: ClusterID{9}, Node: 1, Listener: ln1, Peers: map[uint64]string{2: addr2}, Handle: in1.handle, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Close()
	t2, err := New(Config{Cluster: ClusterID{9}, Node: 2, Listener: ln2, Peers: map[uint64]string{1: ln1.Addr().String()}, Handle: in2.handle, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	waitConnected(t, t1, 2)
	t2.Close()
	// Node 2 comes back on the same address.
	ln2b, err := net.Listen("tcp", addr2)
	if err != nil {
		t.Skip("cannot listen on the same port again:", err)
	}
	in2b := newInbox()
	t2b, err := New(Config{Cluster: ClusterID{9}, Node: 2, Listener: ln2b, Peers: map[uint64]string{1: ln1.Addr().String()}, Handle: in2b.handle, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer t2b.Close()
	waitConnected(t, t1, 2)
	waitConnected(t, t2b, 1)
	for !t1.Send(2, Envelope{Group: 5, Msg: msg(42)}) {
		time.Sleep(time.Millisecond)
	}
	if got := in2b.wait(t, 1, 1); got[0].Group != 5 || got[0].Msg.GetIndex() != 42 {
		t.Fatalf("got %+v", got[0])
	}
}

func TestSendToUnconnectedPeerDrops(t *testing.T) {
	ln := listen(t)
	dead := listen(t)
	deadAddr := dead.Addr().String()
	dead.Close()
	tr, err := New(Config{Cluster: ClusterID{1}, Node: 1, Listener: ln, Peers: map[uint64]string{2: deadAddr}, Handle: func(uint64, []Envelope) {}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Send(2, Envelope{Group: 1, Msg: msg(1)}) {
		t.Fatal("a message to an unreachable peer was queued")
	}
	if tr.Send(7, Envelope{Group: 1, Msg: msg(1)}) {
		t.Fatal("a message to an unknown peer was queued")
	}
	if st := tr.Status(); len(st) != 1 || st[0].Dropped != 1 || st[0].Connected {
		t.Fatalf("status %+v", st)
	}
}

// dialRaw opens a raw connection to a transport's listener and sends a
// handshake.
func dialRaw(t *testing.T, addr string, h hello) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(appendHello(nil, h)); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHandshakeRefusals(t *testing.T) {
	ln := listen(t)
	in := newInbox()
	tr, err := New(Config{Cluster: ClusterID{7}, Node: 5, Listener: ln, Peers: map[uint64]string{1: "127.0.0.1:1", 9: "127.0.0.1:1"}, Handle: in.handle, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	addr := ln.Addr().String()
	for name, h := range map[string]hello{
		"other cluster":   {version: version, cluster: ClusterID{8}, from: 1, to: 5},
		"old version":     {version: 0, cluster: ClusterID{7}, from: 1, to: 5},
		"wrong node":      {version: version, cluster: ClusterID{7}, from: 1, to: 6},
		"duplicate id":    {version: version, cluster: ClusterID{7}, from: 5, to: 5},
		"unknown peer":    {version: version, cluster: ClusterID{7}, from: 3, to: 5},
		"higher id dials": {version: version, cluster: ClusterID{7}, from: 9, to: 5},
	} {
		c := dialRaw(t, addr, h)
		if err := readAnswer(c); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// Not a Spool connection at all: closed without an answer.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, helloSize))))
	if n, err := c.Read(make([]byte, 16)); err == nil {
		t.Fatalf("garbage got an answer of %d bytes", n)
	}
}

func TestBadFramesCloseTheConnection(t *testing.T) {
	ln := listen(t)
	in := newInbox()
	tr, err := New(Config{Cluster: ClusterID{7}, Node: 5, Listener: ln, Peers: map[uint64]string{1: "127.0.0.1:1"}, Handle: in.handle, Logger: quiet, MaxFrameBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	good, _ := appendFrame(nil, []Envelope{{Group: 1, Msg: msg(1)}})
	huge := binary.BigEndian.AppendUint32(nil, 1<<31) // bounded before allocation
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	unknownKind := append([]byte(nil), good...)
	unknownKind[4] = 9
	countBomb := appendCountFrame(1 << 40)
	// A frame that is sound (length, kind, checksum) around a message that
	// is not a raft message.
	garbage := appendPayloadFrame(binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(nil, 1), 1), 8), bytes.Repeat([]byte{0xff}, 8)...)
	for name, frame := range map[string][]byte{"huge": huge, "crc": badCRC, "kind": unknownKind, "count": countBomb, "garbage message": garbage} {
		c := dialRaw(t, ln.Addr().String(), hello{version: version, cluster: ClusterID{7}, from: 1, to: 5})
		if err := readAnswer(c); err != nil {
			t.Fatal(err)
		}
		c.Write(good)
		c.Write(frame)
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("%s: connection still open", name)
		}
	}
	// The good frame before each bad one was delivered, five times.
	in.wait(t, 1, 5)
}

// appendCountFrame is a frame whose payload claims count messages.
func appendCountFrame(count uint64) []byte {
	return appendPayloadFrame(binary.AppendUvarint(nil, count))
}

// appendPayloadFrame is a messages frame around the payload given.
func appendPayloadFrame(payload []byte, more ...byte) []byte {
	payload = append(payload, more...)
	f := binary.BigEndian.AppendUint32(nil, uint32(len(payload)+5))
	f = append(f, frameMessages)
	f = binary.BigEndian.AppendUint32(f, crc32c(payload))
	return append(f, payload...)
}

func FuzzDecodeMessages(f *testing.F) {
	good, _ := appendFrame(nil, []Envelope{{Group: 1, Msg: msg(7)}, {Group: 2, Msg: msg(9)}})
	f.Add(good[frameHeader:])
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, p []byte) {
		envs, err := decodeMessages(p)
		if err == nil {
			again, err := appendFrame(nil, envs)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeMessages(again[frameHeader:]); err != nil {
				t.Fatalf("re-encoded frame does not decode: %v", err)
			}
		}
	})
}

func TestKeepAlive(t *testing.T) {
	ts, _ := cluster(t, 2)
	waitConnected(t, ts[0], 2)
	waitConnected(t, ts[1], 1)
	before := ts[1].Status()[0].LastHeard
	time.Sleep(350 * time.Millisecond)
	after := ts[1].Status()[0].LastHeard
	if !after.After(before) || time.Since(after) > 300*time.Millisecond {
		t.Fatalf("node 2 last heard from node 1 at %v (before %v), with nothing to send", after, before)
	}
}

// TestDuplicateNodeRefused: a second process started with the id of a
// node that is connected and alive is refused, with a reason naming the
// duplicate id, and the first keeps its connection; once the first is
// gone, a node with its id (a restart) is taken at once.
func TestDuplicateNodeRefused(t *testing.T) {
	ts, ins := cluster(t, 2)
	waitConnected(t, ts[0], 2)
	addr2 := ts[0].Status()[0].Addr
	var logs strings.Builder
	var logsMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logsMu.Lock()
		defer logsMu.Unlock()
		return logs.Write(p)
	}), nil))
	twin, err := New(Config{Cluster: ClusterID{1}, Node: 1, Listener: listen(t), Peers: map[uint64]string{2: addr2}, Handle: newInbox().handle, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer twin.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		logsMu.Lock()
		got := logs.String()
		logsMu.Unlock()
		if strings.Contains(got, "is another process running with node id 1?") {
			for _, line := range strings.Split(got, "\n") {
				if strings.Contains(line, "another process") {
					t.Logf("the second node 1 logged: %s", line)
					break
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second node 1 was not refused; its log: %s", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := uint64(1); i <= 20; i++ {
		if !ts[0].Send(2, Envelope{Group: 4, Msg: msg(i)}) {
			t.Fatalf("node 1 lost its connection to node 2")
		}
		time.Sleep(20 * time.Millisecond) // across a few of the twin's redials
	}
	ins[1].wait(t, 1, 20)
	if twin.Send(2, Envelope{Group: 4, Msg: msg(99)}) {
		t.Fatal("the second node 1 is connected")
	}
	// The first node 1 stops: the second is taken.
	ts[0].Close()
	waitConnected(t, twin, 2)
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

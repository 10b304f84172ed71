// Package peer carries raft messages between the nodes of a cluster. Each
// pair of nodes shares one TCP connection, dialled by the node with the
// lower id and used in both directions; it opens with a versioned
// handshake that names the cluster and both nodes, and then carries
// frames of batched messages: whatever was queued for a peer while the
// previous frame was being written goes out in the next one, so the
// heartbeats of every group two nodes share travel together. Queues are
// bounded and messages to a peer that is not connected are dropped (raft
// sends again); every length read off the wire is bounded before anything
// is allocated. Formats: docs/format/peer.md.
package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures a Transport.
type Config struct {
	Cluster ClusterID
	Node    uint64 // this node's id, > 0
	// Listener accepts the connections of peers with lower ids; the
	// Transport closes it.
	Listener net.Listener
	// Peers are the other nodes: id → address of their listener.
	Peers map[uint64]string
	// Handle receives each frame's messages, on the goroutine reading
	// that peer's connection, in arrival order. It should not block for
	// long: the peer's next frame waits for it.
	Handle func(from uint64, envs []Envelope)
	// Lost, if set, is told when a peer's connection was closed by the
	// peer (end of stream or reset: its process ended or is stopping),
	// not when this node closed it; on the goroutine that read it.
	Lost   func(id uint64)
	Logger *slog.Logger
	// MaxFrameBytes bounds a frame, in both directions (default 32 MiB);
	// a message larger than that cannot be sent.
	MaxFrameBytes int
	// MaxQueued bounds the messages waiting for one peer (default 4096);
	// beyond it Send drops.
	MaxQueued int
	// DialTimeout bounds a dial and a handshake (default 2 s).
	DialTimeout time.Duration
	// KeepAlive: a connection on which nothing was sent for this long
	// carries an empty frame (default 100 ms), so that a peer hears from
	// this node even when every group they share is quiet.
	KeepAlive time.Duration
	// Snapshots receives snapshot frames (snapshot.go); nil: they are
	// dropped (SetSnapshotHandler may set it later).
	Snapshots SnapshotHandler
	// Dial connects to a peer's listener (with TLS when the cluster
	// speaks it: the listener is then a TLS listener too); nil: TCP.
	// It must complete any handshake within the context.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// epoch is the origin of the transport's times: a time read once, with
// the monotonic clock, so that times kept as durations since it (when a
// peer was last heard) and times rebuilt from them compare by the
// monotonic clock, which a step of the wall clock does not move.
var epoch = time.Now()

// Transport is one node's side of the cluster connections.
type Transport struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	peers map[uint64]*peer

	snaps atomic.Pointer[SnapshotHandler]
}

type peer struct {
	t    *Transport
	id   uint64
	stop chan struct{} // closed when the peer is removed

	mu      sync.Mutex
	addr    string
	conn    net.Conn   // nil: not connected
	connAt  time.Time  // when conn was made
	cur     *connState // conn's, for snapshot streams
	gen     uint64     // connections served so far
	q       []Envelope
	wake    chan struct{}
	removed bool

	lastHeard                      atomic.Int64 // monotonic nanoseconds since epoch (0: never)
	sentFrames, sentMsgs, recvMsgs atomic.Int64
	dropped                        atomic.Int64
}

// New starts a Transport: its accept loop, and a dialler for every peer
// with a higher id.
func New(cfg Config) (*Transport, error) {
	if cfg.Node == 0 {
		return nil, errors.New("peer: node id 0 is reserved")
	}
	if cfg.Listener == nil || cfg.Handle == nil {
		return nil, errors.New("peer: a listener and a handler are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = 32 << 20
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 4096
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 100 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{cfg: cfg, ctx: ctx, cancel: cancel, peers: map[uint64]*peer{}}
	if cfg.Snapshots != nil {
		t.SetSnapshotHandler(cfg.Snapshots)
	}
	if err := t.SetPeers(cfg.Peers); err != nil {
		cancel()
		return nil, err
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// SetPeers makes peers the set of other nodes: new ones are connected,
// missing ones disconnected, changed addresses used from the next dial.
func (t *Transport) SetPeers(peers map[uint64]string) error {
	for id := range peers {
		if id == 0 || id == t.cfg.Node {
			return fmt.Errorf("peer: invalid peer id %d (this node is %d)", id, t.cfg.Node)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		return errors.New("peer: transport closed")
	}
	for id, p := range t.peers {
		if _, ok := peers[id]; !ok {
			p.remove()
			delete(t.peers, id)
		}
	}
	for id, addr := range peers {
		if p, ok := t.peers[id]; ok {
			p.mu.Lock()
			p.addr = addr
			p.mu.Unlock()
			continue
		}
		p := &peer{t: t, id: id, addr: addr, stop: make(chan struct{}), wake: make(chan struct{}, 1)}
		t.peers[id] = p
		if t.cfg.Node < id {
			t.wg.Add(1)
			go p.dialLoop()
		}
	}
	return nil
}

// Send queues envs for peer to; false if they were dropped (the peer is
// unknown or not connected, or its queue is full).
func (t *Transport) Send(to uint64, envs ...Envelope) bool {
	t.mu.Lock()
	p := t.peers[to]
	t.mu.Unlock()
	if p == nil {
		return false
	}
	p.mu.Lock()
	if p.conn == nil || len(p.q)+len(envs) > t.cfg.MaxQueued {
		p.mu.Unlock()
		p.dropped.Add(int64(len(envs)))
		return false
	}
	p.q = append(p.q, envs...)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return true
}

// PeerStatus describes one peer's connection.
type PeerStatus struct {
	ID                                 uint64
	Addr                               string
	Connected                          bool
	LastHeard                          time.Time // zero: never
	SentFrames, SentMessages, Received int64
	Dropped                            int64
}

// Status reports every peer, by id.
func (t *Transport) Status() []PeerStatus {
	t.mu.Lock()
	ps := make([]*peer, 0, len(t.peers))
	for _, p := range t.peers {
		ps = append(ps, p)
	}
	t.mu.Unlock()
	out := make([]PeerStatus, 0, len(ps))
	for _, p := range ps {
		p.mu.Lock()
		st := PeerStatus{ID: p.id, Addr: p.addr, Connected: p.conn != nil}
		p.mu.Unlock()
		if h := p.lastHeard.Load(); h != 0 {
			st.LastHeard = epoch.Add(time.Duration(h))
		}
		st.SentFrames, st.SentMessages = p.sentFrames.Load(), p.sentMsgs.Load()
		st.Received, st.Dropped = p.recvMsgs.Load(), p.dropped.Load()
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Close closes the listener and every connection and waits for the
// transport's goroutines.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.cancel()
	for _, p := range t.peers {
		p.remove()
	}
	t.mu.Unlock()
	err := t.cfg.Listener.Close()
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// remove stops the peer's dialler and closes its connection.
func (p *peer) remove() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return
	}
	p.removed = true
	close(p.stop)
	if p.conn != nil {
		p.conn.Close()
	}
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.cfg.Listener.Accept()
		if err != nil {
			if t.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				t.cfg.Logger.Error("cluster listener failed", "err", err)
			}
			return
		}
		t.wg.Add(1)
		go t.accepted(c)
	}
}

// accepted checks a dialler's handshake and serves the connection.
func (t *Transport) accepted(c net.Conn) {
	defer t.wg.Done()
	c.SetDeadline(time.Now().Add(t.cfg.DialTimeout))
	h, err := readHello(c)
	if err != nil {
		t.cfg.Logger.Warn("cluster connection refused", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	refuse := func(status byte, reason string) {
		c.Write(appendAnswer(nil, status, reason))
		t.cfg.Logger.Warn("cluster connection refused", "remote", c.RemoteAddr().String(), "from", h.from, "reason", reason)
		c.Close()
	}
	t.mu.Lock()
	p := t.peers[h.from]
	t.mu.Unlock()
	switch {
	case h.version != version:
		refuse(statusVersion, fmt.Sprintf("protocol version %d is not supported (this node speaks %d)", h.version, version))
		return
	case h.cluster != t.cfg.Cluster:
		refuse(statusCluster, "the node belongs to another cluster")
		return
	case h.to != t.cfg.Node:
		refuse(statusNode, fmt.Sprintf("this is node %d, not %d", t.cfg.Node, h.to))
		return
	case h.from == t.cfg.Node:
		refuse(statusNode, fmt.Sprintf("duplicate node id %d", h.from))
		return
	case p == nil || h.from > t.cfg.Node:
		refuse(statusUnknownPeer, fmt.Sprintf("node %d is not a peer that dials this node", h.from))
		return
	}
	if from, ago, live := p.live(); live {
		// A node that restarts or redials after a failure finds its old
		// connection gone (closed, or silent for a while); a second
		// process with the same id finds it alive, and must not take it.
		refuse(statusNode, fmt.Sprintf("node %d is already connected, from %s, heard %v ago: is another process running with node id %d?",
			h.from, from, ago.Round(time.Millisecond), h.from))
		return
	}
	if _, err := c.Write(appendAnswer(nil, statusOK, "")); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	p.serve(c)
}

// live reports whether the peer has a connection made or heard on within
// the last ten keepalive intervals (1 s by default), and its remote
// address.
func (p *peer) live() (from string, ago time.Duration, ok bool) {
	p.mu.Lock()
	c, at := p.conn, p.connAt
	p.mu.Unlock()
	if c == nil {
		return "", 0, false
	}
	if h := p.lastHeard.Load(); h != 0 && epoch.Add(time.Duration(h)).After(at) {
		at = epoch.Add(time.Duration(h))
	}
	ago = time.Since(at)
	return c.RemoteAddr().String(), ago, ago < 10*p.t.cfg.KeepAlive
}

// dialLoop keeps a connection to a peer with a higher id open, retrying
// with a growing pause (up to 2 s) while it cannot.
func (p *peer) dialLoop() {
	t := p.t
	defer t.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		p.mu.Lock()
		addr := p.addr
		p.mu.Unlock()
		c, err := p.dial(addr)
		if err == nil {
			backoff = 50 * time.Millisecond
			p.serve(c)
		} else if t.ctx.Err() == nil {
			t.cfg.Logger.Debug("cluster peer unreachable", "peer", p.id, "addr", addr, "err", err)
		}
		select {
		case <-p.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (p *peer) dial(addr string) (net.Conn, error) {
	t := p.t
	var c net.Conn
	var err error
	if t.cfg.Dial != nil {
		ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
		c, err = t.cfg.Dial(ctx, addr)
		cancel()
	} else {
		d := net.Dialer{Timeout: t.cfg.DialTimeout}
		c, err = d.DialContext(t.ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(t.cfg.DialTimeout))
	if _, err := c.Write(appendHello(nil, hello{version: version, cluster: t.cfg.Cluster, from: t.cfg.Node, to: p.id})); err != nil {
		c.Close()
		return nil, err
	}
	if err := readAnswer(c); err != nil {
		c.Close()
		if t.ctx.Err() == nil {
			t.cfg.Logger.Warn("cluster peer refused the connection", "peer", p.id, "addr", addr, "err", err)
		}
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// serve makes c the peer's connection (closing any older one), writes its
// queue to it on a second goroutine and reads frames until it fails.
func (p *peer) serve(c net.Conn) {
	t := p.t
	p.mu.Lock()
	if p.removed {
		p.mu.Unlock()
		c.Close()
		return
	}
	if p.conn != nil {
		p.conn.Close()
	}
	p.gen++
	done := make(chan struct{})
	cs := &connState{gen: p.gen, done: done, snaps: make(chan *snapWrite), notes: make(chan []byte, maxNotes)}
	p.conn, p.cur, p.connAt = c, cs, time.Now()
	p.q = p.q[:0]
	p.mu.Unlock()
	t.wg.Add(1)
	go p.writeLoop(c, cs)
	var buf []byte
	peerClosed := false
	for {
		kind, payload, b, err := readFrame(c, buf, t.cfg.MaxFrameBytes)
		buf = b
		if err == nil {
			p.lastHeard.Store(max(1, int64(time.Since(epoch))))
			err = p.handle(cs, kind, payload)
		}
		if err != nil {
			if t.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				t.cfg.Logger.Info("cluster connection closed", "peer", p.id, "err", err)
				peerClosed = errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
			}
			break
		}
		if cap(buf) > 1<<20 {
			buf = nil // do not keep a large frame's buffer
		}
	}
	// The connection is no longer the peer's before it closes: the peer,
	// seeing it closed, may dial again at once, and must not find it live.
	p.mu.Lock()
	current := p.conn == c
	if current {
		p.conn, p.cur = nil, nil
		p.dropped.Add(int64(len(p.q)))
		p.q = nil
	}
	removed := p.removed
	p.mu.Unlock()
	c.Close()
	close(done)
	if peerClosed && current && !removed && t.cfg.Lost != nil {
		t.cfg.Lost(p.id)
	}
	if h := t.snaps.Load(); h != nil {
		(*h).ConnClosed(p.id, cs.gen)
	}
}

// handle decodes a frame's payload and hands it on; an error closes the
// connection.
func (p *peer) handle(cs *connState, kind byte, payload []byte) error {
	t := p.t
	if kind == frameSnapshot {
		c, err := decodeSnapChunk(payload)
		if err != nil {
			return err
		}
		if h := t.snaps.Load(); h != nil {
			(*h).HandleSnapshot(p.id, cs.gen, c)
		} else {
			t.cfg.Logger.Warn("snapshot frame dropped: this node takes no snapshots", "peer", p.id, "group", c.Group)
		}
		return nil
	}
	envs, err := decodeMessages(payload)
	if err != nil {
		return err
	}
	p.recvMsgs.Add(int64(len(envs)))
	t.cfg.Handle(p.id, envs)
	return nil
}

// writeLoop writes everything queued for the peer to c, one frame per
// turn (or more when a frame would exceed MaxFrameBytes).
func (p *peer) writeLoop(c net.Conn, cs *connState) {
	t := p.t
	defer t.wg.Done()
	var out []byte
	var batch []Envelope
	keep := time.NewTicker(t.cfg.KeepAlive)
	defer keep.Stop()
	wrote := false // a frame went out since the last keepalive tick
	for {
		select {
		case <-cs.done:
			return
		case w := <-cs.snaps:
			ok := p.write(c, w.frame, 0)
			if !ok {
				w.res <- errConnClosed
				return
			}
			w.res <- nil
			wrote = true
			continue
		case f := <-cs.notes:
			if !p.write(c, f, 0) {
				return
			}
			wrote = true
			continue
		case <-keep.C:
			if !wrote {
				if out, _ = appendFrame(out[:0], nil); !p.write(c, out, 0) {
					return
				}
			}
			wrote = false
			continue
		case <-p.wake:
		}
		p.mu.Lock()
		if p.conn != c {
			p.mu.Unlock()
			return
		}
		batch, p.q = p.q, batch[:0]
		p.mu.Unlock()
		for len(batch) > 0 {
			n, err := p.frame(&out, batch)
			if err != nil {
				t.cfg.Logger.Error("cluster message not sent", "peer", p.id, "err", err)
				p.dropped.Add(1)
				batch = batch[1:]
				continue
			}
			if !p.write(c, out, n) {
				return
			}
			wrote = true
			clear(batch[:n])
			batch = batch[n:]
		}
		batch = batch[:0]
		if cap(out) > 1<<20 {
			out = nil
		}
	}
}

// write writes a frame of n messages to c; false (and c closed) if it
// failed.
func (p *peer) write(c net.Conn, frame []byte, n int) bool {
	if _, err := c.Write(frame); err != nil {
		c.Close()
		return false
	}
	p.sentFrames.Add(1)
	p.sentMsgs.Add(int64(n))
	return true
}

// frame encodes as many of envs as fit in one frame into *out and returns
// how many; an error if the first alone does not fit.
func (p *peer) frame(out *[]byte, envs []Envelope) (int, error) {
	max := p.t.cfg.MaxFrameBytes
	n := len(envs)
	for {
		b, err := appendFrame((*out)[:0], envs[:n])
		if err != nil {
			return 0, err
		}
		*out = b
		if len(b)-4 <= max {
			return n, nil
		}
		if n == 1 {
			return 0, fmt.Errorf("peer: a message of %d bytes exceeds the frame limit of %d", len(b), max)
		}
		n /= 2
	}
}

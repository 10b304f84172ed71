package peer

import (
	"context"
	"errors"
	"fmt"
)

// Snapshot transfers share a peer's connection with its messages: their
// frames (snapframe.go) are written by the connection's writer between
// message frames, so heartbeats go on during a long transfer. A sender
// writes through a SnapshotStream, bound to the connection it was opened
// on: each Send waits until its frame is written (one frame in flight per
// stream bounds a transfer's memory), and fails once that connection is
// gone — a transfer never continues on another connection, where the
// receiver would find it cut. The receiving side gets the frames on the
// connection's reader (SnapshotHandler), and is told when the connection
// ends; it answers a transfer with a notice, an ack or an abort
// (SendSnapshotNotice: queued without waiting, dropped if the queue is
// full, so that a reader never waits for its own connection's writer).

// SnapshotHandler receives snapshot frames.
type SnapshotHandler interface {
	// HandleSnapshot takes a snapshot frame from peer from, received on
	// that peer's connection number conn, on the goroutine reading it: it
	// should not block for long (the peer's messages wait), and c.Data is
	// only valid until it returns.
	HandleSnapshot(from, conn uint64, c *SnapChunk)
	// ConnClosed says that connection number conn to peer ended: the
	// transfers received on it are cut.
	ConnClosed(peer, conn uint64)
}

// maxNotes bounds the notices queued on a connection.
const maxNotes = 16

var (
	errConnClosed = errors.New("peer: connection closed")
	// ErrNotConnected is returned for a peer with no connection now.
	ErrNotConnected = errors.New("peer: not connected")
)

// connState is one connection's side of the snapshot streams.
type connState struct {
	gen   uint64
	done  chan struct{}   // closed when the connection ends
	snaps chan *snapWrite // frames of streams, each written then answered
	notes chan []byte     // notices, written when the writer gets to them
}

type snapWrite struct {
	frame []byte
	res   chan error // buffered
}

// SetSnapshotHandler sets the receiver of snapshot frames (Config.Snapshots).
func (t *Transport) SetSnapshotHandler(h SnapshotHandler) { t.snaps.Store(&h) }

// SnapshotStream writes snapshot frames to one peer on one connection.
type SnapshotStream struct {
	t  *Transport
	to uint64
	cs *connState
}

// SnapshotStream returns a stream to peer to on its current connection.
func (t *Transport) SnapshotStream(to uint64) (*SnapshotStream, error) {
	t.mu.Lock()
	p := t.peers[to]
	t.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("peer: node %d is not a peer", to)
	}
	p.mu.Lock()
	cs := p.cur
	p.mu.Unlock()
	if cs == nil {
		return nil, fmt.Errorf("%w: node %d", ErrNotConnected, to)
	}
	return &SnapshotStream{t: t, to: to, cs: cs}, nil
}

// Send writes c and returns once it is written: an error if it could not
// be encoded or exceeds the frame limit, if the stream's connection ended,
// or if ctx ended first.
func (s *SnapshotStream) Send(ctx context.Context, c *SnapChunk) error {
	frame, err := appendSnapFrame(nil, c)
	if err != nil {
		return err
	}
	if len(frame)-4 > s.t.cfg.MaxFrameBytes {
		return fmt.Errorf("peer: a snapshot frame of %d bytes exceeds the frame limit of %d", len(frame), s.t.cfg.MaxFrameBytes)
	}
	w := &snapWrite{frame: frame, res: make(chan error, 1)}
	select {
	case s.cs.snaps <- w:
	case <-s.cs.done:
		return fmt.Errorf("%w: node %d", errConnClosed, s.to)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-w.res:
		return err
	case <-s.cs.done:
		return fmt.Errorf("%w: node %d", errConnClosed, s.to)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendSnapshotNotice queues c (an ack or an abort) for peer to on its connection
// number conn without waiting; false if it was dropped (that connection is
// gone, or too many notices are queued).
func (t *Transport) SendSnapshotNotice(to, conn uint64, c *SnapChunk) bool {
	frame, err := appendSnapFrame(nil, c)
	if err != nil {
		return false
	}
	t.mu.Lock()
	p := t.peers[to]
	t.mu.Unlock()
	if p == nil {
		return false
	}
	p.mu.Lock()
	cs := p.cur
	p.mu.Unlock()
	if cs == nil || cs.gen != conn {
		return false
	}
	select {
	case cs.notes <- frame:
		return true
	default:
		return false
	}
}

// Disconnect closes the current connection to peer id, as a network
// failure would: the lower id dials again.
func (t *Transport) Disconnect(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	t.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close()
	}
}

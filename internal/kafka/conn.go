package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/tlsutil"
)

// conn is one client connection. Requests are answered strictly in order,
// as Kafka clients expect. Consecutive Produce requests are pipelined:
// each is checked and queued in its partition logs as soon as it is read,
// and answered by the connection's writer (pipe.go) once durable, so the
// produces a client has in flight share an fsync instead of each waiting
// for the one before. Any other request waits until every produce before
// it has been answered.
type conn struct {
	s        *Server
	id       uint64 // unique among the server's connections
	nc       net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	clientID string
	// principal is who the connection is: its SASL user, else the subject
	// of its verified TLS client certificate (tlsutil.PrincipalOf); "" for
	// none. Requests are authorized for it (authz.go).
	principal string
	// authCtx is reqCtx's context, made for principal authCtxFor.
	authCtx    context.Context
	authCtxFor string
	// sasl is the SASL exchange under way (17_sasl.go); saslDone: it
	// succeeded. closeAfterWrite ends the connection once the current
	// response is written (a failed authentication).
	sasl            saslState
	saslDone        bool
	closeAfterWrite bool
	onClose         map[string]func() // run when the connection ends, by key (e.g. a share session)
	fwd             *forwardConn      // to the coordinator, for share requests (share_forward.go); nil: none yet
	// lent are read buffers the current request's response refers to,
	// returned to readBufs once it is written (or dropped).
	lent []*[]byte
}

// readBufs recycles the buffers fetches read stored batches into, so that
// a fetch of a megabyte does not allocate, zero and fault in a fresh
// megabyte every time. Buffers larger than maxPooledReadBuf are left to the
// collector.
var readBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledReadBuf = 8 << 20

// borrow returns a read buffer that stays valid until the current
// request's response has been written.
func (c *conn) borrow() *[]byte {
	bp := readBufs.Get().(*[]byte)
	c.lent = append(c.lent, bp)
	return bp
}

// giveBack returns the buffers lent for the request just answered.
func (c *conn) giveBack() {
	for i, bp := range c.lent {
		if cap(*bp) <= maxPooledReadBuf {
			*bp = (*bp)[:0]
			readBufs.Put(bp)
		}
		c.lent[i] = nil
	}
	c.lent = c.lent[:0]
}

// OnClose registers f to run when the connection ends; a second
// registration under the same key replaces the first.
func (c *conn) OnClose(key string, f func()) {
	if c.onClose == nil {
		c.onClose = map[string]func(){}
	}
	c.onClose[key] = f
}

// remoteHost returns the client's IP address (its whole address if that
// does not split); "" without a connection.
func (c *conn) remoteHost() string {
	if c == nil || c.nc == nil {
		return ""
	}
	addr := c.nc.RemoteAddr()
	if addr == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		return host
	}
	return addr.String()
}

// connIDs numbers connections.
var connIDs atomic.Uint64

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{s: s, id: connIDs.Add(1), nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10)}
}

// handshake completes a TLS connection's handshake, bounded in time, and
// takes its principal; false: the handshake failed (logged at debug).
func (c *conn) handshake() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		c.s.logger.Debug("kafka tls handshake failed", "remote", c.nc.RemoteAddr().String(), "err", err)
		return false
	}
	tc.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	c.principal = tlsutil.ConnPrincipal(&cs)
	if c.principal != "" {
		c.s.logger.Debug("kafka connection", "remote", c.nc.RemoteAddr().String(), "principal", c.principal)
	}
	return true
}

// handshakeTimeout bounds a TLS handshake.
const handshakeTimeout = 10 * time.Second

// Principal returns who the connection is: the subject of its verified
// TLS client certificate, "" when it has none.
func (c *conn) Principal() string {
	if c == nil {
		return ""
	}
	return c.principal
}

// ID returns the connection's number, unique in the process (0 for a
// request made without a connection, in tests).
func (c *conn) ID() uint64 {
	if c == nil {
		return 0
	}
	return c.id
}

// errClose asks the loop to close the connection without answering.
var errClose = errors.New("kafka: close connection")

// reqHeader is a request header.
type reqHeader struct {
	key, version int16
	correlation  int32
	clientID     string
	start        time.Time // when the request was read, for Hooks
	charge       int64     // what a Produce holds of the produce budget until answered
}

func (c *conn) serve() {
	var pp *producePipe
	c.s.hooks.Conn(1)
	defer c.s.hooks.Conn(-1)
	if !c.handshake() {
		c.nc.Close()
		return
	}
	defer func() {
		if pp != nil {
			pp.close() // answers what was appended, then stops the writer
		}
		c.nc.Close()
		if c.fwd != nil {
			c.fwd.close()
		}
		for _, f := range c.onClose {
			f()
		}
	}()
	// A panic in a request's handling — a bug, or a library's on input it
	// should have refused — ends this connection, not the process, as
	// net/http does for a request: logged with its stack, answered by
	// closing.
	defer func() {
		if r := recover(); r != nil {
			c.s.logger.Error("kafka: a request panicked; closing its connection", "remote", c.nc.RemoteAddr().String(),
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	for {
		body, h, err := c.readRequest()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) {
				c.s.logger.Debug("kafka connection closed", "remote", c.nc.RemoteAddr().String(), "err", err)
			}
			return
		}
		if c.s.cfg.RequireAuth && c.principal == "" && !saslOpen[h.key] {
			c.s.budget.Release(h.charge)
			// As Kafka does with a request before authentication: the
			// connection is closed without an answer.
			c.s.logger.Debug("kafka request before authentication; closing connection", "remote", c.nc.RemoteAddr().String(),
				"api", kmsg.NameForKey(h.key))
			return
		}
		throttle := c.chargeRequest(h, len(body)) // quota.go
		if h.key == 0 {
			// Produce: queued now, answered by the connection's writer once
			// durable, while the loop reads the next request.
			if pp == nil {
				pp = newProducePipe(c)
			}
			finish, err := c.startProduce(h, body)
			if err != nil {
				c.s.budget.Release(h.charge)
				c.s.logger.Debug("kafka request refused; closing connection", "remote", c.nc.RemoteAddr().String(),
					"api", kmsg.NameForKey(h.key), "version", h.version, "err", err)
				return
			}
			if charge := h.charge; charge > 0 {
				appended := finish
				finish = func() kmsg.Response {
					defer c.s.budget.Release(charge) // durable: the frame and its batches are let go
					return appended()
				}
			}
			if !pp.push(h, c.throttledProduce(finish, throttle)) {
				return // the writer failed: the connection is gone
			}
			c.mute(throttle)
			continue
		}
		if pp != nil && !pp.drain() {
			return
		}
		resp, err := c.handle(h, body)
		if resp == nil || err != nil {
			c.giveBack()
		}
		if err != nil {
			c.s.logger.Debug("kafka request refused; closing connection", "remote", c.nc.RemoteAddr().String(),
				"api", kmsg.NameForKey(h.key), "version", h.version, "err", err)
			return
		}
		throttle = c.throttleResponse(resp, throttle)
		if resp == nil {
			c.s.answered(h, nil)
			c.mute(throttle)
			continue
		}
		err = c.writeResponse(h, resp)
		c.s.answered(h, resp)
		c.giveBack()
		if err != nil || c.closeAfterWrite {
			return
		}
		c.mute(throttle)
	}
}

// startProduce decodes a Produce request and queues its batches; finish
// waits for them and returns the response (nil for acks=0).
func (c *conn) startProduce(h reqHeader, body []byte) (finish func() kmsg.Response, err error) {
	req, _, err := c.decode(h, body)
	if err != nil {
		return nil, err
	}
	return c.s.startProduce(c.reqCtx(), req.(*kmsg.ProduceRequest)), nil
}

// decode notes the request's client id and decodes it.
func (c *conn) decode(h reqHeader, body []byte) (kmsg.Request, apiEntry, error) {
	if h.clientID != "" {
		c.clientID = h.clientID
	}
	return c.s.decode(h, body)
}

// maxPreAuthRequestBytes bounds a request frame before the connection
// authenticated (when authentication is required): ApiVersions and SASL
// messages are a few hundred bytes (Kafka bounds them by
// sasl.server.max.receive.size, 512 KiB).
const maxPreAuthRequestBytes = 64 << 10

// readRequest reads one frame, bounded before allocation, and its header.
// Before a required authentication only the APIs in saslOpen are read, in
// frames of at most maxPreAuthRequestBytes.
func (c *conn) readRequest() ([]byte, reqHeader, error) {
	var h reqHeader
	var sz [4]byte
	if _, err := io.ReadFull(c.r, sz[:]); err != nil {
		return nil, h, err
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	if n < 8 || int(n) > c.s.cfg.MaxRequestBytes {
		return nil, h, fmt.Errorf("kafka: request size %d outside [8, %d]", n, c.s.cfg.MaxRequestBytes)
	}
	// Peek at the API key first: requests other than Produce have a much
	// smaller bound.
	head, err := c.r.Peek(2)
	if err != nil {
		return nil, h, err
	}
	key := int16(binary.BigEndian.Uint16(head))
	if key != 0 && int(n) > c.s.cfg.MaxSmallRequestBytes {
		return nil, h, fmt.Errorf("kafka: %s request of %d bytes exceeds %d", kmsg.NameForKey(key), n, c.s.cfg.MaxSmallRequestBytes)
	}
	if c.s.cfg.RequireAuth && c.principal == "" {
		// Before authentication only ApiVersions and the SASL exchange
		// are served, and their frames are small: anything else is
		// refused before its body is read.
		if !saslOpen[key] {
			return nil, h, fmt.Errorf("kafka: %s request before authentication", kmsg.NameForKey(key))
		}
		if n > maxPreAuthRequestBytes {
			return nil, h, fmt.Errorf("kafka: %s request of %d bytes before authentication exceeds %d", kmsg.NameForKey(key), n, maxPreAuthRequestBytes)
		}
	}
	var charge int64
	if key == 0 {
		// A Produce waits, unread, until the produce budget has room for
		// it: the connections together hold at most the budget.
		if charge, err = c.s.budget.Acquire(c.s.ctx, 2*int64(n)); err != nil {
			return nil, h, err
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.s.budget.Release(charge)
		return nil, h, err
	}
	rest, h, err := parseHeader(body)
	h.start = time.Now()
	if h.key != 0 || err != nil {
		c.s.budget.Release(charge) // the header disagrees with the peek: not a Produce after all
		charge = 0
	}
	h.charge = charge
	return rest, h, err
}

// parseHeader splits a request frame into its header and the rest.
func parseHeader(body []byte) ([]byte, reqHeader, error) {
	var h reqHeader
	if len(body) < 8 {
		return nil, h, errors.New("kafka: truncated request header")
	}
	h.key = int16(binary.BigEndian.Uint16(body[0:]))
	h.version = int16(binary.BigEndian.Uint16(body[2:]))
	h.correlation = int32(binary.BigEndian.Uint32(body[4:]))
	rest := body[8:]
	// Client id: a nullable (non-compact) string in every header version.
	if len(rest) < 2 {
		return nil, h, errors.New("kafka: truncated request header")
	}
	idLen := int16(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if idLen > 0 {
		if int(idLen) > len(rest) {
			return nil, h, errors.New("kafka: client id beyond the request")
		}
		h.clientID = string(rest[:idLen])
		rest = rest[idLen:]
	}
	return rest, h, nil
}

// handle decodes the request and runs its handler.
func (c *conn) handle(h reqHeader, body []byte) (kmsg.Response, error) {
	req, api, err := c.decode(h, body)
	if err != nil || req == nil {
		if errors.Is(err, errUnsupportedApiVersions) {
			return c.s.unsupportedApiVersions(), nil
		}
		return nil, err
	}
	ctx := c.reqCtx()
	if c.s.coordinates() {
		term, ok := c.s.syncGroupsTerm()
		if !ok {
			// Leader of the metadata group, but not yet coordinating: it
			// has not applied its predecessors' entries.
			if resp := groupError(req, kerr.CoordinatorLoadInProgress.Code); resp != nil {
				return resp, nil
			}
		}
		ctx = withGroupsTerm(ctx, term)
	} else {
		if resp := groupError(req, kerr.NotCoordinator.Code); resp != nil {
			return resp, nil
		}
		if isShareData(req) {
			return c.forwardShare(ctx, req), nil
		}
	}
	return api.fn(ctx, c, req)
}

var errUnsupportedApiVersions = errors.New("kafka: unsupported ApiVersions version")

// decode checks the API and version and decodes the request body.
func (s *Server) decode(h reqHeader, body []byte) (kmsg.Request, apiEntry, error) {
	api, ok := s.apis[h.key]
	req := kmsg.RequestForKey(h.key)
	if !ok || req == nil {
		return nil, api, fmt.Errorf("unsupported API key %d", h.key)
	}
	if h.version < api.min || h.version > api.max {
		if h.key == 18 { // ApiVersions: answer with v0 and UNSUPPORTED_VERSION (KIP-511)
			return nil, api, errUnsupportedApiVersions
		}
		return nil, api, fmt.Errorf("unsupported version %d (supported %d–%d)", h.version, api.min, api.max)
	}
	req.SetVersion(h.version)
	if req.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, api, err
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, api, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
	}
	return req, api, nil
}

// skipTags skips a tagged-fields section, checking every size against the
// bytes present.
func skipTags(b []byte) ([]byte, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, err
	}
	if int(n) > len(b) {
		return nil, errors.New("kafka: tag count beyond the request")
	}
	for ; n > 0; n-- {
		if _, b, err = uvarint(b); err != nil {
			return nil, err
		}
		var size uint64
		if size, b, err = uvarint(b); err != nil {
			return nil, err
		}
		if size > uint64(len(b)) {
			return nil, errors.New("kafka: tagged field beyond the request")
		}
		b = b[size:]
	}
	return b, nil
}

func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 || v > 1<<31 {
		return 0, nil, errors.New("kafka: bad varint")
	}
	return v, b[n:], nil
}

// writeResponse frames and writes a response. ApiVersions always uses
// response header v0; other flexible responses have a tag byte.
func (c *conn) writeResponse(h reqHeader, resp kmsg.Response) error {
	bp := respBufs.Get().(*[]byte)
	buf := append((*bp)[:0], 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(buf[4:], uint32(h.correlation))
	if resp.IsFlexible() && h.key != 18 {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	_, err := c.w.Write(buf)
	if err == nil {
		err = c.w.Flush()
	}
	if cap(buf) <= maxPooledRespBuf {
		*bp = buf[:0]
		respBufs.Put(bp)
	}
	return err
}

// respBufs recycles response encoding buffers: a fetch response of a
// megabyte, encoded into a fresh buffer growing from nothing, cost as much
// in allocation, zeroing and copying (and garbage collection, in a process
// its clients may share) as the rest of the fetch. Buffers larger than
// maxPooledRespBuf are left to the collector.
var respBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledRespBuf = 8 << 20

package kafka

// On a cluster, a share group's members, sessions and leases live on the
// node that coordinates groups (coordinator_cluster.go), which leases from
// its replica of every partition; but Kafka clients send ShareFetch and
// ShareAcknowledge to each partition's leader. A node that does not
// coordinate forwards them to the one that does, on a Kafka connection of
// its own per client connection, opened at the first forwarded request and
// closed with the client's connection: the share session the coordinator
// ties to that connection then ends with the client's, as it would on a
// Kafka broker, and a member fetching through three nodes has three
// sessions there (kshare/sessions.go). A request that cannot be forwarded
// (no coordinator known, a connection that failed) is answered with
// COORDINATOR_NOT_AVAILABLE, retriable; the forwarding connection is then
// closed, which closes its session on the coordinator, and the client's
// next request opens a new one (SHARE_SESSION_NOT_FOUND). A forwarded
// request names its client "spool-forwarded:…", and a node never forwards
// such a request again: while two nodes each believe the other coordinates
// (a leader change they have not both seen), they answer
// COORDINATOR_NOT_AVAILABLE instead of forwarding it back and forth.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// forwardedClientID prefixes the client id of forwarded requests.
	forwardedClientID  = "spool-forwarded:"
	forwardDialTimeout = 5 * time.Second
	// forwardSlack is how long past the request's own wait a forwarded
	// request may take.
	forwardSlack = 15 * time.Second
	// forwardMaxResponse bounds a forwarded response beyond the bytes of
	// records it may carry.
	forwardMaxResponse = 1 << 20
)

// forwardConn is a client connection's connection to the coordinator.
type forwardConn struct {
	node int32
	nc   net.Conn
	r    *bufio.Reader
	buf  []byte
	corr int32
}

func (f *forwardConn) close() { f.nc.Close() }

// isShareData reports whether req is served where the share group's
// sessions are: ShareFetch and ShareAcknowledge.
func isShareData(req kmsg.Request) bool {
	switch req.(type) {
	case *kmsg.ShareFetchRequest, *kmsg.ShareAcknowledgeRequest:
		return true
	}
	return false
}

// forwardShare sends a ShareFetch or ShareAcknowledge to the coordinator
// and returns its answer, or a COORDINATOR_NOT_AVAILABLE answer.
func (c *conn) forwardShare(ctx context.Context, req kmsg.Request) kmsg.Response {
	var resp kmsg.Response
	err := errors.New("a forwarded request reached a node that does not coordinate")
	if !strings.HasPrefix(c.clientID, forwardedClientID) {
		if resp, err = c.forward(ctx, req); err == nil {
			return resp
		}
	}
	c.s.logger.Debug("forwarding a share request to the coordinator failed", "api", kmsg.NameForKey(req.Key()), "err", err)
	if c.fwd != nil {
		c.fwd.close()
		c.fwd = nil
	}
	msg := "this node forwards share requests to the group coordinator, which cannot be reached: " + err.Error()
	resp = req.ResponseKind()
	switch r := resp.(type) {
	case *kmsg.ShareFetchResponse:
		r.ErrorCode, r.ErrorMessage = kerr.CoordinatorNotAvailable.Code, &msg
	case *kmsg.ShareAcknowledgeResponse:
		r.ErrorCode, r.ErrorMessage = kerr.CoordinatorNotAvailable.Code, &msg
	}
	return resp
}

func (c *conn) forward(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	id, host, port, ok := c.s.coordinator()
	if !ok {
		return nil, fmt.Errorf("no coordinator known")
	}
	if c.fwd != nil && c.fwd.node != id {
		c.fwd.close() // the coordinator changed: its sessions are gone
		c.fwd = nil
	}
	if c.fwd == nil {
		d := net.Dialer{Timeout: forwardDialTimeout}
		nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
		if err != nil {
			return nil, err
		}
		if tc := c.s.cfg.ForwardTLS; tc != nil {
			tconn := tls.Client(nc, tc(host))
			hctx, cancel := context.WithTimeout(ctx, forwardDialTimeout)
			err := tconn.HandshakeContext(hctx)
			cancel()
			if err != nil {
				nc.Close()
				return nil, err
			}
			nc = tconn
		}
		c.fwd = &forwardConn{node: id, nc: nc, r: bufio.NewReaderSize(nc, 64<<10)}
	}
	f := c.fwd
	wait, limit := time.Duration(0), int64(forwardMaxResponse)
	if r, ok := req.(*kmsg.ShareFetchRequest); ok {
		wait = min(time.Duration(max(r.MaxWaitMillis, 0))*time.Millisecond, maxFetchWait)
		// The coordinator answers up to MaxBytes, but always with a whole
		// batch, which may be larger.
		limit += int64(max(r.MaxBytes, shareDefaultMaxBytes, c.s.b.MaxStorableMessageBytes()))
	}
	// The connection's reads end with the server (Close does not wait out
	// a long poll on the coordinator).
	stop := context.AfterFunc(ctx, f.close)
	defer stop()
	if err := f.nc.SetDeadline(time.Now().Add(wait + forwardSlack)); err != nil {
		return nil, err
	}
	f.corr++
	f.buf = kmsg.NewRequestFormatter(kmsg.FormatterClientID(forwardedClientID+c.clientID)).AppendRequest(f.buf[:0], req, f.corr)
	if _, err := f.nc.Write(f.buf); err != nil {
		return nil, err
	}
	var sz [4]byte
	if _, err := io.ReadFull(f.r, sz[:]); err != nil {
		return nil, err
	}
	n := int64(binary.BigEndian.Uint32(sz[:]))
	if n < 4 || n > limit {
		return nil, fmt.Errorf("coordinator's response of %d bytes outside [4, %d]", n, limit)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(f.r, body); err != nil {
		return nil, err
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != f.corr {
		return nil, fmt.Errorf("coordinator answered request %d, not %d", corr, f.corr)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	body = body[4:]
	if resp.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, err
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode the coordinator's %s: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

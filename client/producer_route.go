package client

// A Producer on a cluster (routing.go): each partition's batches go to the
// partition's leader, over a PublishStream to that node (a conn). The
// leaders come from DescribeTopic when the producer connects and every
// metadataMaxAge, from a node's refusal of a partition it does not lead
// (the refused batch is resent to the leader at once, with the same
// producer id, epoch and sequence), and again from DescribeTopic after a
// stream to a node breaks (the node may be down: its partitions get new
// leaders). A partition's batches are resent in sequence order after a
// refusal as after any retriable failure, so moving to a new leader keeps
// their order. On a single node there is one conn, to the client's
// address, and no partition ever moves.

import (
	"slices"
	"time"
)

// nodeStream is the producer's PublishStream to one node: the home node
// (route "", always sender.conns[0]) or a partition leader's.
type nodeStream struct {
	route       string     // the node's host:port; "": the home node
	stream      *pubStream // nil: not connected
	failures    int        // consecutive stream failures, for reconnect backoff (on conns[0] also the setup's)
	reconnectAt time.Time  // no new stream (on conns[0]: no setup) before this
	parts       int        // partitions routed here
}

// usable reports whether a request may be sent on cn now; if not, wake is
// when its reconnect backoff ends (zero: its receiver will report a
// failed send).
func (cn *nodeStream) usable(now time.Time) (ok bool, wake time.Time) {
	if cn.stream == nil {
		if now.Before(cn.reconnectAt) {
			return false, cn.reconnectAt
		}
		return true, time.Time{}
	}
	return cn.stream.sendErr == nil, time.Time{}
}

// name is the node's address for logs.
func (cn *nodeStream) name() string {
	if cn.route == "" {
		return "(home node)"
	}
	return cn.route
}

// maxConns bounds a producer's streams.
const maxConns = 16

// connOf returns the conn whose current stream is generation gen, or nil.
func (s *sender) connOf(gen uint64) *nodeStream {
	for _, cn := range s.conns {
		if cn.stream != nil && cn.stream.gen == gen {
			return cn
		}
	}
	return nil
}

// connFor returns the conn to route, made if need be (beyond maxConns:
// the client's own, which refuses and names the leader again).
func (s *sender) connFor(route string) *nodeStream {
	for _, cn := range s.conns {
		if cn.route == route {
			return cn
		}
	}
	if len(s.conns) >= maxConns {
		return s.conns[0]
	}
	cn := &nodeStream{route: route}
	s.conns = append(s.conns, cn)
	return cn
}

// inflightOn returns the ids of the requests in flight on cn, in the
// order they were sent.
func (s *sender) inflightOn(cn *nodeStream) []uint64 {
	var ids []uint64
	for id, req := range s.inflight {
		if req.conn == cn {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// move routes q's batches to cn, and closes the stream of the node q
// leaves if nothing else goes there.
func (s *sender) move(q *partQ, cn *nodeStream) {
	old := q.conn
	if old == cn {
		return
	}
	old.parts--
	cn.parts++
	q.conn = cn
	s.dropIfIdle(old)
}

// dropIfIdle closes the stream to a leader's node that no partition goes
// to any more, once nothing is in flight on it.
func (s *sender) dropIfIdle(cn *nodeStream) {
	if cn == s.conns[0] || cn.parts > 0 || len(s.inflightOn(cn)) > 0 {
		return
	}
	s.teardown(cn)
	if i := slices.Index(s.conns, cn); i > 0 {
		s.conns = slices.Delete(s.conns, i, i+1)
	}
}

// follow moves q to the leader a node named when it refused q's batch
// sent on sentOn; it reports whether the batch is to be resent at once:
// q now goes elsewhere (the first refusal of a wave moves q, those of the
// batches in flight beside it find it moved).
func (s *sender) follow(q *partQ, h *leaderHint, sentOn *nodeStream) bool {
	if h == nil || h.topic != s.p.topic || h.partition != q.p || h.node == 0 || h.addr == "" {
		return false
	}
	s.f.cluster = true
	s.move(q, s.connFor(s.p.c.routeOf(h.addr)))
	return q.conn != sentOn
}

// route applies the leaders of a DescribeTopic answer to the partitions
// with nothing in flight (the others follow their batches' answers).
func (s *sender) route(tl *topicLeaders) {
	if !tl.cluster() {
		return
	}
	s.f.cluster = true
	for _, q := range s.f.parts {
		if q.p >= tl.n || !tl.led[q.p] || q.inflight > 0 || q.msgReq {
			continue
		}
		// A leader whose address is not known has route "": the client's
		// own node then names it when it refuses.
		s.move(q, s.connFor(tl.routes[q.p]))
	}
}

// relearn asks again who leads the partitions after cn's stream broke:
// on a cluster the node may be down, and its partitions led elsewhere (the
// next pump reads the metadata). A single node's broken stream asks
// nothing.
func (s *sender) relearn(cn *nodeStream) {
	if s.f.cluster || cn != s.conns[0] {
		s.f.metaAt = time.Time{}
	}
}

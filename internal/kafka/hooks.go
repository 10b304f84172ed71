package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Hooks hear the Kafka front end's requests and connections, for
// metrics; telemetry implements them. Calls must not block.
type Hooks interface {
	// Request: a request of API key was answered d after it was read
	// (a Produce once durable and its response written).
	Request(key int16, d time.Duration)
	// ErrorCode: a response of API key carried a non-zero error code, at
	// its top level or for a topic, partition or group (responseErrors
	// says which responses are read).
	ErrorCode(key, code int16)
	// Conn: a client connection opened (+1) or closed (-1).
	Conn(delta int)
}

type nopHooks struct{}

func (nopHooks) Request(int16, time.Duration) {}
func (nopHooks) ErrorCode(int16, int16)       {}
func (nopHooks) Conn(int)                     {}

// answered reports a request's end and its response's error codes.
func (s *Server) answered(h reqHeader, resp kmsg.Response) {
	if _, nop := s.hooks.(nopHooks); nop {
		return
	}
	s.hooks.Request(h.key, time.Since(h.start))
	if resp != nil {
		responseErrors(resp, func(code int16) { s.hooks.ErrorCode(h.key, code) })
	}
}

// responseErrors calls fn with every non-zero error code of the responses
// clients act on most (produce, fetch, offsets, groups, producer ids,
// topics); other responses' errors are not counted.
func responseErrors(resp kmsg.Response, fn func(int16)) {
	e := func(c int16) {
		if c != 0 {
			fn(c)
		}
	}
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				e(p.ErrorCode)
			}
		}
	case *kmsg.FetchResponse:
		e(r.ErrorCode)
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				e(p.ErrorCode)
			}
		}
	case *kmsg.ListOffsetsResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				e(p.ErrorCode)
			}
		}
	case *kmsg.OffsetCommitResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				e(p.ErrorCode)
			}
		}
	case *kmsg.OffsetFetchResponse:
		e(r.ErrorCode)
		for _, g := range r.Groups {
			e(g.ErrorCode)
		}
	case *kmsg.JoinGroupResponse:
		e(r.ErrorCode)
	case *kmsg.SyncGroupResponse:
		e(r.ErrorCode)
	case *kmsg.HeartbeatResponse:
		e(r.ErrorCode)
	case *kmsg.LeaveGroupResponse:
		e(r.ErrorCode)
	case *kmsg.FindCoordinatorResponse:
		e(r.ErrorCode)
		for _, c := range r.Coordinators {
			e(c.ErrorCode)
		}
	case *kmsg.InitProducerIDResponse:
		e(r.ErrorCode)
	case *kmsg.CreateTopicsResponse:
		for _, t := range r.Topics {
			e(t.ErrorCode)
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range r.Topics {
			e(t.ErrorCode)
		}
	case *kmsg.MetadataResponse:
		for _, t := range r.Topics {
			e(t.ErrorCode)
		}
	case *kmsg.ShareFetchResponse:
		e(r.ErrorCode)
	case *kmsg.ShareAcknowledgeResponse:
		e(r.ErrorCode)
	case *kmsg.ShareGroupHeartbeatResponse:
		e(r.ErrorCode)
	}
}

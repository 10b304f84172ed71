package kafka

// DeleteTopics (key 20), v0–v6. v6 may name topics by id.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

func (s *Server) deleteTopics(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	var names []string
	names = append(names, req.TopicNames...)
	for _, t := range req.Topics {
		switch {
		case t.Topic != nil:
			names = append(names, *t.Topic)
		case t.TopicID != [16]byte{}:
			if tt, ok := s.b.TopicByID(kwire.UUIDString(t.TopicID)); ok {
				names = append(names, tt.Name)
			}
		}
	}
	for _, name := range names {
		st := kmsg.NewDeleteTopicsResponseTopic()
		n := name
		st.Topic = &n
		if !s.can(ctx, acl.Topic, name, acl.Admin) {
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, st)
			continue
		}
		if t, ok := s.b.Topic(name); ok {
			st.TopicID = kwire.UUIDBytes(t.ID)
		}
		if err := s.b.DeleteTopic(name); err != nil {
			st.ErrorCode = kwire.ErrCode(err)
			m := err.Error()
			st.ErrorMessage = &m
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

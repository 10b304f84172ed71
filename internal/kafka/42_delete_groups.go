package kafka

// DeleteGroups (key 42), v0–v3. Deleting a group deletes what Spool keeps
// of it: every subscription named after it, on every topic — stream
// subscriptions (a consumer group's committed offsets, with the Kafka
// commit records) and queue subscriptions (a share group's state) — and
// its group configs. NON_EMPTY_GROUP if the group has Kafka members
// (consumer or share), or native Spool consumers on one of those
// subscriptions (then nothing is deleted); GROUP_ID_NOT_FOUND if there is
// nothing of that name. v3 adds an error message.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/errs"
)

func init() {
	registrations = append(registrations, func(s *Server) { s.register(42, 0, 3, s.deleteGroups) })
}

func (s *Server) deleteGroups(_ context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		var msg string
		rg.ErrorCode, msg = s.deleteGroup(id)
		if rg.ErrorCode != 0 && req.Version >= 3 {
			rg.ErrorMessage = &msg
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

func (s *Server) deleteGroup(id string) (int16, string) {
	existed, code := s.groups.forget(id)
	if code != 0 {
		return code, "the group has members"
	}
	if !validGroupID(id) {
		if existed {
			return 0, ""
		}
		return kerr.GroupIDNotFound.Code, "group " + id + " not found"
	}
	if s.shares.hasMembers(id) {
		return kerr.NonEmptyGroup.Code, "the share group has members"
	}
	n, err := s.b.DeleteGroupSubscriptions(id) // all or nothing
	if err != nil {
		if errs.Is(err, errs.FailedPrecondition) {
			return kerr.NonEmptyGroup.Code, err.Error()
		}
		return groupCommitErrCode(err), err.Error()
	}
	s.gcfgMu.Lock()
	data, err := s.b.GroupConfigData(id)
	if err == nil && data != nil {
		err = s.b.SetGroupConfigData(id, nil)
	}
	s.gcfgMu.Unlock()
	if err != nil {
		return errCode(err), err.Error()
	}
	if existed || n > 0 || data != nil {
		return 0, ""
	}
	return kerr.GroupIDNotFound.Code, "group " + id + " not found"
}

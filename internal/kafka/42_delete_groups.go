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

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
	"github.com/spoolmq/spool/internal/kafka/kwire"
)

func (s *Server) deleteGroups(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		var msg string
		if s.can(ctx, acl.Group, id, acl.Admin) {
			rg.ErrorCode, msg = s.deleteGroup(id)
		} else {
			rg.ErrorCode, msg = kerr.GroupAuthorizationFailed.Code, "not authorized to delete the group"
		}
		if rg.ErrorCode != 0 && req.Version >= 3 {
			rg.ErrorMessage = &msg
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

func (s *Server) deleteGroup(id string) (int16, string) {
	existed, code := s.groups.Forget(id)
	if code != 0 {
		return code, "the group has members"
	}
	if !kgroup.ValidID(id) {
		if existed {
			return 0, ""
		}
		return kerr.GroupIDNotFound.Code, "group " + id + " not found"
	}
	if s.shares.HasMembers(id) {
		return kerr.NonEmptyGroup.Code, "the share group has members"
	}
	n, err := s.b.DeleteSubsNamed(id) // all or nothing
	if err != nil {
		if errs.Is(err, errs.FailedPrecondition) {
			return kerr.NonEmptyGroup.Code, err.Error()
		}
		return groupCommitErrCode(err), err.Error()
	}
	had, err := s.deleteGroupConfigs(id)
	if err != nil {
		return kwire.ErrCode(err), err.Error()
	}
	if existed || n > 0 || had {
		return 0, ""
	}
	return kerr.GroupIDNotFound.Code, "group " + id + " not found"
}

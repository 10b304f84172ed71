package kafka

// DeleteGroups (key 42), v0–v3. Deleting a group deletes its committed
// offsets: every stream subscription named after it (on every topic),
// with the Kafka commit records. NON_EMPTY_GROUP if the group has Kafka
// members, or native Spool consumers on one of those subscriptions;
// GROUP_ID_NOT_FOUND if there is nothing of that name (other kinds of
// groups — share groups — may be deleted by their files through
// groupDeleters first). v3 adds an error message.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/errs"
)

// groupDeleters delete groups of other kinds (share groups): found reports
// whether the group was theirs (then code answers it).
var groupDeleters []func(s *Server, group string) (found bool, code int16)

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
	n := 0
	if validGroupID(id) {
		var err error
		n, err = s.b.DeleteGroupSubscriptions(id)
		if err != nil {
			if errs.Is(err, errs.FailedPrecondition) {
				return kerr.NonEmptyGroup.Code, err.Error()
			}
			return groupCommitErrCode(err), err.Error()
		}
	}
	if existed || n > 0 {
		return 0, ""
	}
	for _, d := range groupDeleters {
		if found, code := d(s, id); found {
			return code, "could not delete group " + id
		}
	}
	return kerr.GroupIDNotFound.Code, "group " + id + " not found"
}

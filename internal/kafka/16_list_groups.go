package kafka

// ListGroups (key 16), v0–v5. Lists the groups the coordinator has (with
// members, or member ids outstanding) and every name of a stream
// subscription — a group's committed offsets — as "Empty" with protocol
// type "consumer", or "Stable" with protocol type "spool" while native
// Spool consumers are connected. v4 filters by state (case-insensitive),
// v5 by type: all of these are "classic" groups. Share groups (type and
// protocol type "share") follow: those with members ("Stable") and every
// other queue subscription name ("Empty"), unless the name is listed
// already.

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
)

func (s *Server) listGroups(ctx context.Context, _ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	var all []kmsg.ListGroupsResponseGroup
	add := func(id, ptype, state, typ string) {
		if !s.can(ctx, acl.Group, id, acl.Describe) {
			return
		}
		g := kmsg.NewListGroupsResponseGroup()
		g.Group, g.ProtocolType, g.GroupState, g.GroupType = id, ptype, state, typ
		all = append(all, g)
	}
	// Broker first: the coordinator's lock is never held across broker calls.
	names := s.b.SubNames()
	seen := map[string]bool{}
	for _, gi := range s.groups.List() {
		seen[gi.ID] = true
		add(gi.ID, gi.ProtocolType, gi.State.String(), "classic")
	}
	for _, n := range names {
		if n.Stream == 0 || seen[n.Name] {
			continue
		}
		if n.Members > 0 {
			add(n.Name, "spool", kgroup.Stable.String(), "classic")
		} else {
			add(n.Name, "consumer", kgroup.Empty.String(), "classic")
		}
	}
	// Share groups: those with members, and every other queue
	// subscription name (the state of a share group without members).
	for _, id := range s.shares.Names() {
		if !seen[id] {
			seen[id] = true
			add(id, "share", "Stable", "share")
		}
	}
	for _, n := range names {
		if n.Queue > 0 && !seen[n.Name] {
			add(n.Name, "share", "Empty", "share")
		}
	}
	match := func(filter []string, v string) bool {
		return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
	}
	for _, g := range all {
		if req.Version >= 4 && !match(req.StatesFilter, g.GroupState) {
			continue
		}
		if req.Version >= 5 && !match(req.TypesFilter, g.GroupType) {
			continue
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}

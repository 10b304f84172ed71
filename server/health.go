package server

import (
	"fmt"
	"strings"

	"github.com/spoolmq/spool/bytesize"
	"github.com/spoolmq/spool/internal/api"
	"github.com/spoolmq/spool/internal/vfs"
)

// problems is the server's readiness check (beside the API's own:
// starting, a cluster's failed partitions): partition logs holding a
// sticky storage error, a state store whose latest write failed, and a
// data directory below its free-space watermark: the broker's free-space
// gate refusing publishes (it holds until the resume threshold), or, where
// the gate is off (a test's file system), statfs now.
func (s *Server) problems() []api.Problem {
	var out []api.Problem
	if names, err := s.broker.FailedLogs(5); err != nil {
		out = append(out, api.Problem{Reason: "storage", Detail: fmt.Sprintf(
			"partition logs refuse writes after a storage error (%s: %v); restart the server on a healthy disk",
			strings.Join(names, ", "), err)})
	}
	if err := s.st.Err(); err != nil {
		out = append(out, api.Problem{Reason: "state_store", Detail: fmt.Sprintf("the state store refuses writes after a failed commit: %v; restart the server on a healthy disk", err)})
	}
	if d := s.broker.Disk(); d.Enabled && d.Full {
		out = append(out, api.Problem{Reason: "disk", Detail: fmt.Sprintf(
			"%s free on the data directory's file system, below storage.min-free-bytes (%s): publishes are refused with disk_full until %s are free",
			bytesize.Size(d.Free), s.cfg.Storage.MinFreeBytes, bytesize.Size(d.ResumeFree))})
	} else if free, ok := vfs.FreeBytes(s.cfg.DataDir); ok && free < uint64(s.cfg.Storage.MinFreeBytes) {
		out = append(out, api.Problem{Reason: "disk", Detail: fmt.Sprintf(
			"%s free on the data directory's file system, below storage.min-free-bytes (%s)",
			bytesize.Size(free), s.cfg.Storage.MinFreeBytes)})
	}
	return out
}

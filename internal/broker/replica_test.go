package broker

import (
	"errors"
	"testing"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
)

// A follower's refusal names the leader for clients (errs.NotLeader), an
// election names none, and a replicated append's own error keeps its code
// through appendError (a leader change is retriable, not internal).
func TestNotLeaderErrors(t *testing.T) {
	err := errNotLeader("t", 1, 2, "127.0.0.1:7075")
	nl := errs.NotLeaderOf(err)
	if !errs.Is(err, errs.Unavailable) || nl == nil || *nl != (errs.NotLeader{Topic: "t", Partition: 1, Node: 2, Addr: "127.0.0.1:7075"}) {
		t.Errorf("%v: %+v", err, nl)
	}
	if nl := errs.NotLeaderOf(errNotLeader("t", 1, 0, "")); nl == nil || nl.Node != 0 {
		t.Errorf("election: %+v", nl)
	}
	if errs.NotLeaderOf(errNotReady("t", 1)) != nil {
		t.Error("a leader that is not ready names a leader")
	}
	changed := errs.New(errs.Unavailable, "the partition changed leader; retry")
	if got := appendError("t", 1, changed); got != error(changed) {
		t.Errorf("appendError(%v) = %v", changed, got)
	}
	if got := appendError("t", 1, seglog.ErrClosed); !errs.Is(got, errs.Unavailable) {
		t.Errorf("a closed log: %v", got)
	}
	if got := appendError("t", 1, errors.New("boom")); !errs.Is(got, errs.Internal) {
		t.Errorf("another error: %v", got)
	}
}

package api

import (
	"errors"
	"testing"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/errs"
)

// Every Spool error code has a Connect code, and a converted error carries
// its code, retriable flag and retry hint in ErrorInfo.
func TestConnectCodesComplete(t *testing.T) {
	for _, c := range errs.Codes() {
		if _, ok := connectCodes[c]; !ok {
			t.Errorf("error code %q has no Connect code in connectCodes (errors.go)", c)
			continue
		}
		var ce *connect.Error
		if !errors.As(toConnect(errs.New(c, "x")), &ce) || ce.Code() != connectCodes[c] {
			t.Errorf("%q converts to %v", c, ce)
			continue
		}
		var info *spoolv1.ErrorInfo
		for _, d := range ce.Details() {
			if v, err := d.Value(); err == nil {
				if i, ok := v.(*spoolv1.ErrorInfo); ok {
					info = i
				}
			}
		}
		if info == nil || info.Code != string(c) || info.Retriable != (&errs.Error{Code: c}).Retriable() {
			t.Errorf("%q: ErrorInfo %v", c, info)
		}
	}
}

// A cluster node's refusal of a partition it does not lead names the
// leader in ErrorInfo.not_leader, also when wrapped; other errors do not.
func TestErrorInfoNotLeader(t *testing.T) {
	e := errs.New(errs.Unavailable, "this node does not lead partition t/2")
	e.NotLeader = &errs.NotLeader{Topic: "t", Partition: 2, Node: 3, Addr: "127.0.0.1:7075"}
	wrapped := errs.Wrap(errs.Unavailable, e, "publish")
	for _, err := range []error{e, wrapped} {
		info, msg := errorInfo(err)
		nl := info.GetNotLeader()
		if nl.GetTopic() != "t" || nl.GetPartition() != 2 || nl.GetLeader() != 3 || nl.GetLeaderAddr() != "127.0.0.1:7075" ||
			info.GetCode() != string(errs.Unavailable) || !info.GetRetriable() || msg != err.Error() {
			t.Errorf("%v: %v %q", err, info, msg)
		}
	}
	if info, _ := errorInfo(errs.New(errs.Unavailable, "x")); info.GetNotLeader() != nil {
		t.Errorf("not_leader without a leader: %v", info)
	}
}

// A cluster node's refusal of a subscription operation names the
// coordinator in ErrorInfo.not_coordinator, also when wrapped, and during
// an election (coordinator 0).
func TestErrorInfoNotCoordinator(t *testing.T) {
	for _, nc := range []errs.NotCoordinator{{Node: 2, Addr: "127.0.0.1:7075"}, {}} {
		e := errs.New(errs.Unavailable, "this node does not coordinate subscriptions")
		e.NotCoordinator = &nc
		for _, err := range []error{e, errs.Wrap(errs.Unavailable, e, "consume")} {
			info, _ := errorInfo(err)
			got := info.GetNotCoordinator()
			if got == nil || got.GetCoordinator() != nc.Node || got.GetCoordinatorAddr() != nc.Addr || !info.GetRetriable() {
				t.Errorf("%v: %v", err, info)
			}
		}
	}
	if info, _ := errorInfo(errs.New(errs.Unavailable, "x")); info.GetNotCoordinator() != nil {
		t.Errorf("not_coordinator without a coordinator: %v", info)
	}
}

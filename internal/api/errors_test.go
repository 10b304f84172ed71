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

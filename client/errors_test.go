package client

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

func TestConvertErrorWithErrorInfo(t *testing.T) {
	in := spoolErr(connect.CodeResourceExhausted, &spoolv1.ErrorInfo{
		Code: CodeTopicFull, Retriable: true, RetryAfter: durationpb.New(250 * time.Millisecond),
	}, "topic orders is full")
	err := convertError(in)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("not an *Error: %T", err)
	}
	if e.Code != CodeTopicFull || !e.Retriable || e.RetryAfter != 250*time.Millisecond || e.Message != "topic orders is full" {
		t.Fatalf("got %+v", e)
	}
	if !errors.Is(err, ErrTopicFull) || errors.Is(err, ErrTopicNotFound) {
		t.Fatal("sentinel matching is wrong")
	}
	if !IsRetriable(err) {
		t.Fatal("IsRetriable = false")
	}
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted {
		t.Fatal("the Connect error is not reachable through Unwrap")
	}
	if got, want := err.Error(), "client: topic_full: topic orders is full"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestConvertErrorWithoutErrorInfo(t *testing.T) {
	for _, tc := range []struct {
		in        error
		code      string
		retriable bool
		sentinel  error
	}{
		{connect.NewError(connect.CodeUnavailable, errors.New("dial tcp: refused")), CodeUnavailable, true, ErrUnavailable},
		{connect.NewError(connect.CodeInvalidArgument, errors.New("bad")), CodeInvalidArgument, false, ErrInvalidArgument},
		{connect.NewError(connect.CodeInternal, errors.New("boom")), "internal", false, nil},
	} {
		err := convertError(tc.in)
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || e.Retriable != tc.retriable {
			t.Errorf("%v: got %+v", tc.in, err)
		}
		if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
			t.Errorf("%v: does not match %v", tc.in, tc.sentinel)
		}
	}
	ctxErr := convertError(connect.NewError(connect.CodeCanceled, context.Canceled))
	if !errors.Is(ctxErr, context.Canceled) {
		t.Errorf("context.Canceled lost: %v", ctxErr)
	}
	if convertError(nil) != nil {
		t.Error("nil not preserved")
	}
	if convertError(io.EOF) != io.EOF {
		t.Error("non-Connect errors must pass unchanged")
	}
	if IsRetriable(nil) || IsRetriable(io.EOF) {
		t.Error("IsRetriable of a non-Spool error")
	}
}

func TestStreamRetriable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.ErrUnexpectedEOF, true},
		{convertError(connect.NewError(connect.CodeUnavailable, errors.New("x"))), true},
		{convertError(connect.NewError(connect.CodeInternal, errors.New("x"))), true},
		{convertError(connect.NewError(connect.CodeUnimplemented, errors.New("x"))), false},
		{convertError(spoolErr(connect.CodeNotFound, &spoolv1.ErrorInfo{Code: CodeTopicNotFound}, "x")), false},
		{convertError(spoolErr(connect.CodeFailedPrecondition, &spoolv1.ErrorInfo{Code: CodeStaleGeneration, Retriable: true}, "x")), true},
		{errorFromInfo(&spoolv1.ErrorInfo{Code: CodeInvalidArgument}, "x"), false},
	} {
		if got := streamRetriable(tc.err); got != tc.want {
			t.Errorf("streamRetriable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestErrorDetailsOverTheWire checks that the ErrorInfo detail survives a
// real Connect round trip, and admin calls map it.
func TestErrorDetailsOverTheWire(t *testing.T) {
	c := serve(t, nil, nil)
	_, err := c.DescribeTopic(context.Background(), "nope")
	if !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("DescribeTopic: %v", err)
	}
	if IsRetriable(err) {
		t.Fatal("topic_not_found must not be retriable")
	}
	var e *Error
	if !errors.As(err, &e) || e.Message != "topic nope does not exist" {
		t.Fatalf("got %#v", err)
	}
}

func TestBackoffDelay(t *testing.T) {
	b := backoff{min: 10 * time.Millisecond, max: 80 * time.Millisecond}
	for attempt, cap := range map[int]time.Duration{1: 10, 2: 20, 3: 40, 4: 80, 5: 80, 50: 80} {
		cap *= time.Millisecond
		for range 200 {
			d := b.delay(attempt, 0)
			if d < cap/2 || d > cap {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, cap/2, cap)
			}
		}
	}
	for range 200 {
		if d := b.delay(1, time.Second); d < time.Second || d > 1100*time.Millisecond {
			t.Fatalf("retry-after not honoured: %v", d)
		}
	}
	if d := b.delay(5, time.Millisecond); d < 40*time.Millisecond {
		t.Fatalf("a short retry-after must not shorten the backoff: %v", d)
	}
}

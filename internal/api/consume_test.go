package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// errorCode returns the ErrorInfo code a Connect error carries.
func errorCode(err error) string {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return ""
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if info, ok := v.(*spoolv1.ErrorInfo); ok {
				return info.Code
			}
		}
	}
	return ""
}

// TestConsumeEndsOnDelete: a Consume stream whose topic or subscription is
// deleted ends with not_found at once, in both modes and over every
// protocol, although the client keeps its side open (the server used to
// wait for the client to close it).
func TestConsumeEndsOnDelete(t *testing.T) {
	base := startServer(t)
	protocols := map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}, "json": {connect.WithProtoJSON()}}
	for pname, opts := range protocols {
		for _, mode := range []string{"MODE_STREAM", "MODE_QUEUE"} {
			for _, del := range []string{"topic", "subscription"} {
				createTopic(t, base, "t")
				if st, code, msg := postJSON(t, base, createSubPath, []byte(`{"topic":"t","name":"s","config":{"mode":"`+mode+`"}}`), nil); st != http.StatusOK {
					t.Fatalf("create subscription: %d %s %s", st, code, msg)
				}
				c := spoolv1connect.NewConsumeServiceClient(h2c(), base, opts...)
				ctx, cancel := context.WithCancel(context.Background())
				stream := c.Consume(ctx)
				if err := stream.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: &spoolv1.ConsumeStart{
					Topic: "t", Subscription: "s", Credits: 10}}}); err != nil {
					t.Fatal(err)
				}
				if resp, err := stream.Receive(); err != nil || resp.GetAssignment() == nil {
					t.Fatalf("%s %s: first response %v, %v", pname, mode, resp, err)
				}
				ended := make(chan error, 1)
				go func() {
					for {
						if _, err := stream.Receive(); err != nil {
							ended <- err
							return
						}
					}
				}()
				method, body, want := "/spool.v1.TopicService/DeleteTopic", `{"name":"t"}`, "topic_not_found"
				if del == "subscription" {
					method, body, want = "/spool.v1.SubscriptionService/DeleteSubscription", `{"topic":"t","name":"s"}`, "subscription_not_found"
				}
				if st, code, msg := postJSON(t, base, method, []byte(body), nil); st != http.StatusOK {
					t.Fatalf("delete: %d %s %s", st, code, msg)
				}
				select {
				case err := <-ended:
					if connect.CodeOf(err) != connect.CodeNotFound || errorCode(err) != want {
						t.Errorf("%s %s, %s deleted: stream ended with %v (%q)", pname, mode, del, err, errorCode(err))
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("%s %s, %s deleted: the stream is still open", pname, mode, del)
				}
				cancel()
				stream.CloseRequest()
				stream.CloseResponse()
				if del == "subscription" {
					postJSON(t, base, "/spool.v1.TopicService/DeleteTopic", []byte(`{"name":"t"}`), nil)
				}
				postJSON(t, base, "/spool.v1.TopicService/DeleteTopic", []byte(`{"name":"dlq.t.s"}`), nil)
			}
		}
	}
}

// TestConsumeStartBounds: ids in ConsumeStart are bounded.
func TestConsumeStartBounds(t *testing.T) {
	base := startServer(t)
	createTopic(t, base, "t")
	if st, code, msg := postJSON(t, base, createSubPath, []byte(`{"topic":"t","name":"s"}`), nil); st != http.StatusOK {
		t.Fatalf("create subscription: %d %s %s", st, code, msg)
	}
	c := spoolv1connect.NewConsumeServiceClient(h2c(), base)
	stream := c.Consume(context.Background())
	defer stream.CloseResponse()
	if err := stream.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: &spoolv1.ConsumeStart{
		Topic: "t", Subscription: "s", ClientId: strings.Repeat("x", 1025)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Receive(); connect.CodeOf(err) != connect.CodeInvalidArgument || errorCode(err) != "invalid_argument" {
		t.Errorf("a 1025-byte client id: %v", err)
	}
}

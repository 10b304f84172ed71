package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
)

// nativeClients are the native API's clients of one principal.
type nativeClients struct {
	topics  spoolv1connect.TopicServiceClient
	subs    spoolv1connect.SubscriptionServiceClient
	publish spoolv1connect.PublishServiceClient
	consume spoolv1connect.ConsumeServiceClient
	cluster spoolv1connect.ClusterServiceClient
}

// bearer adds a principal's API key to every request.
type bearer struct {
	base http.RoundTripper
	key  string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.base.RoundTrip(r)
}

// native returns the clients of user, speaking h2c (streams are bidi).
func (e *mxEnv) native(user string) *nativeClients {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p, DialContext: (&net.Dialer{}).DialContext, TLSClientConfig: &tls.Config{}}
	hc := &http.Client{Transport: bearer{tr, e.keys[user]}}
	base := "http://" + e.srv.HTTPAddr()
	return &nativeClients{
		topics:  spoolv1connect.NewTopicServiceClient(hc, base),
		subs:    spoolv1connect.NewSubscriptionServiceClient(hc, base),
		publish: spoolv1connect.NewPublishServiceClient(hc, base),
		consume: spoolv1connect.NewConsumeServiceClient(hc, base),
		cluster: spoolv1connect.NewClusterServiceClient(hc, base),
	}
}

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

func earliest() *spoolv1.Position {
	return &spoolv1.Position{Position: &spoolv1.Position_Earliest{Earliest: true}}
}

// nativeSetup creates, as root, the topics and subscriptions the requests
// need, with messages.
func (e *mxEnv) nativeSetup(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	c := e.native("root")
	for _, name := range []string{mxTopic, mxBobTopic, "orders-del", "orders-alter"} {
		if _, err := c.topics.CreateTopic(ctx, req(&spoolv1.CreateTopicRequest{Name: name, Config: &spoolv1.TopicConfig{Partitions: 1}})); err != nil {
			t.Fatalf("create topic %s: %v", name, err)
		}
	}
	for _, s := range [][2]string{{mxTopic, mxSub}, {mxTopic, "orders-sub-del"}, {mxTopic, mxBobTopic + "-on-orders"}, {mxBobTopic, mxBobTopic + "-sub"}} {
		if _, err := c.subs.CreateSubscription(ctx, req(&spoolv1.CreateSubscriptionRequest{Topic: s[0], Name: s[1],
			Config: &spoolv1.SubscriptionConfig{Start: earliest()}})); err != nil {
			t.Fatalf("create subscription %s: %v", s[1], err)
		}
	}
	for _, topic := range []string{mxTopic, mxBobTopic} {
		if _, err := c.publish.Publish(ctx, req(&spoolv1.PublishRequest{Topic: topic, Messages: []*spoolv1.Message{{Value: []byte("m1")}, {Value: []byte("m2")}}})); err != nil {
			t.Fatalf("publish to %s: %v", topic, err)
		}
	}
}

// nativeRow is one procedure's request; deniedAs names the refused
// principal when it is not bob (bob may publish on a topic of his own, so
// InitProducer — which needs publish on some topic — is his).
type nativeRow struct {
	call     func(ctx context.Context, c *nativeClients) error
	deniedAs string
	// denied, when set, is the refused principal's request: one of the
	// request's checks passes (bob's own name), another does not.
	denied func(ctx context.Context, c *nativeClients) error
	label  string
}

// nativeRows are the matrix's native requests, by procedure. Requests
// that change or delete run as bob (refused) first, then as alice.
func nativeRows() map[string][]nativeRow {
	pub := &spoolv1.PublishRequest{Topic: mxTopic, Messages: []*spoolv1.Message{{Value: []byte("x")}}}
	rows := map[string][]nativeRow{}
	for proc, row := range map[string]nativeRow{
		spoolv1connect.TopicServiceCreateTopicProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.topics.CreateTopic(ctx, req(&spoolv1.CreateTopicRequest{Name: "orders-new", Config: &spoolv1.TopicConfig{Partitions: 1}}))
			return err
		}},
		spoolv1connect.TopicServiceDeleteTopicProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.topics.DeleteTopic(ctx, req(&spoolv1.DeleteTopicRequest{Name: "orders-del"}))
			return err
		}},
		spoolv1connect.TopicServiceListTopicsProcedure: {call: nil}, // listNative
		spoolv1connect.TopicServiceDescribeTopicProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.topics.DescribeTopic(ctx, req(&spoolv1.DescribeTopicRequest{Name: mxTopic}))
			return err
		}},
		spoolv1connect.TopicServiceAlterTopicProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.topics.AlterTopic(ctx, req(&spoolv1.AlterTopicRequest{Name: "orders-alter", Config: &spoolv1.TopicConfig{Description: "d"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}}))
			return err
		}},
		spoolv1connect.TopicServiceAddPartitionsProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.topics.AddPartitions(ctx, req(&spoolv1.AddPartitionsRequest{Name: "orders-alter", Partitions: 2}))
			return err
		}},
		spoolv1connect.TopicServiceReassignPartitionProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.topics.ReassignPartition(ctx, req(&spoolv1.ReassignPartitionRequest{Topic: mxTopic, Replicas: []uint64{1}}))
			return err
		}},
		spoolv1connect.TopicServiceReadTopicProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			st, err := c.topics.ReadTopic(ctx, req(&spoolv1.ReadTopicRequest{Topic: mxTopic, From: earliest(), Count: 1}))
			if err != nil {
				return err
			}
			defer st.Close()
			for st.Receive() {
			}
			return st.Err()
		}},
		spoolv1connect.SubscriptionServiceCreateSubscriptionProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.CreateSubscription(ctx, req(&spoolv1.CreateSubscriptionRequest{Topic: mxTopic, Name: "orders-sub-new"}))
			return err
		}},
		spoolv1connect.SubscriptionServiceDeleteSubscriptionProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.DeleteSubscription(ctx, req(&spoolv1.DeleteSubscriptionRequest{Topic: mxTopic, Name: "orders-sub-del"}))
			return err
		}},
		spoolv1connect.SubscriptionServiceListSubscriptionsProcedure: {call: nil}, // listNative
		spoolv1connect.SubscriptionServiceDescribeSubscriptionProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.DescribeSubscription(ctx, req(&spoolv1.DescribeSubscriptionRequest{Topic: mxTopic, Name: mxSub}))
			return err
		}},
		spoolv1connect.SubscriptionServiceAlterSubscriptionProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.AlterSubscription(ctx, req(&spoolv1.AlterSubscriptionRequest{Topic: mxTopic, Name: mxSub,
				Config: &spoolv1.SubscriptionConfig{MaxDeliveries: 5}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"max_deliveries"}}}))
			return err
		}},
		spoolv1connect.SubscriptionServiceResetSubscriptionProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.ResetSubscription(ctx, req(&spoolv1.ResetSubscriptionRequest{Topic: mxTopic, Name: mxSub, To: earliest()}))
			return err
		}},
		spoolv1connect.SubscriptionServicePurgeSubscriptionProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.PurgeSubscription(ctx, req(&spoolv1.PurgeSubscriptionRequest{Topic: mxTopic, Name: mxSub}))
			return err
		}},
		spoolv1connect.SubscriptionServiceListDeadLettersProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.ListDeadLetters(ctx, req(&spoolv1.ListDeadLettersRequest{Topic: mxTopic, Subscription: mxSub, Limit: 10}))
			return err
		}},
		spoolv1connect.SubscriptionServiceRedriveProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.Redrive(ctx, req(&spoolv1.RedriveRequest{Topic: mxTopic, Subscription: mxSub, DryRun: true}))
			return err
		}},
		spoolv1connect.PublishServicePublishProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.publish.Publish(ctx, req(pub))
			return err
		}},
		spoolv1connect.PublishServicePublishStreamProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			st := c.publish.PublishStream(ctx)
			defer st.CloseResponse()
			if err := st.Send(pub); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			resp, err := st.Receive()
			st.CloseRequest()
			if err == nil && resp.GetError() != nil { // refusals are answered in-stream
				var code connect.Code
				if code.UnmarshalText([]byte(resp.GetError().GetCode())) != nil {
					code = connect.CodeUnknown
				}
				return connect.NewError(code, errors.New(resp.GetErrorMessage()))
			}
			return err
		}},
		spoolv1connect.PublishServiceInitProducerProcedure: {deniedAs: "dave", call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.publish.InitProducer(ctx, req(&spoolv1.InitProducerRequest{}))
			return err
		}},
		spoolv1connect.ConsumeServiceConsumeProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			st := c.consume.Consume(ctx)
			defer st.CloseResponse()
			start := &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: &spoolv1.ConsumeStart{
				Topic: mxTopic, Subscription: mxSub, ClientId: "matrix", Credits: 10}}}
			if err := st.Send(start); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			_, err := st.Receive()
			st.CloseRequest()
			return err
		}},
		spoolv1connect.ClusterServiceClusterStatusProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.cluster.ClusterStatus(ctx, req(&spoolv1.ClusterStatusRequest{}))
			return err
		}},
		spoolv1connect.ClusterServiceAddNodeProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.cluster.AddNode(ctx, req(&spoolv1.AddNodeRequest{NodeId: 9, ClusterAddr: "127.0.0.1:1"}))
			return err
		}},
		spoolv1connect.ClusterServiceRemoveNodeProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.cluster.RemoveNode(ctx, req(&spoolv1.RemoveNodeRequest{NodeId: 9}))
			return err
		}},
		spoolv1connect.ClusterServiceTransferLeadershipProcedure: {call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.cluster.TransferLeadership(ctx, req(&spoolv1.TransferLeadershipRequest{NodeId: 9}))
			return err
		}},
	} {
		rows[proc] = []nativeRow{row}
	}
	consume := func(topic, sub string) func(ctx context.Context, c *nativeClients) error {
		return func(ctx context.Context, c *nativeClients) error {
			st := c.consume.Consume(ctx)
			defer st.CloseResponse()
			start := &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: &spoolv1.ConsumeStart{
				Topic: topic, Subscription: sub, ClientId: "matrix", Credits: 10}}}
			if err := st.Send(start); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			_, err := st.Receive()
			st.CloseRequest()
			return err
		}
	}
	add := func(proc string, row nativeRow) { rows[proc] = append(rows[proc], row) }
	// A dead-letter topic is published to: publish on it is needed.
	add(spoolv1connect.SubscriptionServiceCreateSubscriptionProcedure, nativeRow{label: "(dead letters to orders)",
		call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.CreateSubscription(ctx, req(&spoolv1.CreateSubscriptionRequest{Topic: mxTopic, Name: "orders-dlq-sub",
				Config: &spoolv1.SubscriptionConfig{DeadLetterTopic: "orders-dlq"}}))
			return err
		},
		denied: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.CreateSubscription(ctx, req(&spoolv1.CreateSubscriptionRequest{Topic: mxBobTopic, Name: "bobs-dlq-sub",
				Config: &spoolv1.SubscriptionConfig{DeadLetterTopic: mxTopic}}))
			return err
		}})
	// Dead letters are the topic's messages: consume on the topic too.
	deadLetters := func(topic, sub string) func(ctx context.Context, c *nativeClients) error {
		return func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.ListDeadLetters(ctx, req(&spoolv1.ListDeadLettersRequest{Topic: topic, Subscription: sub, Limit: 10}))
			return err
		}
	}
	add(spoolv1connect.SubscriptionServiceListDeadLettersProcedure, nativeRow{label: "(bob's subscription on orders)",
		call: deadLetters(mxTopic, mxSub), denied: deadLetters(mxTopic, mxBobTopic+"-on-orders")})
	// A redrive to the whole topic republishes to it: publish on it.
	redrive := func(sub string) func(ctx context.Context, c *nativeClients) error {
		return func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.Redrive(ctx, req(&spoolv1.RedriveRequest{Topic: mxTopic, Subscription: sub, Target: spoolv1.RedriveTarget_REDRIVE_TARGET_TOPIC, DryRun: true}))
			return err
		}
	}
	add(spoolv1connect.SubscriptionServiceRedriveProcedure, nativeRow{label: "(to bob's subscription's topic, orders)", call: redrive(mxSub), denied: redrive(mxBobTopic + "-on-orders")})
	// Binding a topic to a schema subject needs describe on the subject.
	add(spoolv1connect.TopicServiceCreateTopicProcedure, nativeRow{label: "(bound to orders-value)",
		call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.topics.CreateTopic(ctx, req(&spoolv1.CreateTopicRequest{Name: "orders-bound", Config: &spoolv1.TopicConfig{Partitions: 1, SchemaSubject: mxSubject}}))
			return err
		},
		denied: func(ctx context.Context, c *nativeClients) error {
			_, err := c.topics.CreateTopic(ctx, req(&spoolv1.CreateTopicRequest{Name: "bobs-bound", Config: &spoolv1.TopicConfig{Partitions: 1, SchemaSubject: mxSubject}}))
			return err
		}})
	add(spoolv1connect.TopicServiceAlterTopicProcedure, nativeRow{label: "(bound to orders-value)",
		call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.topics.AlterTopic(ctx, req(&spoolv1.AlterTopicRequest{Name: "orders-alter", Config: &spoolv1.TopicConfig{SchemaSubject: mxSubject},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"schema_subject"}}}))
			return err
		},
		denied: func(ctx context.Context, c *nativeClients) error {
			_, err := c.topics.AlterTopic(ctx, req(&spoolv1.AlterTopicRequest{Name: mxBobTopic, Config: &spoolv1.TopicConfig{SchemaSubject: mxSubject},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"schema_subject"}}}))
			return err
		}})
	add(spoolv1connect.ConsumeServiceConsumeProcedure, nativeRow{label: "(bob's subscription on orders)", call: consume(mxTopic, mxSub),
		denied: consume(mxTopic, mxBobTopic+"-on-orders")})
	add(spoolv1connect.ConsumeServiceConsumeProcedure, nativeRow{label: "(orders-sub on bob's topic)", call: consume(mxTopic, mxSub),
		denied: consume(mxBobTopic, mxSub)})
	add(spoolv1connect.SubscriptionServiceCreateSubscriptionProcedure, nativeRow{label: "(orders-x on bob's topic)",
		call: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.CreateSubscription(ctx, req(&spoolv1.CreateSubscriptionRequest{Topic: mxTopic, Name: "orders-sub-new2"}))
			return err
		},
		denied: func(ctx context.Context, c *nativeClients) error {
			_, err := c.subs.CreateSubscription(ctx, req(&spoolv1.CreateSubscriptionRequest{Topic: mxBobTopic, Name: "orders-x"}))
			return err
		}})
	return rows
}

// nativeProcedures lists every procedure of the Spool proto's services.
func nativeProcedures() []string {
	var out []string
	for _, fd := range []protoreflect.FileDescriptor{spoolv1.File_spool_v1_topics_proto, spoolv1.File_spool_v1_subscriptions_proto,
		spoolv1.File_spool_v1_publish_proto, spoolv1.File_spool_v1_consume_proto, spoolv1.File_spool_v1_cluster_proto, spoolv1.File_spool_v1_types_proto} {
		svcs := fd.Services()
		for i := 0; i < svcs.Len(); i++ {
			ms := svcs.Get(i).Methods()
			for j := 0; j < ms.Len(); j++ {
				out = append(out, "/"+string(svcs.Get(i).FullName())+"/"+string(ms.Get(j).Name()))
			}
		}
	}
	return out
}

// nativeMatrix sends every procedure as bob (or its deniedAs) and alice.
func (e *mxEnv) nativeMatrix(t *testing.T) {
	rows := nativeRows()
	clients := map[string]*nativeClients{}
	for _, u := range []string{"alice", "bob", "dave"} {
		clients[u] = e.native(u)
	}
	procs := nativeProcedures()
	if len(procs) < 20 {
		t.Fatalf("only %d procedures found in the descriptors", len(procs))
	}
	for _, proc := range procs {
		nrs, ok := rows[proc]
		if !ok {
			e.record("native", proc, "-", "a matrix row", "none: add one to nativeRows", false)
			continue
		}
		for _, row := range nrs {
			if row.call == nil {
				continue
			}
			e.nativeRow(proc, row, clients)
		}
	}
	e.listNative(clients)
}

// nativeRow sends one row's requests, refused then allowed.
func (e *mxEnv) nativeRow(proc string, row nativeRow, clients map[string]*nativeClients) {
	denied := row.deniedAs
	if denied == "" {
		denied = "bob"
	}
	name := proc
	if row.label != "" {
		name += " " + row.label
	}
	for _, user := range []string{denied, "alice"} {
		call := row.call
		if user != "alice" && row.denied != nil {
			call = row.denied
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := call(ctx, clients[user])
		cancel()
		got := "ok"
		if err != nil {
			got = connect.CodeOf(err).String() + ": " + err.Error()
		}
		if user == "alice" {
			e.record("native", name, user, "not permission_denied", got, connect.CodeOf(err) != connect.CodePermissionDenied || err == nil)
		} else {
			e.record("native", name, user, "permission_denied", got, err != nil && connect.CodeOf(err) == connect.CodePermissionDenied)
		}
	}
}

// listNative: the lists leave out what the principal may not describe.
func (e *mxEnv) listNative(clients map[string]*nativeClients) {
	ctx := context.Background()
	for _, user := range []string{"alice", "bob"} {
		c := clients[user]
		resp, err := c.topics.ListTopics(ctx, req(&spoolv1.ListTopicsRequest{}))
		var names []string
		if err == nil {
			for _, tp := range resp.Msg.Topics {
				names = append(names, tp.GetName())
			}
		}
		want, ok := "", err == nil
		switch user {
		case "alice":
			want = "orders… only, with orders"
			ok = ok && slices.Contains(names, mxTopic) && !slices.ContainsFunc(names, func(n string) bool { return !strings.HasPrefix(n, "orders") })
		case "bob":
			want = "none of orders…"
			ok = ok && !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "orders") })
		}
		e.record("native", spoolv1connect.TopicServiceListTopicsProcedure, user, want, fmt.Sprint(names, err), ok)

		sresp, err := c.subs.ListSubscriptions(ctx, req(&spoolv1.ListSubscriptionsRequest{Topic: mxTopic}))
		names = nil
		if err == nil {
			for _, s := range sresp.Msg.Subscriptions {
				names = append(names, s.GetName())
			}
		}
		switch user {
		case "alice": // the bobs-on-orders subscription of her topic is not hers to see
			ok = err == nil && slices.Contains(names, mxSub) && !slices.ContainsFunc(names, func(n string) bool { return !strings.HasPrefix(n, "orders") })
			want = "orders… subscriptions only"
		case "bob":
			ok = connect.CodeOf(err) == connect.CodePermissionDenied
			want = "permission_denied"
		}
		e.record("native", spoolv1connect.SubscriptionServiceListSubscriptionsProcedure, user, want, fmt.Sprint(names, err), ok)
	}
	// A topic's description lists the subscriptions alice may describe.
	dresp, err := clients["alice"].topics.DescribeTopic(ctx, req(&spoolv1.DescribeTopicRequest{Name: mxTopic}))
	var subs []string
	if err == nil {
		subs = dresp.Msg.Subscriptions
	}
	e.record("native", spoolv1connect.TopicServiceDescribeTopicProcedure+" subscriptions", "alice", "orders… subscriptions only", fmt.Sprint(subs, err),
		err == nil && slices.Contains(subs, mxSub) && !slices.ContainsFunc(subs, func(n string) bool { return !strings.HasPrefix(n, "orders") }))
}

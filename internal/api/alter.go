package api

import (
	"context"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
)

// Changing topics and subscriptions: AlterTopic, AddPartitions and
// AlterSubscription. A request names the fields to change in a FieldMask
// (proto names; "backoff.initial" names one field of the backoff); their
// new values come from the request's config, and a field named with a
// zero value takes its default. Everything is checked before anything is
// written: an empty mask, an unknown field, a field that cannot change or
// a bad value is invalid_argument and changes nothing.

// topicFields are the AlterTopic fields, in the proto's order.
var topicFields = []string{"retention", "retention_bytes", "max_messages", "max_bytes", "discard",
	"dedup_window", "message_ttl", "durability", "max_message_bytes", "work_queue",
	"schema_subject", "schema_mode", "owner", "description", "labels"}

func (h topics) AlterTopic(_ context.Context, req *connect.Request[spoolv1.AlterTopicRequest]) (*connect.Response[spoolv1.AlterTopicResponse], error) {
	paths := req.Msg.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("update_mask is empty: name the fields to change (%s)", strings.Join(topicFields, ", "))
	}
	for _, p := range paths {
		switch {
		case p == "partitions":
			return nil, invalid("partitions cannot be set with AlterTopic: add partitions with AddPartitions")
		case !slices.Contains(topicFields, p):
			return nil, invalid("unknown field %q in update_mask; a topic's changeable fields are %s", p, strings.Join(topicFields, ", "))
		}
	}
	in := req.Msg.GetConfig()
	if in == nil {
		in = &spoolv1.TopicConfig{}
	}
	c, err := topicConfigFromProto(masked(in, paths))
	if err != nil {
		return nil, err
	}
	// Zero values take the server's defaults, as at creation (a default
	// message limit is capped by what the logs store).
	n := h.b.TopicDefaults().Fill(c)
	if c.MaxMessageBytes == 0 {
		n.MaxMessageBytes = min(n.MaxMessageBytes, h.b.MaxStorableMessageBytes())
	}
	t, err := h.b.UpdateTopicConfig(req.Msg.GetName(), func(cfg *catalog.TopicConfig) error {
		for _, p := range paths {
			switch p {
			case "retention":
				cfg.Retention = n.Retention
			case "retention_bytes":
				cfg.RetentionBytes = n.RetentionBytes
			case "max_messages":
				cfg.MaxMessages = n.MaxMessages
			case "max_bytes":
				cfg.MaxBytes = n.MaxBytes
			case "discard":
				cfg.Discard = n.Discard
			case "dedup_window":
				cfg.DedupWindow = n.DedupWindow
			case "message_ttl":
				cfg.MessageTTL = n.MessageTTL
			case "durability":
				cfg.Durability = n.Durability
			case "max_message_bytes":
				cfg.MaxMessageBytes = n.MaxMessageBytes
			case "work_queue":
				cfg.WorkQueue = n.WorkQueue
			case "schema_subject":
				cfg.SchemaSubject = n.SchemaSubject
			case "schema_mode":
				cfg.SchemaMode = n.SchemaMode
			case "owner":
				cfg.Owner = n.Owner
			case "description":
				cfg.Description = n.Description
			case "labels":
				cfg.Labels = n.Labels
			}
		}
		return nil
	})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.AlterTopicResponse{Topic: topicToProto(t)}), nil
}

func (h topics) AddPartitions(ctx context.Context, req *connect.Request[spoolv1.AddPartitionsRequest]) (*connect.Response[spoolv1.AddPartitionsResponse], error) {
	before, _ := h.b.Topic(req.Msg.GetName())
	t, err := h.b.AddPartitions(req.Msg.GetName(), req.Msg.GetPartitions())
	if err != nil {
		return nil, toConnect(err)
	}
	h.b.AwaitLeaders(ctx, t.Name, before.Config.Partitions, t.Config.Partitions, time.Now().Add(broker.LeaderWait))
	return connect.NewResponse(&spoolv1.AddPartitionsResponse{Topic: topicToProto(t)}), nil
}

// subField is a changeable subscription field and the modes it applies to.
type subField struct {
	name          string
	queue, stream bool
}

// subFields are the AlterSubscription fields.
var subFields = []subField{
	{"filter", true, true},
	{"ack_timeout", true, false},
	{"max_deliveries", true, true},
	{"backoff", true, true},
	{"backoff.initial", true, true},
	{"backoff.max", true, true},
	{"backoff.multiplier", true, true},
	{"backoff.jitter", true, true},
	{"backoff.delays", true, true},
	{"on_expired", true, false},
	{"max_in_flight", true, false},
	{"rate_limit", true, false},
	{"rate_burst", true, false},
	{"on_failure", false, true},
	{"processed_key", true, false},
	{"processed_ttl", true, false},
}

// fixedSubFields cannot change, with what to do instead.
var fixedSubFields = map[string]string{
	"mode":              "mode cannot change: create a new subscription with the mode you want",
	"start":             "start cannot change (it is where the subscription began): move the subscription with ResetSubscription",
	"ordering":          "ordering cannot change: create a new subscription with the ordering you want",
	"dead_letter_topic": "dead_letter_topic cannot change: create a new subscription with the dead-letter topic you want",
}

func subFieldNames() string {
	names := make([]string, len(subFields))
	for i, f := range subFields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

func (h subs) AlterSubscription(_ context.Context, req *connect.Request[spoolv1.AlterSubscriptionRequest]) (*connect.Response[spoolv1.AlterSubscriptionResponse], error) {
	paths := req.Msg.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("update_mask is empty: name the fields to change (%s)", subFieldNames())
	}
	for _, p := range paths {
		top, _, _ := strings.Cut(p, ".")
		if msg, ok := fixedSubFields[top]; ok {
			return nil, invalid("%s", msg)
		}
		if !slices.ContainsFunc(subFields, func(f subField) bool { return f.name == p }) {
			return nil, invalid("unknown field %q in update_mask; a subscription's changeable fields are %s", p, subFieldNames())
		}
	}
	in := req.Msg.GetConfig()
	if in == nil {
		in = &spoolv1.SubscriptionConfig{}
	}
	n, err := subConfigFromProto(masked(in, paths))
	if err != nil {
		return nil, err
	}
	s, err := h.b.AlterSubscription(req.Msg.GetTopic(), req.Msg.GetName(), func(cfg *catalog.SubConfig) error {
		queue := cfg.Mode == catalog.ModeQueue
		for _, f := range subFields {
			if !slices.Contains(paths, f.name) {
				continue
			}
			switch {
			case queue && !f.queue:
				return invalid("%s applies to stream subscriptions only (%s is a queue subscription, which always dead-letters)", f.name, req.Msg.GetName())
			case !queue && !f.stream:
				return invalid("%s applies to queue subscriptions only (%s is a stream subscription)", f.name, req.Msg.GetName())
			}
			q, nq := &cfg.Queue, n.Queue
			switch f.name {
			case "filter":
				cfg.Filter = n.Filter
			case "ack_timeout":
				q.AckTimeout = nq.AckTimeout
			case "max_deliveries":
				q.MaxDeliveries = nq.MaxDeliveries
			case "backoff":
				q.Backoff = nq.Backoff
			case "backoff.initial":
				q.Backoff.Initial = nq.Backoff.Initial
			case "backoff.max":
				q.Backoff.Max = nq.Backoff.Max
			case "backoff.multiplier":
				q.Backoff.Multiplier = nq.Backoff.Multiplier
			case "backoff.jitter":
				q.Backoff.Jitter = nq.Backoff.Jitter
			case "backoff.delays":
				q.Backoff.Delays = nq.Backoff.Delays
			case "on_expired":
				q.OnExpired = nq.OnExpired
			case "max_in_flight":
				q.MaxInFlight = nq.MaxInFlight
			case "rate_limit":
				q.RateLimit = nq.RateLimit
			case "rate_burst":
				q.RateBurst = nq.RateBurst
			case "on_failure":
				cfg.OnFailure = n.OnFailure
			case "processed_key":
				q.ProcessedKey = nq.ProcessedKey
			case "processed_ttl":
				q.ProcessedTTL = nq.ProcessedTTL
			}
		}
		return nil
	})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&spoolv1.AlterSubscriptionResponse{Subscription: subToProto(s)}), nil
}

// masked returns a copy of m holding only the fields named by paths (proto
// names; "a.b" is field b of message field a), so that values in fields
// the request does not name are ignored, not checked.
func masked[M proto.Message](m M, paths []string) M {
	src := m.ProtoReflect()
	dst := src.New()
	for _, p := range paths {
		copyPath(src, dst, strings.Split(p, "."))
	}
	return dst.Interface().(M)
}

func copyPath(src, dst protoreflect.Message, path []string) {
	fd := src.Descriptor().Fields().ByName(protoreflect.Name(path[0]))
	if fd == nil || !src.Has(fd) {
		return
	}
	if len(path) == 1 {
		dst.Set(fd, src.Get(fd))
		return
	}
	if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
		copyPath(src.Get(fd).Message(), dst.Mutable(fd).Message(), path[1:])
	}
}

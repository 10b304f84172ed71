package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/kafka/kwire"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The Kafka matrix's lists, authorized operations and ACL APIs.

// kafkaLists: Metadata of every topic and ListGroups leave out what the
// principal may not describe.
func (e *mxEnv) kafkaLists(clients map[string]*kgo.Client) {
	for _, user := range []string{"alice", "bob"} {
		mr := kmsg.NewPtrMetadataRequest()
		mr.Topics = nil
		resp, err := kreq(clients[user], mr)
		var topics []string
		if err == nil {
			for _, tp := range resp.(*kmsg.MetadataResponse).Topics {
				topics = append(topics, *tp.Topic)
			}
		}
		lr, err2 := kreq(clients[user], kmsg.NewPtrListGroupsRequest())
		var groups []string
		if err2 == nil {
			for _, g := range lr.(*kmsg.ListGroupsResponse).Groups {
				groups = append(groups, g.Group)
			}
		}
		hasBobs := func(xs []string) bool {
			return slices.ContainsFunc(xs, func(s string) bool { return len(s) >= 4 && s[:4] == "bobs" })
		}
		hasOrders := func(xs []string) bool {
			return slices.ContainsFunc(xs, func(s string) bool { return len(s) >= 6 && s[:6] == "orders" })
		}
		// __consumer_offsets is a topic like the others: listed to those
		// who may describe it (neither has a rule on it).
		e.record("kafka", "Metadata(all) lists __consumer_offsets", user, "false", fmt.Sprint(slices.Contains(topics, "__consumer_offsets")), !slices.Contains(topics, "__consumer_offsets"))
		if user == "bob" { // bob's group has offsets on alice's topic too
			got, err := e.kafkaOffsetsOf(clients[user], "bobs-g")
			e.record("kafka", "OffsetFetch(bobs-g, every topic)", user, "[bobs]", fmt.Sprint(got, err), err == nil && slices.Equal(got, []string{mxBobTopic}))
		}
		if user == "alice" {
			e.record("kafka", "Metadata(all)", user, "orders, no bobs", fmt.Sprint(topics, err), err == nil && slices.Contains(topics, mxTopic) && !hasBobs(topics))
			e.record("kafka", "ListGroups", user, "orders-sub, no bobs", fmt.Sprint(groups, err2), err2 == nil && slices.Contains(groups, mxSub) && !hasBobs(groups))
		} else {
			e.record("kafka", "Metadata(all)", user, "no orders", fmt.Sprint(topics, err), err == nil && !hasOrders(topics))
			e.record("kafka", "ListGroups", user, "no orders", fmt.Sprint(groups, err2), err2 == nil && !hasOrders(groups))
		}
	}
}

// kafkaOffsetsOf returns the topics OffsetFetch of every topic answers
// for a group.
func (e *mxEnv) kafkaOffsetsOf(kc *kgo.Client, group string) ([]string, error) {
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Group = group
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = group
	r.Groups = append(r.Groups, g)
	resp, err := kreq(kc, r)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range resp.(*kmsg.OffsetFetchResponse).Groups {
		if g.ErrorCode != 0 {
			return nil, kerr.ErrorForCode(g.ErrorCode)
		}
		for _, t := range g.Topics {
			name := t.Topic
			if tt, ok := e.srv.broker.TopicByID(kwire.UUIDString(t.TopicID)); ok && name == "" { // v10 names topics by id
				name = tt.Name
			}
			out = append(out, name)
		}
	}
	return out, nil
}

// kafkaAuthorizedOps: DescribeCluster's and DescribeGroups' authorized
// operations are those the principal has.
func (e *mxEnv) kafkaAuthorizedOps(t *testing.T, root *kgo.Client, clients map[string]*kgo.Client) {
	const (
		read, del, alter, create, describe, clusterAction, describeConfigs, alterConfigs, idempotentWrite = 1 << 3, 1 << 6, 1 << 7, 1 << 5, 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
	)
	clients["root"] = root
	for _, c := range []struct {
		user string
		want int32
	}{
		{"dave", describe | describeConfigs},
		{"root", create | alter | describe | clusterAction | describeConfigs | alterConfigs | idempotentWrite},
	} {
		r := kmsg.NewPtrDescribeClusterRequest()
		r.IncludeClusterAuthorizedOperations = true
		resp, err := kreq(clients[c.user], r)
		got := fmt.Sprint(err)
		if err == nil {
			got = fmt.Sprintf("%#x", resp.(*kmsg.DescribeClusterResponse).ClusterAuthorizedOperations)
		}
		e.record("kafka", "DescribeCluster authorized operations", c.user, fmt.Sprintf("%#x", c.want), got, got == fmt.Sprintf("%#x", c.want))
	}
	mr := kmsg.NewPtrMetadataRequest()
	mr.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(mxTopic)}}
	mr.IncludeTopicAuthorizedOperations = true
	resp, err := kreq(clients["alice"], mr)
	got, want := fmt.Sprint(err), fmt.Sprintf("%#x", read|1<<4|create|del|alter|describe|describeConfigs|alterConfigs)
	if err == nil {
		got = fmt.Sprintf("%#x", resp.(*kmsg.MetadataResponse).Topics[0].AuthorizedOperations)
	}
	e.record("kafka", "Metadata topic authorized operations", "alice", want, got, got == want)
	for _, c := range []struct {
		user string
		want int32
	}{{"dave", describe}, {"alice", read | describe | del}} {
		r := kmsg.NewPtrDescribeGroupsRequest()
		r.Groups, r.IncludeAuthorizedOperations = []string{mxSub}, true
		resp, err := kreq(clients[c.user], r)
		got := fmt.Sprint(err)
		if err == nil {
			g := resp.(*kmsg.DescribeGroupsResponse).Groups[0]
			got = fmt.Sprintf("%#x (error %d)", g.AuthorizedOperations, g.ErrorCode)
		}
		want := fmt.Sprintf("%#x (error 0)", c.want)
		e.record("kafka", "DescribeGroups authorized operations", c.user, want, got, got == want)
	}
}

// kafkaACLs: kadm's ACL round trip as root, refused to bob; a READ rule
// lets carol fetch.
func (e *mxEnv) kafkaACLs(t *testing.T, root, bob *kgo.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := root.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("for carol")}).FirstErr(); err != nil {
		t.Fatalf("produce to t: %v", err)
	}
	adm, badm := kadm.NewClient(root), kadm.NewClient(bob)
	b := kadm.NewACLs().Allow("User:carol").Topics("t").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral).AllowHosts()
	check := func(what, user, want string, err error, ok bool) {
		e.record("kafka", "kadm "+what, user, want, fmt.Sprint(err), ok)
	}
	// bob first: refused.
	cr, err := badm.CreateACLs(ctx, b)
	for _, r := range cr {
		err = errors.Join(err, r.Err)
	}
	check("CreateACLs", "bob", "CLUSTER_AUTHORIZATION_FAILED", err, errors.Is(err, kerr.ClusterAuthorizationFailed))
	dr, err := badm.DescribeACLs(ctx, b)
	for _, r := range dr {
		err = errors.Join(err, r.Err)
	}
	check("DescribeACLs", "bob", "CLUSTER_AUTHORIZATION_FAILED", err, errors.Is(err, kerr.ClusterAuthorizationFailed))
	xr, err := badm.DeleteACLs(ctx, b)
	for _, r := range xr {
		err = errors.Join(err, r.Err)
	}
	check("DeleteACLs", "bob", "CLUSTER_AUTHORIZATION_FAILED", err, errors.Is(err, kerr.ClusterAuthorizationFailed))

	created, err := adm.CreateACLs(ctx, b)
	if err == nil {
		for _, c := range created {
			err = c.Err
		}
	}
	check("CreateACLs", "root", "created", err, err == nil && len(created) == 1)
	described, err := adm.DescribeACLs(ctx, b)
	n := 0
	if err == nil {
		for _, d := range described {
			if d.Err != nil {
				err = d.Err
			}
			n += len(d.Described)
		}
	}
	check("DescribeACLs", "root", "1 rule", fmt.Errorf("%v, %d rules", err, n), err == nil && n == 1)

	carol := e.kafka(t, "carol", kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	fs := carol.PollFetches(fctx)
	fcancel()
	var ferr error
	for _, fe := range fs.Errors() {
		ferr = fe.Err
	}
	check("READ rule lets carol fetch t", "carol", "1 record", fmt.Errorf("%v, %d records", ferr, len(fs.Records())), ferr == nil && len(fs.Records()) == 1)

	deleted, err := adm.DeleteACLs(ctx, b)
	n = 0
	if err == nil {
		for _, d := range deleted {
			if d.Err != nil {
				err = d.Err
			}
			n += len(d.Deleted)
		}
	}
	check("DeleteACLs", "root", "1 rule deleted", fmt.Errorf("%v, %d deleted", err, n), err == nil && n == 1)
}

package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/kafka/kwire"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kafka returns a client of user, authenticated with SCRAM-SHA-256.
func (e *mxEnv) kafka(t *testing.T, user string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return kafkaClient(t, e.srv, append([]kgo.Opt{kgo.SASL(scram.Auth{User: user, Pass: mxUsers[user]}.AsSha256Mechanism())}, opts...)...)
}

// kreq sends a request to the seed broker (no retries, no sharding).
func kreq(kc *kgo.Client, r kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return kc.SeedBrokers()[0].Request(ctx, r)
}

// errorCodes collects every ErrorCode field of a response.
func errorCodes(resp kmsg.Response) []int16 {
	var out []int16
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				f := v.Type().Field(i)
				if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
					out = append(out, int16(v.Field(i).Int()))
				} else {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			if v.Type().Elem().Kind() != reflect.Uint8 {
				for i := 0; i < v.Len(); i++ {
					walk(v.Index(i))
				}
			}
		}
	}
	walk(reflect.ValueOf(resp))
	return out
}

var authzCodes = []int16{kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Code}

func codeNames(codes []int16) string {
	var s []string
	for _, c := range codes {
		if err := kerr.ErrorForCode(c); err != nil {
			s = append(s, err.(*kerr.Error).Message)
		} else {
			s = append(s, "0")
		}
	}
	return fmt.Sprint(s)
}

// recordBatch encodes a record batch of one record.
func recordBatch() []byte {
	rec := kmsg.Record{Value: []byte("v"), Key: []byte("k")}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // the length's own varint is one byte
	recs := rec.AppendTo(nil)
	b := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: 0, FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli(),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: recs}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:12], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:21], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// kafkaRow is one request of an API key: want is the error bob gets.
type kafkaRow struct {
	name     string
	req      func() kmsg.Request
	want     int16
	deniedAs string
	// denied, when set, is the refused principal's request: one of its
	// checks passes (bob's own group), another does not.
	denied func() kmsg.Request
}

// kafkaOpen are the APIs any connection may send before it authenticates.
var kafkaOpen = map[int16]bool{17: true, 18: true, 36: true} // SaslHandshake, ApiVersions, SaslAuthenticate

// kafkaRows are the matrix's Kafka requests by API key; lists (Metadata
// of every topic, ListGroups) are checked in kafkaLists.
func (e *mxEnv) kafkaRows(topicID [16]byte, node int32) map[int16][]kafkaRow {
	tf, gf, cf := kerr.TopicAuthorizationFailed.Code, kerr.GroupAuthorizationFailed.Code, kerr.ClusterAuthorizationFailed.Code
	const group, shareMember = "orders-g", "0123456789abcdef0123456789abcdef"
	str := func(s string) *string { return &s }
	rows := map[int16][]kafkaRow{
		0: {{name: "Produce", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrProduceRequest()
			r.Acks, r.TimeoutMillis = -1, 5000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic, rt.TopicID = mxTopic, topicID
			rt.Partitions = []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: recordBatch()}}
			r.Topics = append(r.Topics, rt)
			return r
		}}},
		1: {{name: "Fetch", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrFetchRequest()
			r.ReplicaID, r.MaxWaitMillis, r.MinBytes, r.MaxBytes, r.SessionEpoch = -1, 10, 1, 1<<20, -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = mxTopic, topicID
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, 1<<20, -1
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		}}},
		2: {{name: "ListOffsets", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrListOffsetsRequest()
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = mxTopic
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Timestamp = -1
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		}}},
		3: {{name: "Metadata(orders)", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = str(mxTopic)
			r.Topics = append(r.Topics, rt)
			return r
		}}},
		8: {{name: "OffsetCommit", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrOffsetCommitRequest()
			r.Group, r.Generation = group, -1
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic, rt.TopicID = mxTopic, topicID
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Offset = 1
			rt.Partitions = append(rt.Partitions, rp)
			r.Topics = append(r.Topics, rt)
			return r
		}}},
		9: {{name: "OffsetFetch", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrOffsetFetchRequest()
			r.Group = group
			r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: mxTopic, Partitions: []int32{0}}}
			g := kmsg.NewOffsetFetchRequestGroup()
			g.Group = group
			g.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: mxTopic, TopicID: topicID, Partitions: []int32{0}}}
			r.Groups = append(r.Groups, g)
			return r
		}}},
		10: {{name: "FindCoordinator", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrFindCoordinatorRequest()
			r.CoordinatorKey, r.CoordinatorKeys = group, []string{group}
			return r
		}}, {name: "FindCoordinator(share key)", want: cf, req: func() kmsg.Request {
			r := kmsg.NewPtrFindCoordinatorRequest()
			key := "orders-share:" + kwire.UUIDString(topicID) + ":0"
			r.CoordinatorType, r.CoordinatorKey, r.CoordinatorKeys = 2, key, []string{key}
			return r
		}}},
		11: {{name: "JoinGroup", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrJoinGroupRequest()
			r.Group, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis, r.ProtocolType = group, 10000, 10000, "consumer"
			r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0, 0, 0, 0, 0}}}
			return r
		}}},
		12: {{name: "Heartbeat", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrHeartbeatRequest()
			r.Group, r.Generation, r.MemberID = group, 1, "m"
			return r
		}}},
		13: {{name: "LeaveGroup", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrLeaveGroupRequest()
			r.Group, r.MemberID = group, "m"
			r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
			return r
		}}},
		14: {{name: "SyncGroup", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrSyncGroupRequest()
			r.Group, r.Generation, r.MemberID = group, 1, "m"
			r.ProtocolType, r.Protocol = str("consumer"), str("range")
			return r
		}}},
		15: {{name: "DescribeGroups", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeGroupsRequest()
			r.Groups = []string{mxSub}
			return r
		}}},
		16: {}, // ListGroups: kafkaLists
		19: {{name: "CreateTopics", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrCreateTopicsRequest()
			r.TimeoutMillis = 5000
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "orders-k", 1, -1
			r.Topics = append(r.Topics, rt)
			return r
		}}},
		20: {{name: "DeleteTopics", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrDeleteTopicsRequest()
			r.TimeoutMillis = 5000
			r.TopicNames = []string{"orders-kdel"}
			r.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: str("orders-kdel")}}
			return r
		}}},
		21: {{name: "DeleteRecords", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrDeleteRecordsRequest()
			r.TimeoutMillis = 5000
			r.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "orders-alter", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: 0}}}}
			return r
		}}},
		22: {{name: "InitProducerID", want: cf, deniedAs: "dave", req: func() kmsg.Request {
			r := kmsg.NewPtrInitProducerIDRequest()
			r.TransactionTimeoutMillis, r.ProducerID, r.ProducerEpoch = 60000, -1, -1
			return r
		}}},
		23: {{name: "OffsetForLeaderEpoch", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrOffsetForLeaderEpochRequest()
			r.ReplicaID = -1
			r.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: mxTopic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}
			return r
		}}},
		29: {{name: "DescribeAcls", want: cf, req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeACLsRequest()
			r.ResourceType, r.ResourcePatternType, r.Operation, r.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
			return r
		}}},
		30: {{name: "CreateAcls", want: cf, req: func() kmsg.Request {
			r := kmsg.NewPtrCreateACLsRequest()
			c := kmsg.NewCreateACLsRequestCreation()
			c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, "erins", kmsg.ACLResourcePatternTypeLiteral
			c.Principal, c.Host, c.Operation, c.PermissionType = "User:erin", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
			r.Creations = append(r.Creations, c)
			return r
		}}},
		31: {{name: "DeleteAcls", want: cf, req: func() kmsg.Request {
			r := kmsg.NewPtrDeleteACLsRequest()
			f := kmsg.NewDeleteACLsRequestFilter()
			f.ResourceType, f.ResourcePatternType, f.Operation, f.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
			f.Principal = str("User:erin")
			r.Filters = append(r.Filters, f)
			return r
		}}},
		48: {{name: "DescribeClientQuotas", want: cf, req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeClientQuotasRequest()
			c := kmsg.NewDescribeClientQuotasRequestComponent()
			c.EntityType, c.MatchType = "user", 2 // any user
			r.Components = append(r.Components, c)
			return r
		}}},
		49: {{name: "AlterClientQuotas", want: cf, req: func() kmsg.Request {
			r := kmsg.NewPtrAlterClientQuotasRequest()
			e := kmsg.NewAlterClientQuotasRequestEntry()
			ec := kmsg.NewAlterClientQuotasRequestEntryEntity()
			ec.Type, ec.Name = "user", str("erin")
			op := kmsg.NewAlterClientQuotasRequestEntryOp()
			op.Key, op.Value = "producer_byte_rate", 1<<20
			e.Entity, e.Ops = append(e.Entity, ec), append(e.Ops, op)
			r.Entries = append(r.Entries, e)
			return r
		}}},
		32: {{name: "DescribeConfigs(topic)", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeConfigsRequest()
			r.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: mxTopic}}
			return r
		}}, {name: "DescribeConfigs(broker)", want: cf, req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeConfigsRequest()
			r.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: fmt.Sprint(node)}}
			return r
		}}, {name: "DescribeConfigs(group)", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrDescribeConfigsRequest()
			r.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeGroupConfig, ResourceName: mxSub}}
			return r
		}}},
		33: {{name: "AlterConfigs", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrAlterConfigsRequest()
			r.ValidateOnly = true
			r.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "orders-alter",
				Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: str("3600000")}}}}
			return r
		}}},
		37: {{name: "CreatePartitions", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrCreatePartitionsRequest()
			r.TimeoutMillis, r.ValidateOnly = 5000, true
			r.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: "orders-alter", Count: 4}}
			return r
		}}},
		42: {{name: "DeleteGroups", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrDeleteGroupsRequest()
			r.Groups = []string{"orders-gdel"}
			return r
		}}},
		44: {{name: "IncrementalAlterConfigs", want: tf, req: func() kmsg.Request {
			r := kmsg.NewPtrIncrementalAlterConfigsRequest()
			r.ValidateOnly = true
			r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "orders-alter",
				Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Op: kmsg.IncrementalAlterConfigOpSet, Value: str("3600000")}}}}
			return r
		}}},
		45: {{name: "AlterPartitionAssignments", want: cf, req: func() kmsg.Request {
			r := kmsg.NewPtrAlterPartitionAssignmentsRequest()
			r.TimeoutMillis = 5000
			r.Topics = []kmsg.AlterPartitionAssignmentsRequestTopic{{Topic: mxTopic, Partitions: []kmsg.AlterPartitionAssignmentsRequestTopicPartition{{Partition: 0, Replicas: []int32{node}}}}}
			return r
		}}},
		46: {{name: "ListPartitionReassignments", want: cf, req: func() kmsg.Request {
			r := kmsg.NewPtrListPartitionReassignmentsRequest()
			r.TimeoutMillis = 5000
			return r
		}}},
		47: {{name: "OffsetDelete", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrOffsetDeleteRequest()
			r.Group = group
			r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: mxTopic, Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
			return r
		}}},
		60: {{name: "DescribeCluster", want: cf, req: func() kmsg.Request { return kmsg.NewPtrDescribeClusterRequest() }}},
		76: {{name: "ShareGroupHeartbeat", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrShareGroupHeartbeatRequest()
			r.GroupID, r.MemberID, r.MemberEpoch, r.SubscribedTopicNames = "orders-share", shareMember, 0, []string{mxTopic}
			return r
		}}},
		77: {{name: "ShareGroupDescribe", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrShareGroupDescribeRequest()
			r.GroupIDs = []string{"orders-share"}
			return r
		}}},
		78: {{name: "ShareFetch", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrShareFetchRequest()
			r.GroupID, r.MemberID, r.ShareSessionEpoch, r.MaxWaitMillis, r.MinBytes, r.MaxBytes, r.MaxRecords, r.BatchSize = str("orders-share"), str(shareMember), 0, 10, 1, 1<<20, 10, 10
			r.Topics = []kmsg.ShareFetchRequestTopic{{TopicID: topicID, Partitions: []kmsg.ShareFetchRequestTopicPartition{{Partition: 0}}}}
			return r
		}}},
		79: {{name: "ShareAcknowledge", want: gf, req: func() kmsg.Request {
			r := kmsg.NewPtrShareAcknowledgeRequest()
			r.GroupID, r.MemberID, r.ShareSessionEpoch = str("orders-share"), str(shareMember), 1
			r.Topics = []kmsg.ShareAcknowledgeRequestTopic{{TopicID: topicID, Partitions: []kmsg.ShareAcknowledgeRequestTopicPartition{{Partition: 0,
				AcknowledgementBatches: []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 0, LastOffset: 0, AcknowledgeTypes: []int8{1}}}}}}}
			return r
		}}},
	}
	// Bob's own group, alice's topic: the topic's check refuses.
	withGroup := func(key int16, name, g string) {
		base := rows[key][0]
		rows[key] = append(rows[key], kafkaRow{name: name, want: tf, req: base.req, denied: func() kmsg.Request {
			r := base.req()
			switch r := r.(type) {
			case *kmsg.OffsetCommitRequest:
				r.Group = g
			case *kmsg.OffsetFetchRequest:
				r.Group, r.Groups[0].Group = g, g
			case *kmsg.OffsetDeleteRequest:
				r.Group = g
			case *kmsg.ShareGroupHeartbeatRequest:
				r.GroupID = g
			case *kmsg.ShareFetchRequest:
				r.GroupID = &g
			case *kmsg.ShareAcknowledgeRequest:
				r.GroupID = &g
			}
			return r
		}})
	}
	withGroup(8, "OffsetCommit(bobs-g, orders)", "bobs-g")
	withGroup(9, "OffsetFetch(bobs-g, orders)", "bobs-g")
	withGroup(47, "OffsetDelete(bobs-g, orders)", "bobs-g")
	withGroup(76, "ShareGroupHeartbeat(bobs-share, orders)", "bobs-share")
	withGroup(78, "ShareFetch(bobs-share, orders)", "bobs-share")
	withGroup(79, "ShareAcknowledge(bobs-share, orders)", "bobs-share")
	// Binding a topic to a schema subject needs describe on the subject:
	// bob's own topic, alice's subject.
	subjectCfg := kmsg.StringPtr(mxSubject)
	createBound := func(topic string) func() kmsg.Request {
		return func() kmsg.Request {
			r := kmsg.NewPtrCreateTopicsRequest()
			r.TimeoutMillis = 5000
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, -1
			rt.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "spool.schema.subject", Value: subjectCfg}}
			r.Topics = append(r.Topics, rt)
			return r
		}
	}
	alterBound := func(topic string) func() kmsg.Request {
		return func() kmsg.Request {
			r := kmsg.NewPtrAlterConfigsRequest()
			r.ValidateOnly = true
			r.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: topic,
				Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "spool.schema.subject", Value: subjectCfg}}}}
			return r
		}
	}
	incBound := func(topic string) func() kmsg.Request {
		return func() kmsg.Request {
			r := kmsg.NewPtrIncrementalAlterConfigsRequest()
			r.ValidateOnly = true
			r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: topic,
				Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "spool.schema.subject", Op: kmsg.IncrementalAlterConfigOpSet, Value: subjectCfg}}}}
			return r
		}
	}
	rows[19] = append(rows[19], kafkaRow{name: "CreateTopics(bound to orders-value)", want: tf, req: createBound("orders-kbound"), denied: createBound("bobs-kbound")})
	rows[33] = append(rows[33], kafkaRow{name: "AlterConfigs(bound to orders-value)", want: tf, req: alterBound("orders-alter"), denied: alterBound(mxBobTopic)})
	rows[44] = append(rows[44], kafkaRow{name: "IncrementalAlterConfigs(bound to orders-value)", want: tf, req: incBound("orders-alter"), denied: incBound(mxBobTopic)})
	// DeleteTopics by id only (v6): the id's topic is checked.
	rows[20] = append(rows[20], kafkaRow{name: "DeleteTopics(by id)", want: tf, req: func() kmsg.Request {
		r := kmsg.NewPtrDeleteTopicsRequest()
		r.TimeoutMillis = 5000
		r.Topics = []kmsg.DeleteTopicsRequestTopic{{TopicID: e.kafkaTopicID("orders-kdel2")}}
		return r
	}})
	return rows
}

// kafkaTopicID returns a topic's id (zero for none).
func (e *mxEnv) kafkaTopicID(name string) [16]byte {
	t, ok := e.srv.broker.Topic(name)
	if !ok {
		return [16]byte{}
	}
	return kwire.UUIDBytes(t.ID)
}

// kafkaMatrix sends every advertised API as bob (refused) and alice.
func (e *mxEnv) kafkaMatrix(t *testing.T) {
	root := e.kafka(t, "root")
	// Topics the requests need that the native setup did not create.
	cr := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range []string{"orders-kdel", "orders-kdel2", "t"} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, -1
		cr.Topics = append(cr.Topics, rt)
	}
	if _, err := kreq(root, cr); err != nil {
		t.Fatal(err)
	}
	mr := kmsg.NewPtrMetadataRequest()
	mr.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(mxTopic)}}
	resp, err := kreq(root, mr)
	if err != nil {
		t.Fatal(err)
	}
	meta := resp.(*kmsg.MetadataResponse)
	if len(meta.Topics) != 1 || meta.Topics[0].ErrorCode != 0 || len(meta.Brokers) == 0 {
		t.Fatalf("metadata of %s: %+v", mxTopic, meta)
	}
	topicID, node := meta.Topics[0].TopicID, meta.Brokers[0].NodeID

	// Committed offsets of bob's group on his topic: OffsetDelete of his
	// group reaches its topics' checks.
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.Generation = "bobs-g", -1
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: mxBobTopic, TopicID: e.kafkaTopicID(mxBobTopic), Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}},
		{Topic: mxTopic, TopicID: e.kafkaTopicID(mxTopic), Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	if resp, err := kreq(root, oc); err != nil || slices.ContainsFunc(errorCodes(resp), func(c int16) bool { return c != 0 }) {
		t.Fatalf("commit bobs-g: %v %v", err, codeNames(errorCodes(resp)))
	}

	vr, err := kreq(root, kmsg.NewPtrApiVersionsRequest())
	if err != nil {
		t.Fatal(err)
	}
	var keys []int16
	for _, k := range vr.(*kmsg.ApiVersionsResponse).ApiKeys {
		keys = append(keys, k.ApiKey)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	clients := map[string]*kgo.Client{"alice": e.kafka(t, "alice"), "bob": e.kafka(t, "bob"), "dave": e.kafka(t, "dave")}
	rows := e.kafkaRows(topicID, node)
	for _, key := range keys {
		if kafkaOpen[key] {
			continue
		}
		name := kmsg.NameForKey(key)
		krs, ok := rows[key]
		if !ok {
			e.record("kafka", name, "-", "a matrix row", "none: add one to kafkaRows", false)
			continue
		}
		for _, row := range krs {
			denied := row.deniedAs
			if denied == "" {
				denied = "bob"
			}
			for _, user := range []string{denied, "alice"} {
				r := row.req()
				if user != "alice" && row.denied != nil {
					r = row.denied()
				}
				resp, err := kreq(clients[user], r)
				if err != nil {
					e.record("kafka", row.name, user, "an answer", err.Error(), false)
					continue
				}
				codes := errorCodes(resp)
				if user == "alice" {
					e.record("kafka", row.name, user, "no authorization error", codeNames(codes), !slices.ContainsFunc(codes, func(c int16) bool { return slices.Contains(authzCodes, c) }))
				} else {
					e.record("kafka", row.name, user, kerr.ErrorForCode(row.want).(*kerr.Error).Message, codeNames(codes), slices.Contains(codes, row.want))
				}
			}
		}
	}
	e.kafkaLists(clients)
	e.kafkaAuthorizedOps(t, root, clients)
	e.kafkaACLs(t, root, clients["bob"])
}

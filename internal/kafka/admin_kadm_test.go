package kafka_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/server"
)

// adServer starts a server on dir with small segments (so DeleteRecords
// and retention have segments to drop).
func adServer(t *testing.T, dir string) *server.Server {
	t.Helper()
	return spooltest.StartServer(t, spooltest.Dir(dir), spooltest.Config(func(c *server.Config) {
		c.Storage = server.StorageConfig{SegmentBytes: 64 << 10, MaxBatchBytes: 32 << 10}
	})).Server()
}

// adRandom returns incompressible bytes (kgo compresses by default).
func adRandom(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func adClients(t *testing.T, srv *server.Server, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(srv.KafkaAddr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

func TestAdminCreatePartitions(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, adm := adClients(t, srv, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "grow"); err != nil {
		t.Fatal(err)
	}
	resps, err := adm.UpdatePartitions(ctx, 5, "grow")
	if err != nil || resps["grow"].Err != nil {
		t.Fatalf("grow to 5: %v %v", err, resps["grow"].Err)
	}
	for _, tc := range []struct {
		set  int
		want error
	}{{5, kerr.InvalidPartitions}, {3, kerr.InvalidPartitions}, {2000, kerr.InvalidPartitions}} {
		resps, err = adm.UpdatePartitions(ctx, tc.set, "grow")
		if err != nil || !errors.Is(resps["grow"].Err, tc.want) {
			t.Fatalf("set %d: %v %v, want %v", tc.set, err, resps["grow"].Err, tc.want)
		}
	}
	resps, err = adm.UpdatePartitions(ctx, 9, "no-such-topic")
	if err != nil || !errors.Is(resps["no-such-topic"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("unknown topic: %v %v", err, resps["no-such-topic"].Err)
	}
	// The client sees the new partitions and can produce to and consume from them.
	td, err := adm.ListTopics(ctx, "grow")
	if err != nil || len(td["grow"].Partitions) != 5 {
		t.Fatalf("metadata: %v %v", err, td["grow"].Partitions)
	}
	for p := range int32(5) {
		r := &kgo.Record{Topic: "grow", Partition: p, Value: fmt.Appendf(nil, "p%d", p)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", p, err)
		}
	}
	cons, _ := adClients(t, srv, kgo.ConsumeTopics("grow"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[int32]bool{}
	for len(got) < 5 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[r.Partition] = true })
	}
	// The count survives a restart.
	info, err := serverhook.Broker(srv).DescribeTopic("grow")
	if err != nil || len(info.Partitions) != 5 || info.Topic.Config.Partitions != 5 {
		t.Fatalf("describe: %v %+v", err, info)
	}
}

func TestAdminCreatePartitionsSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv := adServer(t, dir)
	ctx := context.Background()
	_, adm := adClients(t, srv)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "g2"); err != nil {
		t.Fatal(err)
	}
	if resps, err := adm.CreatePartitions(ctx, 2, "g2"); err != nil || resps["g2"].Err != nil {
		t.Fatalf("add 2: %v %v", err, resps["g2"].Err)
	}
	srv.Shutdown(ctx)
	srv = adServer(t, dir)
	if meta, ok := serverhook.Broker(srv).Topic("g2"); !ok || meta.Config.Partitions != 3 {
		t.Fatalf("after restart: %+v", meta)
	}
	if _, end, err := serverhook.Broker(srv).Offsets("g2", 2); err != nil || end != 0 {
		t.Fatalf("new partition after restart: %d %v", end, err)
	}
}

func adConfig(t *testing.T, adm *kadm.Client, topic, name string) kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == name {
			return c
		}
	}
	t.Fatalf("config %s not described", name)
	return kadm.Config{}
}

func TestAdminConfigsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	srv := pfServer(t, dir)
	ctx := context.Background()
	cl, adm := adClients(t, srv)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "cfg"); err != nil {
		t.Fatal(err)
	}
	// A topic whose messages the logs could not store is refused.
	huge := "33554432"
	if r, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &huge}, "huge"); !errors.Is(err, kerr.InvalidConfig) && !errors.Is(r.Err, kerr.InvalidConfig) {
		t.Fatalf("create with max.message.bytes=%s: %v %v", huge, err, r.Err)
	}
	// Defaults.
	for name, want := range map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "max.message.bytes": "1048576",
		"cleanup.policy": "delete", "min.insync.replicas": "1"} {
		c := adConfig(t, adm, "cfg", name)
		if c.MaybeValue() != want || c.Source != kmsg.ConfigSourceDefaultConfig {
			t.Fatalf("%s = %q (source %v), want %q default", name, c.MaybeValue(), c.Source, want)
		}
	}
	str := func(s string) *string { return &s }
	// Validation only changes nothing; bad values are INVALID_CONFIG.
	vr, err := adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: str("5000")}}, "cfg")
	if err != nil || vr[0].Err != nil {
		t.Fatalf("validate: %v %v", err, vr)
	}
	if c := adConfig(t, adm, "cfg", "retention.ms"); c.MaybeValue() != "-1" {
		t.Fatalf("validate-only changed retention.ms to %s", c.MaybeValue())
	}
	for _, bad := range []kadm.AlterConfig{
		{Name: "retention.ms", Value: str("soon")},
		{Name: "max.message.bytes", Value: str("0")},
		{Name: "max.message.bytes", Value: str("33554432")}, // beyond what the logs store
		{Name: "cleanup.policy", Value: str("compact")},
		{Name: "no.such.config", Value: str("1")},
		{Name: "cleanup.policy", Op: kadm.SubtractConfig, Value: str("delete")},
	} {
		r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{bad}, "cfg")
		if err != nil || !errors.Is(r[0].Err, kerr.InvalidConfig) {
			t.Fatalf("%s=%s: %v %v", bad.Name, *bad.Value, err, r)
		}
	}
	// Set, then describe.
	r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Name: "retention.ms", Value: str("3600000")},
		{Name: "retention.bytes", Value: str("1000000")},
		{Name: "max.message.bytes", Value: str("2048")},
		{Name: "cleanup.policy", Op: kadm.AppendConfig, Value: str("delete")},
	}, "cfg")
	if err != nil || r[0].Err != nil {
		t.Fatalf("alter: %v %v %s", err, r[0].Err, r[0].ErrMessage)
	}
	for name, want := range map[string]string{"retention.ms": "3600000", "retention.bytes": "1000000", "max.message.bytes": "2048"} {
		c := adConfig(t, adm, "cfg", name)
		if c.MaybeValue() != want || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Fatalf("%s = %q (source %v), want %q dynamic", name, c.MaybeValue(), c.Source, want)
		}
		if len(c.Synonyms) != 2 || !strings.Contains(c.Synonyms[1].Key, ".") {
			t.Fatalf("%s synonyms %+v", name, c.Synonyms)
		}
	}
	meta, _ := serverhook.Broker(srv).Topic("cfg")
	if meta.Config.Retention != time.Hour || meta.Config.RetentionBytes != 1000000 || meta.Config.MaxMessageBytes != 2048 {
		t.Fatalf("topic config %+v", meta.Config)
	}
	// max.message.bytes applies at once.
	big := adRandom(8000)
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "cfg", Value: big}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("8 KB record with max.message.bytes=2048: %v", err)
	}
	// Changes survive a restart.
	srv.Shutdown(ctx)
	srv = pfServer(t, dir)
	_, adm = adClients(t, srv)
	if c := adConfig(t, adm, "cfg", "retention.ms"); c.MaybeValue() != "3600000" {
		t.Fatalf("retention.ms after restart: %s", c.MaybeValue())
	}
	// DELETE returns to the default.
	r, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Op: kadm.DeleteConfig}}, "cfg")
	if err != nil || r[0].Err != nil {
		t.Fatalf("delete: %v %v", err, r)
	}
	if c := adConfig(t, adm, "cfg", "max.message.bytes"); c.MaybeValue() != "1048576" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("max.message.bytes after DELETE: %s %v", c.MaybeValue(), c.Source)
	}
	// AlterConfigs (non-incremental) replaces the whole set.
	r, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.bytes", Value: str("5000000")}}, "cfg")
	if err != nil || r[0].Err != nil {
		t.Fatalf("alter state: %v %v", err, r)
	}
	if c := adConfig(t, adm, "cfg", "retention.ms"); c.MaybeValue() != "-1" {
		t.Fatalf("retention.ms after AlterConfigs without it: %s", c.MaybeValue())
	}
	if c := adConfig(t, adm, "cfg", "retention.bytes"); c.MaybeValue() != "5000000" {
		t.Fatalf("retention.bytes after AlterConfigs: %s", c.MaybeValue())
	}
	// Broker configs: described, read-only.
	brcs, err := adm.DescribeBrokerConfigs(ctx, 0)
	if err != nil || len(brcs) != 1 || brcs[0].Err != nil || len(brcs[0].Configs) == 0 {
		t.Fatalf("broker configs: %v %+v", err, brcs)
	}
	// Unknown topics.
	rcs, err := adm.DescribeTopicConfigs(ctx, "nope")
	if err == nil && (len(rcs) != 1 || !errors.Is(rcs[0].Err, kerr.UnknownTopicOrPartition)) {
		t.Fatalf("unknown topic: %+v", rcs)
	}
}

// Spool's own topic configs, the schema binding and the event catalog:
// set at creation, described, changed (SET, DELETE, AlterConfigs), checked,
// and kept across a restart.
func TestAdminSpoolConfigs(t *testing.T) {
	dir := t.TempDir()
	srv := pfServer(t, dir)
	ctx := context.Background()
	_, adm := adClients(t, srv)
	str := func(s string) *string { return &s }
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"spool.schema.subject": str("orders-value"), "spool.schema.mode": str("dead-letter"),
		"spool.owner": str("payments"), "spool.description": str("One event per order."), "spool.labels": str("tier=1,pii="),
	}, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "plain"); err != nil {
		t.Fatal(err)
	}
	expect := func(topic string, want map[string]string) {
		t.Helper()
		for name, v := range want {
			c := adConfig(t, adm, topic, name)
			src := kmsg.ConfigSourceDynamicTopicConfig
			if v == "" || (name == "spool.schema.mode" && v == "reject") {
				src = kmsg.ConfigSourceDefaultConfig
			}
			if c.MaybeValue() != v || c.Source != src {
				t.Errorf("%s %s = %q (source %v), want %q (%v)", topic, name, c.MaybeValue(), c.Source, v, src)
			}
		}
	}
	expect("orders", map[string]string{"spool.schema.subject": "orders-value", "spool.schema.mode": "dead-letter",
		"spool.owner": "payments", "spool.description": "One event per order.", "spool.labels": "pii=,tier=1"})
	expect("plain", map[string]string{"spool.schema.subject": "", "spool.schema.mode": "reject",
		"spool.owner": "", "spool.description": "", "spool.labels": ""})
	meta, _ := serverhook.Broker(srv).Topic("orders")
	if c := meta.Config; c.SchemaSubject != "orders-value" || c.SchemaMode != catalog.SchemaDeadLetter || c.Owner != "payments" ||
		len(c.Labels) != 2 || c.Labels["tier"] != "1" {
		t.Fatalf("topic config %+v", c)
	}

	// Bad values are INVALID_CONFIG, at creation and on change, and change
	// nothing.
	for _, bad := range []kadm.AlterConfig{
		{Name: "spool.schema.mode", Value: str("drop")},
		{Name: "spool.labels", Value: str("tier")},
		{Name: "spool.labels", Value: str("a=1,a=2")},
		{Name: "spool.labels", Value: str("a=1,")},
		{Name: "spool.owner", Value: str(strings.Repeat("o", 300))},
		{Name: "spool.schema.subject", Value: str(strings.Repeat("s", 300))},
		{Name: "spool.description", Value: str(strings.Repeat("d", 17<<10))},
	} {
		r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{bad}, "orders")
		if err != nil || !errors.Is(r[0].Err, kerr.InvalidConfig) {
			t.Errorf("%s=%.20s: %v %v", bad.Name, *bad.Value, err, r)
		}
		vr, err := adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{bad}, "orders")
		if err != nil || !errors.Is(vr[0].Err, kerr.InvalidConfig) {
			t.Errorf("validate %s=%.20s: %v %v", bad.Name, *bad.Value, err, vr)
		}
		cr, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{bad.Name: bad.Value}, "refused")
		if !errors.Is(err, kerr.InvalidConfig) && !errors.Is(cr.Err, kerr.InvalidConfig) {
			t.Errorf("create with %s=%.20s: %v %v", bad.Name, *bad.Value, err, cr.Err)
		}
	}
	expect("orders", map[string]string{"spool.schema.subject": "orders-value", "spool.schema.mode": "dead-letter", "spool.labels": "pii=,tier=1"})

	// SET each; the others stay.
	r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Name: "spool.schema.subject", Value: str("orders-v2")},
		{Name: "spool.schema.mode", Value: str("reject")},
		{Name: "spool.owner", Value: str("billing")},
		{Name: "spool.labels", Value: str("region=eu")},
	}, "orders")
	if err != nil || r[0].Err != nil {
		t.Fatalf("alter: %v %v %s", err, r[0].Err, r[0].ErrMessage)
	}
	expect("orders", map[string]string{"spool.schema.subject": "orders-v2", "spool.schema.mode": "reject",
		"spool.owner": "billing", "spool.description": "One event per order.", "spool.labels": "region=eu"})
	// DELETE returns to the default (unbound, no labels).
	r, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "spool.labels", Op: kadm.DeleteConfig}, {Name: "spool.owner", Op: kadm.DeleteConfig}}, "orders")
	if err != nil || r[0].Err != nil {
		t.Fatalf("delete: %v %v", err, r)
	}
	expect("orders", map[string]string{"spool.schema.subject": "orders-v2", "spool.owner": "", "spool.labels": ""})
	if meta, _ := serverhook.Broker(srv).Topic("orders"); meta.Config.Labels != nil || meta.Config.Owner != "" {
		t.Fatalf("after DELETE: %+v", meta.Config)
	}

	// Changes survive a restart.
	srv.Shutdown(ctx)
	srv = pfServer(t, dir)
	_, adm = adClients(t, srv)
	expect("orders", map[string]string{"spool.schema.subject": "orders-v2", "spool.schema.mode": "reject", "spool.description": "One event per order."})

	// AlterConfigs (non-incremental) replaces the whole set, the spool.*
	// configs included.
	r, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "spool.schema.mode", Value: str("dead-letter")}}, "orders")
	if err != nil || r[0].Err != nil {
		t.Fatalf("alter state: %v %v", err, r)
	}
	expect("orders", map[string]string{"spool.schema.subject": "", "spool.schema.mode": "dead-letter", "spool.description": ""})
}

// Retention set at run time is enforced on the open logs.
func TestAdminRetentionApplies(t *testing.T) {
	srv := adServer(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, adm := adClients(t, srv, kgo.DefaultProduceTopic("ret"), kgo.ProducerBatchMaxBytes(16<<10))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "ret"); err != nil {
		t.Fatal(err)
	}
	val := adRandom(1000)
	for range 300 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	info, _ := serverhook.Broker(srv).DescribeTopic("ret")
	before := info.Bytes
	s := "100000"
	if r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.bytes", Value: &s}}, "ret"); err != nil || r[0].Err != nil {
		t.Fatalf("alter: %v %v", err, r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ = serverhook.Broker(srv).DescribeTopic("ret")
		if info.Partitions[0].StartOffset > 0 && info.Bytes < before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention.bytes not applied: %d bytes (was %d), start %d", info.Bytes, before, info.Partitions[0].StartOffset)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAdminDeleteRecords(t *testing.T) {
	dir := t.TempDir()
	srv := adServer(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, adm := adClients(t, srv, kgo.DefaultProduceTopic("dr"), kgo.ProducerBatchMaxBytes(16<<10))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "dr"); err != nil {
		t.Fatal(err)
	}
	val := adRandom(1000)
	for range 200 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	infoBefore, _ := serverhook.Broker(srv).DescribeTopic("dr")
	var os kadm.Offsets
	os.AddOffset("dr", 0, 150, -1)
	dr, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := dr.Lookup("dr", 0); !ok || r.Err != nil || r.LowWatermark != 150 {
		t.Fatalf("delete records: %+v", r)
	}
	starts, err := adm.ListStartOffsets(ctx, "dr")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("dr", 0); o.Offset != 150 {
		t.Fatalf("earliest offset %d, want 150", o.Offset)
	}
	infoAfter, _ := serverhook.Broker(srv).DescribeTopic("dr")
	if infoAfter.Bytes >= infoBefore.Bytes {
		t.Fatalf("no segment deleted: %d bytes before, %d after", infoBefore.Bytes, infoAfter.Bytes)
	}
	// Records below are gone for consumers: a fetch at 0 is out of range,
	// and a consumer starting at the beginning starts at 150.
	cons, _ := adClients(t, srv, kgo.ConsumeTopics("dr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs := cons.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if rs := fs.Records(); len(rs) == 0 || rs[0].Offset != 150 {
		t.Fatalf("first record consumed: %+v", rs)
	}
	// Lower offsets change nothing; beyond the end is out of range.
	os = nil
	os.AddOffset("dr", 0, 10, -1)
	dr, _ = adm.DeleteRecords(ctx, os)
	if r, _ := dr.Lookup("dr", 0); r.Err != nil || r.LowWatermark != 150 {
		t.Fatalf("lower delete: %+v", r)
	}
	os = nil
	os.AddOffset("dr", 0, 500, -1)
	dr, _ = adm.DeleteRecords(ctx, os)
	if r, _ := dr.Lookup("dr", 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete beyond the end: %+v", r)
	}
	// The start survives a restart.
	srv.Shutdown(ctx)
	srv = adServer(t, dir)
	_, adm = adClients(t, srv)
	starts, err = adm.ListStartOffsets(ctx, "dr")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("dr", 0); o.Offset != 150 {
		t.Fatalf("earliest offset after restart %d, want 150", o.Offset)
	}
	// -1 deletes everything up to the high watermark.
	os = nil
	os.AddOffset("dr", 0, -1, -1)
	dr, _ = adm.DeleteRecords(ctx, os)
	if r, _ := dr.Lookup("dr", 0); r.Err != nil || r.LowWatermark != 200 {
		t.Fatalf("delete to the high watermark: %+v", r)
	}
}

func TestAdminOffsetForLeaderEpochAndCluster(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	cl, adm := adClients(t, srv, kgo.DefaultProduceTopic("ep"))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "ep"); err != nil {
		t.Fatal(err)
	}
	for range 7 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Stored batches carry leader epoch 0, whatever the producer wrote.
	raw, err := serverhook.Broker(srv).ReadRaw("ep", 0, 0, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := batch.ParseHeader(raw.Data); h.PartitionLeaderEpoch != 0 {
		t.Fatalf("stored leader epoch %d", h.PartitionLeaderEpoch)
	}
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = "ep"
	for _, e := range []struct{ current, epoch int32 }{{-1, 0}, {0, 0}, {-1, 3}, {-1, -1}, {2, 0}} {
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.CurrentLeaderEpoch, rp.LeaderEpoch = e.current, e.epoch
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := cl.Broker(0).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	ps := resp.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions
	want := []struct {
		code  int16
		epoch int32
		end   int64
	}{{0, 0, 7}, {0, 0, 7}, {0, 0, 7}, {0, -1, -1}, {kerr.UnknownLeaderEpoch.Code, -1, -1}}
	for i, w := range want {
		if p := ps[i]; p.ErrorCode != w.code || p.LeaderEpoch != w.epoch || p.EndOffset != w.end {
			t.Errorf("case %d: %+v, want %+v", i, p, w)
		}
	}
	// kadm's view.
	var er kadm.OffsetForLeaderEpochRequest
	er.Add("ep", 0, 0)
	eps, err := adm.OffsetForLeaderEpoch(ctx, er)
	if err != nil {
		t.Fatal(err)
	}
	if e := eps["ep"][0]; e.Err != nil || e.EndOffset != 7 || e.LeaderEpoch != 0 {
		t.Fatalf("kadm OffsetForLeaderEpoch: %+v", e)
	}

	// DescribeCluster.
	dreq := kmsg.NewPtrDescribeClusterRequest()
	dreq.IncludeClusterAuthorizedOperations = true
	dresp, err := cl.Broker(0).Request(ctx, dreq)
	if err != nil {
		t.Fatal(err)
	}
	d := dresp.(*kmsg.DescribeClusterResponse)
	if d.ErrorCode != 0 || d.ClusterID != "spool" || len(d.Brokers) != 1 || d.Brokers[0].Port == 0 || d.ClusterAuthorizedOperations <= 0 {
		t.Fatalf("describe cluster: %+v", d)
	}
	dreq.EndpointType = 2
	dresp, _ = cl.Broker(0).Request(ctx, dreq)
	if d := dresp.(*kmsg.DescribeClusterResponse); d.ErrorCode != kerr.UnsupportedEndpointType.Code {
		t.Fatalf("controller endpoints: %+v", d)
	}
	// Every API of this file and its neighbours is advertised.
	vresp, err := cl.Broker(0).Request(ctx, kmsg.NewPtrApiVersionsRequest())
	if err != nil {
		t.Fatal(err)
	}
	have := map[int16][2]int16{}
	for _, k := range vresp.(*kmsg.ApiVersionsResponse).ApiKeys {
		have[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	for key, want := range map[int16][2]int16{1: {4, 18}, 21: {0, 2}, 22: {0, 5}, 23: {0, 4}, 32: {0, 4}, 33: {0, 2}, 37: {0, 3}, 44: {0, 1}, 60: {0, 2}} {
		if have[key] != want {
			t.Errorf("%s advertised %v, want %v", kmsg.NameForKey(key), have[key], want)
		}
	}
	_ = catalog.MaxPartitions
}

// A single node holds the one replica of each partition: a reassignment is
// INVALID_REPLICA_ASSIGNMENT (an unknown partition UNKNOWN_TOPIC_OR_PARTITION)
// and none is ever listed.
func TestAdminReassignmentsSingleNode(t *testing.T) {
	srv := adServer(t, t.TempDir())
	cl, adm := adClients(t, srv)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "moves"); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = "moves"
	for _, p := range []int32{0, 7} {
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = p, []int32{0}
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	ps := resp.Topics[0].Partitions
	if len(ps) != 2 || ps[0].ErrorCode != kerr.InvalidReplicaAssignment.Code || ps[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("alter: %+v", ps)
	}
	lresp, err := kmsg.NewPtrListPartitionReassignmentsRequest().RequestWith(ctx, cl)
	if err != nil || lresp.ErrorCode != 0 || len(lresp.Topics) != 0 {
		t.Fatalf("list: %+v, %v", lresp, err)
	}
}

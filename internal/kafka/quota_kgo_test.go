package kafka_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/spooltest"
)

// throttleHook counts the throttles a kgo client is told of.
type throttleHook struct {
	n     atomic.Int64
	total atomic.Int64 // nanoseconds
}

func (h *throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	h.n.Add(1)
	h.total.Add(int64(d))
}

func describeQuotas(t *testing.T, ctx context.Context, adm *kadm.Client, strict bool, comps ...kadm.DescribeClientQuotaComponent) map[string]map[string]float64 {
	t.Helper()
	qs, err := adm.DescribeClientQuotas(ctx, strict, comps)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, q := range qs {
		vals := map[string]float64{}
		for _, v := range q.Values {
			vals[v.Key] = v.Value
		}
		out[strings.Trim(q.Entity.String(), "{}")] = vals
	}
	return out
}

// kadm's AlterClientQuotas and DescribeClientQuotas manage user and
// default quotas, refuse client-id entities and Kafka's
// request_percentage, and the quotas survive a restart.
func TestKadmClientQuotas(t *testing.T) {
	ts := spooltest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, adm := adClients(t, ts.Server())
	if got := describeQuotas(t, ctx, adm, false); len(got) != 0 {
		t.Fatalf("quotas before any: %v", got)
	}
	alice := "alice"
	userAlice := kadm.ClientQuotaEntity{{Type: "user", Name: &alice}}
	userDefault := kadm.ClientQuotaEntity{{Type: "user"}}
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: userAlice, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1048576}, {Key: "request_rate", Value: 100}}},
		{Entity: userDefault, Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Value: 2097152}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("alter %v: %v %s", r.Entity, r.Err, r.ErrMessage)
		}
	}
	want := map[string]map[string]float64{
		"user=alice":     {"producer_byte_rate": 1048576, "request_rate": 100},
		"user=<default>": {"consumer_byte_rate": 2097152},
	}
	check := func(when string) {
		t.Helper()
		got := describeQuotas(t, ctx, adm, false)
		if len(got) != 2 || got["user=alice"]["producer_byte_rate"] != 1048576 || got["user=alice"]["request_rate"] != 100 ||
			got["user=<default>"]["consumer_byte_rate"] != 2097152 {
			t.Fatalf("%s: described %v, want %v", when, got, want)
		}
	}
	check("after alter")
	// Filters: a name exactly, the default, any; client-id matches nothing.
	if got := describeQuotas(t, ctx, adm, false, kadm.DescribeClientQuotaComponent{Type: "user", MatchName: &alice}); len(got) != 1 || got["user=alice"] == nil {
		t.Fatalf("exact: %v", got)
	}
	if got := describeQuotas(t, ctx, adm, true, kadm.DescribeClientQuotaComponent{Type: "user", MatchType: 1}); len(got) != 1 || got["user=<default>"] == nil {
		t.Fatalf("default: %v", got)
	}
	if got := describeQuotas(t, ctx, adm, false, kadm.DescribeClientQuotaComponent{Type: "user", MatchType: 2}); len(got) != 2 {
		t.Fatalf("any: %v", got)
	}
	if got := describeQuotas(t, ctx, adm, false, kadm.DescribeClientQuotaComponent{Type: "client-id", MatchType: 2}); len(got) != 0 {
		t.Fatalf("client-id: %v", got)
	}
	// Refusals.
	client := "app"
	for _, c := range []struct {
		entry kadm.AlterClientQuotaEntry
		msg   string
	}{
		{kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: &client}},
			Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1}}}, "client-id entities are not supported"},
		{kadm.AlterClientQuotaEntry{Entity: kadm.ClientQuotaEntity{{Type: "user", Name: &alice}, {Type: "client-id", Name: &client}},
			Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1}}}, "client-id entities are not supported"},
		{kadm.AlterClientQuotaEntry{Entity: userAlice, Ops: []kadm.AlterClientQuotaOp{{Key: "request_percentage", Value: 50}}}, "request_rate"},
		{kadm.AlterClientQuotaEntry{Entity: userAlice, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: -1}}}, "not a rate"},
	} {
		res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{c.entry})
		if err != nil || len(res) != 1 || !errors.Is(res[0].Err, kerr.InvalidRequest) || !strings.Contains(res[0].ErrMessage, c.msg) {
			t.Fatalf("alter %v: %v %+v, want INVALID_REQUEST with %q", c.entry, err, res, c.msg)
		}
	}
	// Validation only changes nothing.
	res, err = adm.ValidateAlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: userAlice, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Remove: true}}}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("validate: %v %+v", err, res)
	}
	check("after validate-only")

	ts.Restart()
	_, adm = adClients(t, ts.Server())
	check("after restart")

	// Removing every key of an entity removes it.
	res, err = adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: userDefault, Ops: []kadm.AlterClientQuotaOp{{Key: "consumer_byte_rate", Remove: true}}}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("remove: %v %+v", err, res)
	}
	if got := describeQuotas(t, ctx, adm, false); len(got) != 1 || got["user=<default>"] != nil {
		t.Fatalf("after removing the default's only key: %v", got)
	}
}

// A producer over its producer_byte_rate is throttled: its responses carry
// throttle_time_ms (kgo's HookBrokerThrottle hears them) and it is held
// near the quota; a consumer over its consumer_byte_rate likewise.
// Anonymous connections are held by the default quota.
func TestKgoQuotaThrottle(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, adm := adClients(t, srv)
	const rate = 256 << 10
	setDefault := func(key string, v float64) {
		t.Helper()
		res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
			{Entity: kadm.ClientQuotaEntity{{Type: "user"}}, Ops: []kadm.AlterClientQuotaOp{{Key: key, Value: v}}}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("set %s: %v %+v", key, err, res)
		}
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "throttled"); err != nil {
		t.Fatal(err)
	}
	setDefault("producer_byte_rate", rate)

	ph := &throttleHook{}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.WithHooks(ph), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(64<<10), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	const total = 1536 << 10 // six times the quota: about five seconds beyond the one-second burst
	const size = 16 << 10
	start := time.Now()
	var wg sync.WaitGroup
	var perr atomic.Value
	for range total / size {
		wg.Add(1)
		pcl.Produce(ctx, &kgo.Record{Topic: "throttled", Value: adRandom(size)}, func(_ *kgo.Record, err error) {
			if err != nil {
				perr.Store(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if err, _ := perr.Load().(error); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	achieved := float64(total) / took.Seconds()
	t.Logf("produced %d KiB in %v: %.0f KiB/s under a quota of %d KiB/s; %d throttles, %v in all",
		total>>10, took, achieved/1024, rate>>10, ph.n.Load(), time.Duration(ph.total.Load()))
	if ph.n.Load() == 0 {
		t.Fatal("the producer was never throttled")
	}
	// The burst lets one second's worth through at once: over the run the
	// rate is at most the quota with that burst, and not far below it.
	if limit := float64(total) / (float64(total-rate) / rate); achieved > limit*1.1 || achieved < rate*0.5 {
		t.Fatalf("achieved %.0f B/s, quota %d B/s (at most %.0f with the burst)", achieved, rate, limit)
	}

	setDefault("consumer_byte_rate", rate)
	ch := &throttleHook{}
	ccl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.WithHooks(ch), kgo.ConsumeTopics("throttled"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(128<<10), kgo.FetchMaxPartitionBytes(128<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer ccl.Close()
	start = time.Now()
	got := 0
	for got < total/size {
		fs := ccl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	took = time.Since(start)
	t.Logf("consumed %d KiB in %v; %d throttles, %v in all", total>>10, took, ch.n.Load(), time.Duration(ch.total.Load()))
	if ch.n.Load() == 0 || took < 3*time.Second {
		t.Fatalf("the consumer was not held to its quota: %d throttles, %v", ch.n.Load(), took)
	}
}

// request_rate throttles every kind of request: Metadata responses carry
// throttle_time_ms once a user's requests go past it.
func TestKgoQuotaRequestRate(t *testing.T) {
	srv := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, adm := adClients(t, srv)
	anon := "ANONYMOUS"
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: kadm.ClientQuotaEntity{{Type: "user", Name: &anon}}, Ops: []kadm.AlterClientQuotaOp{{Key: "request_rate", Value: 10}}}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("set: %v %+v", err, res)
	}
	start := time.Now()
	throttled := 0
	for range 30 {
		req := kmsg.NewPtrMetadataRequest()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ThrottleMillis > 0 {
			throttled++
		}
	}
	took := time.Since(start)
	// 30 requests at 10 a second, 10 of them in the burst: about 2 s.
	if throttled == 0 || took < 1500*time.Millisecond {
		t.Fatalf("30 requests at 10/s: %d throttled, took %v", throttled, took)
	}
}

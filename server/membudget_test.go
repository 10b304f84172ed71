package server

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spoolmq/spool/bytesize"
	"github.com/spoolmq/spool/client"
)

// The budgets derive from memory.limit, and what Kafka produces and native
// publishes charge them is all given back once they are answered, also
// when more was offered at once than they hold.
func TestMemoryBudgetsDeriveAndDrain(t *testing.T) {
	srv, err := New(Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", KafkaAddr: "127.0.0.1:0", Logger: quiet,
		MemoryLimit: 128 * bytesize.MiB})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	kb, pb, ib := srv.kafka.ProduceBudget(), srv.api.PublishBudget(), srv.api.PublishIntake()
	if kb.Limit() != 8<<20 || pb.Limit() != 32<<20 || ib.Limit() != 8<<20 {
		t.Fatalf("budgets under 128 MiB: kafka %d, publish %d, intake %d", kb.Limit(), pb.Limit(), ib.Limit())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	value := make([]byte, 512<<10)
	kc := kafkaClient(t, srv, kgo.DefaultProduceTopic("budget"), kgo.AllowAutoTopicCreation())
	var recs []*kgo.Record
	for range 48 { // 24 MiB: three times the produce budget
		recs = append(recs, &kgo.Record{Value: value})
	}
	if err := kc.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	c, err := client.New("http://" + srv.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 { // 16 × 1 MiB at once: 32 MiB of intake charges, four times the intake
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := []client.Message{{Value: value}, {Value: value}}
			if _, err := c.Publish(ctx, "budget", msgs...); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	refusedAll := 0
	for err := range errs {
		if client.IsRetriable(err) {
			refusedAll++ // refused by the intake on every attempt: allowed, it is retriable
			continue
		}
		t.Errorf("publish: %v", err)
	}
	if refusedAll == 16 {
		t.Error("every publish was refused")
	}
	if st := kb.Stats(); st.InUse != 0 {
		t.Errorf("kafka produce budget still holds %d B after every produce was answered (%+v)", st.InUse, st)
	}
	if st := pb.Stats(); st.InUse != 0 {
		t.Errorf("publish budget still holds %d B (%+v)", st.InUse, st)
	}
	if st := ib.Stats(); st.InUse != 0 {
		t.Errorf("publish intake still holds %d B (%+v)", st.InUse, st)
	}
	t.Logf("kafka %+v; publish %+v; intake %+v", kb.Stats(), pb.Stats(), ib.Stats())
}

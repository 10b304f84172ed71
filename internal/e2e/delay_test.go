package e2e

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// TestDelayedDeliveryAcrossRestart publishes delayed messages, kills the
// server before they are due, restarts it, and checks each is delivered on
// time (not early, and less than half a second late).
func TestDelayedDeliveryAcrossRestart(t *testing.T) {
	dir, addr := t.TempDir(), freePort(t)
	p := startSpool(t, dir, addr)
	c := newClients(addr)
	c.createTopic(t, "later", nil)
	c.createSub(t, "later", "q", &spoolv1.SubscriptionConfig{Mode: spoolv1.Mode_MODE_QUEUE})
	delays := map[string]time.Duration{"d1": 1500 * time.Millisecond, "d2": 2500 * time.Millisecond}
	sent := time.Now()
	for v, d := range delays {
		if _, err := c.publish.Publish(context.Background(), connect.NewRequest(&spoolv1.PublishRequest{Topic: "later",
			Messages: []*spoolv1.Message{{Value: []byte(v), Delay: durationpb.New(d)}}})); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	p.kill()
	c.close()
	p = startSpool(t, dir, addr)
	defer p.stop()
	c = newClients(addr)
	defer c.close()
	cs := c.join(t, "later", "q", 100)
	defer cs.close()
	for len(delays) > 0 {
		got := cs.receive(t, 1, 5*time.Second)
		if len(got) == 0 {
			t.Fatalf("delayed messages %v never delivered", delays)
		}
		at := time.Since(sent)
		for _, d := range got {
			want, ok := delays[string(d.Value)]
			if !ok {
				t.Fatalf("unexpected %q", d.Value)
			}
			if at < want || at > want+500*time.Millisecond {
				t.Fatalf("%s delivered %v after publish, due after %v", d.Value, at, want)
			}
			delete(delays, string(d.Value))
		}
	}
}

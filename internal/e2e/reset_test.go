package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// postJSON calls a native API method with plain JSON over HTTP, as curl
// would, and decodes the answer into out.
func postJSON(t *testing.T, addr, method, body string, out any) int {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/spool.v1."+method, "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s: %v: %s", method, err, data)
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Logf("%s: %d %s", method, resp.StatusCode, data)
	}
	return resp.StatusCode
}

// ackAll acknowledges deliveries on the stream.
func (cs *consumer) ackAll(t *testing.T, ds []*spoolv1.Delivery) {
	t.Helper()
	var rs []*spoolv1.OffsetRange
	for _, d := range ds {
		rs = append(rs, &spoolv1.OffsetRange{Partition: d.Partition, From: d.Offset, To: d.Offset + 1})
	}
	if err := cs.stream.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Ack{Ack: &spoolv1.Ack{Ranges: rs, RequestId: 1}}}); err != nil {
		t.Fatal(err)
	}
}

// A queue reset and a purge, made with plain JSON over HTTP, are durable
// when answered: a SIGKILL right after loses neither.
func TestQueueResetAndPurgeSurviveKill(t *testing.T) {
	dir, addr := t.TempDir(), freePort(t)
	p := startSpool(t, dir, addr)
	c := newClients(addr)
	c.createTopic(t, "jobs", nil)
	c.createSub(t, "jobs", "w", &spoolv1.SubscriptionConfig{Mode: spoolv1.Mode_MODE_QUEUE})
	publish(t, c, "jobs", values("job", 5)...)
	cs := c.join(t, "jobs", "w", 100)
	got := cs.receive(t, 5, 5*time.Second)
	if len(got) != 5 {
		t.Fatalf("received %d", len(got))
	}
	cs.ackAll(t, got)
	time.Sleep(500 * time.Millisecond) // acks are saved every 50 ms
	cs.close()

	var reset struct {
		Partitions []struct {
			CommittedOffset string `json:"committedOffset"`
		} `json:"partitions"`
	}
	if code := postJSON(t, addr, "SubscriptionService/ResetSubscription",
		`{"topic":"jobs","name":"w","to":{"earliest":true},"partition":0}`, &reset); code != http.StatusOK {
		t.Fatalf("reset: HTTP %d", code)
	}
	if len(reset.Partitions) != 1 {
		t.Fatalf("reset answer %+v", reset)
	}
	p.kill()
	c.close()

	p = startSpool(t, dir, addr)
	c = newClients(addr)
	cs = c.join(t, "jobs", "w", 100)
	if again := cs.receive(t, 5, 5*time.Second); len(again) != 5 {
		t.Fatalf("after reset and SIGKILL: %d delivered, want 5", len(again))
	}
	cs.close()

	var purge struct {
		Skipped string `json:"skipped"`
	}
	if code := postJSON(t, addr, "SubscriptionService/PurgeSubscription", `{"topic":"jobs","name":"w"}`, &purge); code != http.StatusOK {
		t.Fatalf("purge: HTTP %d", code)
	}
	if purge.Skipped != "5" {
		t.Fatalf("purge skipped %q, want 5", purge.Skipped)
	}
	if code := postJSON(t, addr, "SubscriptionService/PurgeSubscription", `{"topic":"jobs","name":"w","partition":3}`, nil); code != http.StatusBadRequest {
		t.Fatalf("purge of a missing partition: HTTP %d, want 400", code)
	}
	if code := postJSON(t, addr, "SubscriptionService/ResetSubscription", `{"topic":"jobs","name":"w"}`, nil); code != http.StatusBadRequest {
		t.Fatalf("reset without a position: HTTP %d, want 400", code)
	}
	p.kill()
	c.close()

	p = startSpool(t, dir, addr)
	defer p.stop()
	c = newClients(addr)
	defer c.close()
	cs = c.join(t, "jobs", "w", 100)
	defer cs.close()
	if left := cs.receive(t, 1, time.Second); len(left) != 0 {
		t.Fatalf("after purge and SIGKILL %d delivered, want none", len(left))
	}
}

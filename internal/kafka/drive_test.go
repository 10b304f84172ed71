package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/kafka/kgroup"
)

// The group coordinator's timer goroutine (runDeadlines) with short
// timeouts: the initial delay completes a join and a session expires
// without any request arriving; Close answers a JoinGroup still waiting.
func TestGroupTimerGoroutine(t *testing.T) {
	lim := kgroup.DefaultLimits()
	lim.MinSession = 10 * time.Millisecond
	gc := kgroup.New(clock.Real, lim)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runDeadlines(ctx, clock.Real, gc.Tick, gc.Wake())
	}()
	defer func() {
		cancel()
		<-done
	}()
	r := kgroup.JoinRequest{Version: 3, Group: "g", ClientID: "cl", SessionTimeout: 200 * time.Millisecond,
		RebalanceTimeout: time.Second, ProtocolType: "consumer",
		Protocols: []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("meta")}}}
	_, ch := gc.Join(r)
	var res kgroup.JoinResult
	select {
	case res = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("join not completed by the timer")
	}
	if res.Code != 0 || res.Generation != 1 {
		t.Fatalf("%+v", res)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := gc.Describe("g"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("session did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.RebalanceTimeout = time.Minute
	_, ch = gc.Join(r)
	gc.Close()
	if res := <-ch; res.Code != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("after close: %+v", res)
	}
}

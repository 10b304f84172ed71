package membudget

import (
	"context"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	b := New(100)
	n, err := b.Acquire(context.Background(), 60)
	if err != nil || n != 60 {
		t.Fatalf("Acquire(60) = %d, %v", n, err)
	}
	if st := b.Stats(); st.InUse != 60 || st.Waits != 0 {
		t.Fatalf("stats %+v", st)
	}
	done := make(chan int64)
	go func() {
		n, _ := b.Acquire(context.Background(), 1000) // charged as the limit
		done <- n
	}()
	select {
	case <-done:
		t.Fatal("an acquisition over the room left did not wait")
	case <-time.After(20 * time.Millisecond):
	}
	b.Release(60)
	if n := <-done; n != 100 {
		t.Fatalf("charged %d, want the limit 100", n)
	}
	st := b.Stats()
	if st.InUse != 100 || st.Waits != 1 || st.WaitTime <= 0 {
		t.Fatalf("stats %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Acquire(ctx, 1); err == nil {
		t.Fatal("Acquire on a full budget with a cancelled context succeeded")
	}
	b.Release(100)
	if st := b.Stats(); st.InUse != 0 || st.Waits != 2 {
		t.Fatalf("stats %+v", st)
	}
	if n, ok := b.TryAcquire(70); !ok || n != 70 {
		t.Fatalf("TryAcquire(70) = %d, %v", n, ok)
	}
	if _, ok := b.TryAcquire(40); ok {
		t.Fatal("TryAcquire(40) fit in 30 bytes")
	}
	b.Release(70)
	if st := b.Stats(); st.InUse != 0 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
	var nilB *Budget
	if nilB.Stats() != (Stats{}) {
		t.Fatal("nil budget stats not zero")
	}
}

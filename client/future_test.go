package client

import (
	"context"
	"sync"
	"testing"
)

// TestFutureCompleteDoneRace completes Futures while other goroutines ask
// for their Done channels and Wait: every channel is closed exactly once
// (a second close would panic) and every Wait sees the outcome.
func TestFutureCompleteDoneRace(t *testing.T) {
	for i := range 2000 {
		f := newFuture()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				<-f.Done()
				if res, err := f.Wait(context.Background()); err != nil || res.Offset != int64(i) {
					t.Errorf("future %d: %+v, %v", i, res, err)
				}
			})
		}
		wg.Go(func() { f.complete(PublishResult{Offset: int64(i)}, nil) })
		wg.Wait()
		select {
		case <-f.Done():
		default:
			t.Fatalf("future %d: Done not closed after complete", i)
		}
	}
}

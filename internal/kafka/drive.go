package kafka

// The goroutines that drive the front end's cores, which start none of their
// own: the group coordinator's deadlines, the share-group janitor, and the
// producer table's sweeps (only for a table of its own: a table given in
// Config.Producers is driven by its owner). Each core gets its own goroutine so that a slow
// one (a producer snapshot waiting on the state store) never delays
// another's deadlines (a rebalance completing). Started by New, stopped by
// Close (its context).

import (
	"context"
	"time"

	"github.com/spoolmq/spool/internal/clock"
)

func (s *Server) drive() {
	s.driven.Add(2)
	go func() {
		defer s.driven.Done()
		runDeadlines(s.ctx, clock.Real, s.groups.Tick, s.groups.Wake())
	}()
	go func() {
		defer s.driven.Done()
		s.runJanitor()
	}()
	if s.ownProducers {
		s.driven.Go(func() { s.producers.Run(s.ctx) })
	}
}

// runDeadlines calls tick whenever the deadline it returned last comes (at
// most a second later: a zero deadline means none) or wake fires, until
// ctx is done. The group coordinator's timer.
func runDeadlines(ctx context.Context, clk clock.Clock, tick func() time.Time, wake <-chan struct{}) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
		next := tick()
		d := time.Second
		if !next.IsZero() {
			d = min(max(next.Sub(clk.Now()), time.Millisecond), time.Second)
		}
		t.Reset(d)
	}
}

// runJanitor evicts share members whose session timed out.
func (s *Server) runJanitor() {
	tick := time.NewTicker(s.shares.EvictInterval())
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-tick.C:
			s.shares.EvictExpired(now)
		}
	}
}

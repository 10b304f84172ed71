package queue

import (
	"math/rand/v2"
	"testing"
	"time"
)

// benchFlow offers, polls and acks b.N messages in batches, as the broker
// would: read what Want asks for, lease a batch, ack it. keys > 0 gives
// every message one of that many keys (key order on). Reported per message.
func benchFlow(b *testing.B, keys int, batch int) {
	cfg := Config{MaxInFlight: 4096, MaxTracked: 100_000}
	if keys > 0 {
		cfg.Ordering = OrderKey
	}
	p, err := New(cfg, Snapshot{}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	msgs := make([]Msg, 0, batch)
	acks := make([]int64, 0, batch)
	next := int64(0)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		want, cursor := p.Want()
		msgs = msgs[:0]
		next = cursor
		for i := 0; i < min(want, batch) && next < int64(b.N); i++ {
			m := Msg{Offset: next, Timestamp: now.UnixMilli()}
			if keys > 0 {
				m.HasKey, m.KeyHash = true, uint64(next%int64(keys))*0x9e3779b97f4a7c15
			}
			msgs = append(msgs, m)
			next++
		}
		p.Offer(now, msgs)
		leases, _ := p.Poll(now, "m", batch)
		acks = acks[:0]
		for _, l := range leases {
			acks = append(acks, l.Offset)
		}
		if stale, _ := p.Ack(now, "m", acks); len(stale) > 0 {
			b.Fatalf("stale acks %v", stale)
		}
		done += len(acks)
		now = now.Add(time.Millisecond)
	}
	b.StopTimer()
	if st := p.Stats(now); st.Floor != int64(b.N) {
		b.Fatalf("floor %d after %d messages", st.Floor, b.N)
	}
}

// BenchmarkFlow: Offer + Poll + Ack per message, no key order; run with
// -benchtime=1000000x for the 1M-message figure.
func BenchmarkFlow(b *testing.B) { benchFlow(b, 0, 256) }

// BenchmarkFlowKeys: the same with key order over 10,000 keys.
func BenchmarkFlowKeys(b *testing.B) { benchFlow(b, 10_000, 256) }

// BenchmarkFlowBacklog: a 100,000-message backlog stays tracked while
// messages flow through it (heaps and maps at full size).
func BenchmarkFlowBacklog(b *testing.B) {
	p, _ := New(Config{MaxInFlight: 100_000, MaxTracked: 200_000}, Snapshot{}, rand.New(rand.NewPCG(1, 2)))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const backlog = 100_000
	msgs := make([]Msg, backlog)
	for i := range msgs {
		msgs[i] = Msg{Offset: int64(i), Timestamp: now.UnixMilli()}
	}
	p.Offer(now, msgs)
	held, _ := p.Poll(now, "slow", backlog/2) // leased and never acked
	_ = held
	next := int64(backlog)
	one := make([]Msg, 1)
	ack := make([]int64, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		one[0] = Msg{Offset: next, Timestamp: now.UnixMilli()}
		next++
		p.Offer(now, one)
		ls, _ := p.Poll(now, "m", 1)
		ack[0] = ls[0].Offset
		p.Ack(now, "m", ack)
	}
}

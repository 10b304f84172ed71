package broker

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/queue"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/internal/vfs"
)

var powerLossCycles = flag.Int("spool.powerloss-cycles", 0, "simulated power losses in TestPowerLoss (0: the short mode, 6)")

// TestPowerLoss runs a broker whose partition logs live on a vfs.MemFS and
// whose state store lives on Pebble's crashable in-memory FS, under load
// (publishers on a durability-always topic, a stream consumer committing),
// and cuts the power: the state store is cloned keeping only what was
// synced, then the logs, keeping what was synced plus a random part of
// the unsynced writes, in any order, the last one possibly torn. The
// broker is reopened on the clones and must hold every message
// acknowledged before the cut, at its offset, with nothing else at an
// offset acknowledged for it, and its committed offsets must be at least
// the commits confirmed before the cut. Each cycle continues on the
// previous cycle's clones.
//
// The state store is cloned first: a power cut is one instant, and two
// clones taken one after the other see the state at an earlier instant
// than the logs; that is what a real cut can leave too (the state store
// never references log data the log has not synced: offsets committed are
// below the durable end), and the reverse order could not.
func TestPowerLoss(t *testing.T) {
	cycles := 6
	if *powerLossCycles > 0 {
		cycles = *powerLossCycles
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	logFS := vfs.NewMemFS()
	stFS := pebblevfs.NewCrashableMem()
	acked := map[[2]int64]string{}       // partition, offset → value
	committed := map[int32]int64{}       // highest confirmed commit per partition
	ackedQ := map[string]time.Duration{} // queue q: when each message's ack was confirmed (since t0)
	maybeQ := map[string]bool{}          // acks confirmed after a cut was marked, before its clones: either way
	durableQ := map[string]bool{}        // acks confirmed more than queueWindow before a cut
	t0 := time.Now()
	var lastCut time.Duration
	var lastSnaps map[int32]queue.Snapshot
	var lastMem string
	var cutDone bool // the current life was cut (its load still winding down)
	sameLife := 0
	redelivered := 0
	total := 0
	// Warnings and errors of every life, shown when the test fails.
	var logs syncBuf
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	defer func() {
		if t.Failed() {
			t.Logf("broker warnings and errors:\n%s", logs.String())
		}
	}()
	open := func() (*state.Store, *Broker) {
		st, err := state.Open("/data/state", state.Options{FS: stFS, Logger: quiet})
		if err != nil {
			t.Fatalf("seed %d: open state: %v", seed, err)
		}
		b, err := Open(Config{DataDir: "/data", FS: logFS, State: st, Logger: logger, MaintenanceInterval: 50 * time.Millisecond,
			Log: seglog.Options{SegmentBytes: 64 << 10, Limits: batch.Limits{MaxBatchBytes: 64 << 10}}})
		if err != nil {
			st.Close()
			t.Fatalf("seed %d: open broker: %v", seed, err)
		}
		return st, b
	}
	for cycle := range cycles + 1 {
		st, b := open()
		if cycle == 0 {
			if _, err := b.CreateTopic("pl", catalog.TopicConfig{Partitions: 3, Durability: seglog.SyncAlways}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.CreateSubscription("pl", "s", catalog.SubConfig{}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.CreateSubscription("pl", "q", catalog.SubConfig{Mode: catalog.ModeQueue, Queue: catalog.QueueConfig{MaxDeliveries: 1000, AckTimeout: time.Minute}}); err != nil {
				t.Fatal(err)
			}
		}
		// Check what the previous cut left.
		checkPowerLoss(t, b, seed, cycle, acked, committed)
		if cycle == cycles {
			// Drain q: every acknowledged publish whose ack was not
			// confirmed before a cut is delivered again.
			got := drainQueue(t, b)
			for _, v := range acked {
				if _, ok := ackedQ[v]; !ok && !got[v] && !maybeQ[v] {
					t.Errorf("seed %d: %q acknowledged, never acked on q, and not delivered after the last power loss", seed, v)
				}
			}
			for v := range got {
				if durableQ[v] {
					t.Errorf("seed %d: %q delivered on q after the last power loss, its ack confirmed more than %v before a cut", seed, v, queueWindow)
				}
			}
			b.Close()
			st.Close()
			break
		}
		var mu sync.Mutex
		cutDone = false
		cycleAcked := map[[2]int64]string{}
		cycleCommits := map[int32]int64{}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, err := b.Join(JoinRequest{Topic: "pl", Subscription: "q", Credits: 1 << 20})
			if err != nil {
				return
			}
			defer sess.Leave()
			var id uint64
			pending := map[uint64]string{}
			for {
				ev, err := sess.Next(ctx)
				if err != nil {
					return
				}
				if lo := ev.Lease; lo != nil {
					if v, ok := pending[lo.ID]; ok && lo.Err == nil && len(lo.Stale) == 0 {
						mu.Lock()
						// After the cut the life goes on a moment (until
						// cancel) in a world the cut threw away: its acks
						// do not count.
						if _, seen := ackedQ[v]; !seen && !cutDone {
							ackedQ[v] = time.Since(t0)
						} else if cutDone {
							maybeQ[v] = true // confirmed between the cut's mark and its clones: kept or not
						}
						mu.Unlock()
					}
					delete(pending, lo.ID)
				}
				for _, d := range ev.Deliveries {
					mu.Lock()
					if durableQ[string(d.Value)] && !cutDone {
						redelivered++
						if redelivered <= 5 {
							t.Errorf("seed %d cycle %d: %s (%d/%d) delivered on q again, its ack confirmed %v before the cut; saved at the cut: %v; in memory:%s",
								seed, cycle, d.Value[:14], d.Partition, d.Offset, (lastCut - ackedQ[string(d.Value)]).Round(time.Millisecond),
								snapCovers(lastSnaps[d.Partition], d.Offset), lastMem)
						}
					}
					if at, ok := ackedQ[string(d.Value)]; ok && at > lastCut && !cutDone {
						sameLife++
						if sameLife <= 5 {
							t.Errorf("seed %d cycle %d: %s (%d/%d) delivered on q again in the life its ack was confirmed in (%v before), without a crash",
								seed, cycle, d.Value[:14], d.Partition, d.Offset, (time.Since(t0) - at).Round(time.Millisecond))
						}
					}
					mu.Unlock()
					id++
					pending[id] = string(d.Value)
					if err := sess.Ack(id, []OffsetRange{{Partition: d.Partition, From: d.Offset, To: d.Offset + 1}}); err != nil {
						return
					}
				}
			}
		}()
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					msgs := make([]Message, 1+i%7)
					for j := range msgs {
						msgs[j] = Message{Key: []byte(fmt.Sprint(j)), Value: []byte(fmt.Sprintf("c%d-w%d-r%d-m%d-%0200d", cycle, w, i, j, 0)), Partition: -1}
					}
					res, err := b.Publish("pl", msgs)
					if err != nil {
						return
					}
					mu.Lock()
					for k, r := range res {
						cycleAcked[[2]int64{int64(r.Partition), r.Offset}] = string(msgs[k].Value)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, err := b.Join(JoinRequest{Topic: "pl", Subscription: "s", Credits: 1 << 30})
			if err != nil {
				return
			}
			defer sess.Leave()
			var gen int64
			var id uint64
			next := map[int32]int64{}
			pending := map[uint64]map[int32]int64{}
			for {
				ev, err := sess.Next(ctx)
				if err != nil {
					return
				}
				if ev.Assignment != nil {
					gen = ev.Assignment.Generation
				}
				if ev.Commit != nil {
					if offs, ok := pending[ev.Commit.ID]; ok && ev.Commit.Err == nil {
						mu.Lock()
						for p, o := range offs {
							cycleCommits[p] = max(cycleCommits[p], o)
						}
						mu.Unlock()
					}
					delete(pending, ev.Commit.ID)
				}
				for _, d := range ev.Deliveries {
					next[d.Partition] = d.Offset + 1
				}
				if len(ev.Deliveries) > 0 && len(pending) == 0 {
					id++
					offs := map[int32]int64{}
					for p, o := range next {
						offs[p] = o
					}
					pending[id] = offs
					if err := sess.Commit(id, gen, offs); err != nil {
						delete(pending, id)
					}
				}
			}
		}()
		time.Sleep(time.Duration(20+rng.IntN(600)) * time.Millisecond)
		// The cut: what was confirmed so far must survive it.
		mu.Lock()
		cut := time.Since(t0)
		lastCut = cut
		cutDone = true
		for v, at := range ackedQ {
			if cut-at > queueWindow {
				durableQ[v] = true
			}
		}
		for k, v := range cycleAcked {
			if old, ok := acked[k]; ok && old != v {
				t.Errorf("seed %d cycle %d: partition %d offset %d acknowledged for %q and, after a power loss, for %q", seed, cycle, k[0], k[1], old, v)
			}
			acked[k] = v
		}
		for p, o := range cycleCommits {
			committed[p] = max(committed[p], o)
		}
		total += len(cycleAcked)
		mu.Unlock()
		// What the state store holds of q at the cut, and what is in
		// memory, to tell a save that lagged from a save that was lost.
		mu.Lock()
		lastSnaps = map[int32]queue.Snapshot{}
		for p := range int32(3) {
			if v, err := st.Get(state.QueueKey("pl", "q", p)); err == nil {
				if snap, err := decodeSnapshot(state.QueueKey("pl", "q", p), v); err == nil {
					lastSnaps[p] = snap
				}
			}
		}
		lastMem = ""
		if tp := b.topics["pl"]; tp != nil {
			tp.subsMu.Lock()
			qs := tp.subs["q"]
			tp.subsMu.Unlock()
			qs.mu.Lock()
			for _, qp := range qs.q.parts {
				lastMem += fmt.Sprintf(" p%d floor %d dirty %v;", qp.id, qp.core.Snapshot().Floor, qp.dirty)
			}
			lastMem += fmt.Sprintf(" outbox %d, blocked %v", len(qs.q.outbox), qs.q.blocked)
			qs.mu.Unlock()
		}
		mu.Unlock()
		stCrash := stFS.CrashClone(pebblevfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(100), RNG: rand.New(rand.NewPCG(seed, uint64(cycle)))})
		logCrash := logFS.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(seed, uint64(cycle)+1000)), TearLastWrite: true, Reorder: cycle%2 == 1})
		cancel()
		wg.Wait()
		b.Close()
		st.Close()
		logFS, stFS = logCrash, stCrash
	}
	if sameLife > 0 {
		t.Errorf("seed %d: %d deliveries on q, without a crash, of messages whose ack was confirmed", seed, sameLife)
	}
	if redelivered > 0 {
		t.Errorf("seed %d: %d deliveries on q of messages whose ack was confirmed more than %v before a power loss", seed, redelivered, queueWindow)
	}
	t.Logf("seed %d: %d power losses, %d acknowledged messages, all found; committed offsets at the last cut %v, none gone back; queue q: %d acks confirmed, %d of them more than %v before a cut, none redelivered",
		seed, cycles, total, committed, len(ackedQ), len(durableQ), queueWindow)
}

// syncBuf is a bytes.Buffer safe for concurrent writers.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// snapCovers says whether a queue snapshot records offset off as
// finished, with the snapshot's floor.
func snapCovers(s queue.Snapshot, off int64) string {
	done := off < s.Floor
	for _, r := range s.Done {
		if off >= r[0] && off < r[1] {
			done = true
		}
	}
	return fmt.Sprintf("finished %v (floor %d, %d done ranges)", done, s.Floor, len(s.Done))
}

// queueWindow bounds how long before a power loss a confirmed queue ack
// may be lost: the queue's state is saved (synced) every 50 ms
// (queueInterval); the rest is margin for the race detector.
const queueWindow = 300 * time.Millisecond

// drainQueue takes every message q delivers until it is idle for a second
// (acking each) and returns their values.
func drainQueue(t *testing.T, b *Broker) map[string]bool {
	t.Helper()
	sess, err := b.Join(JoinRequest{Topic: "pl", Subscription: "q", Credits: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Leave()
	got := map[string]bool{}
	var id uint64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ev, err := sess.Next(ctx)
		cancel()
		if err != nil {
			return got
		}
		for _, d := range ev.Deliveries {
			got[string(d.Value)] = true
			id++
			sess.Ack(id, []OffsetRange{{Partition: d.Partition, From: d.Offset, To: d.Offset + 1}})
		}
	}
}

// checkPowerLoss reads the whole topic and the subscription's committed
// offsets.
func checkPowerLoss(t *testing.T, b *Broker, seed uint64, cycle int, acked map[[2]int64]string, committed map[int32]int64) {
	t.Helper()
	r, err := b.ReadTopic(ReadRequest{Topic: "pl", From: catalog.Position{Kind: catalog.Earliest}})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[[2]int64]string{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rb, err := r.Next(ctx)
		cancel()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("seed %d cycle %d: read: %v", seed, cycle, err)
		}
		for _, m := range rb.Messages {
			stored[[2]int64{int64(m.Partition), m.Offset}] = string(m.Value)
		}
	}
	// A message at two offsets: every publish stores its messages once.
	at := map[string][2]int64{}
	dups := 0
	for k, v := range stored {
		if prev, ok := at[v]; ok {
			dups++
			if dups <= 5 {
				t.Errorf("seed %d after power loss %d: %.14s stored at %d/%d and %d/%d (acknowledged at: %v / %v)", seed, cycle, v, prev[0], prev[1], k[0], k[1], acked[prev] == v, acked[k] == v)
			}
		}
		at[v] = k
	}
	if dups > 0 {
		t.Errorf("seed %d after power loss %d: %d messages stored twice", seed, cycle, dups)
	}
	lost := 0
	for k, v := range acked {
		if got, ok := stored[k]; !ok || got != v {
			lost++
			if lost <= 5 {
				t.Errorf("seed %d after power loss %d: %q acknowledged at %d/%d; stored there: %q (found %v)", seed, cycle, v, k[0], k[1], got, ok)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("seed %d after power loss %d: %d of %d acknowledged messages lost", seed, cycle, lost, len(acked))
	}
	if len(committed) == 0 {
		return
	}
	sess, err := b.Join(JoinRequest{Topic: "pl", Subscription: "s", Credits: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Leave()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		ev, err := sess.Next(ctx)
		if err != nil {
			t.Fatalf("seed %d cycle %d: no assignment: %v", seed, cycle, err)
		}
		if ev.Assignment == nil {
			continue
		}
		for _, ps := range ev.Assignment.Partitions {
			if c, ok := committed[ps.Partition]; ok && ps.Offset < c {
				t.Errorf("seed %d after power loss %d: partition %d resumes at %d, below the commit of %d confirmed before it", seed, cycle, ps.Partition, ps.Offset, c)
			}
		}
		return
	}
}

package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/internal/crashpoint"
)

// The single-node crash and pause harness (docs/reliability.md): one
// `spool serve` under load from native-API producers (durability always),
// a stream subscription's consumer that commits, a queue subscription's
// consumer that acks and one that always nacks (its messages go to the
// dead-letter topic), all recorded in a nodeLedger; faults: SIGKILL at
// random moments, SIGSTOP/SIGCONT pauses longer than the session and ack
// timeouts, and exits at named crash points (internal/crashpoint). After
// the last fault the node is started once more, everything is drained and
// nodeLedger.check judges what the clients saw against what is stored.
//
// Short mode (the default, in the test command) runs a few cycles of each
// fault; -spool.crash-cycles=N runs N cycles of each (for the crash points,
// N spread over the points).
var crashCycles = flag.Int("spool.crash-cycles", 0, "cycles of each single-node fault in the crash and pause harness (0: the short mode)")

// queueAckWindow is the at-least-once window of queue acknowledgements
// across a crash: a queue subscription's state is saved (fsynced) every
// 50 ms, so an ack confirmed less than that before a crash may be lost and
// its message delivered again. The bound checked is 500 ms: the period
// plus margin for a slow, shared disk and the race detector. Stream
// commits have no window: a confirmed commit is durable.
const queueAckWindow = 500 * time.Millisecond

const (
	ncTopic    = "nc"    // 3 partitions, the checked topic
	ncRetTopic = "nc-rt" // small retention: segments deleted under load
	ncParts    = 3
)

// ncServerEnv makes segments small so that rolls, seals and retention
// deletions happen within seconds of load.
var ncServerEnv = []string{"SPOOL_STORAGE_SEGMENT_BYTES=64KiB", "SPOOL_STORAGE_MAX_BATCH_BYTES=64KiB"}

// nodeLedger records what the clients of one node did and saw.
type nodeLedger struct {
	mu        sync.Mutex
	t0        time.Time
	attempted map[string]bool           // every message sent
	acked     map[string]pos            // acknowledged publishes: where
	ackedAt   map[string]map[pos]string // topic → position → the message acknowledged there
	problems  []string
	counts    map[string]int

	sDels    []ncDelivery             // stream subscription "s"
	sCommits []ncCommit               // confirmed commits of "s"
	wDels    []ncDelivery             // queue subscription "w"
	wAcked   map[string]time.Duration // when w's ack of a message was confirmed
	pDels    int                      // deliveries to "p" (always nacked)
	crashes  []ncCrash
	pauses   int
}

type ncDelivery struct {
	session int
	p       int32
	off     int64
	id      string
	at      time.Duration
}

// ncCrash is one crash: from when the kill was sent (or the exit seen,
// for a crash point), to when the process was seen gone.
type ncCrash struct{ from, to time.Duration }

type ncCommit struct {
	p   int32
	off int64
	at  time.Duration
}

func newNodeLedger() *nodeLedger {
	return &nodeLedger{t0: time.Now(), attempted: map[string]bool{}, acked: map[string]pos{},
		ackedAt: map[string]map[pos]string{ncTopic: {}, ncRetTopic: {}}, wAcked: map[string]time.Duration{}, counts: map[string]int{}}
}

func (l *nodeLedger) now() time.Duration { return time.Since(l.t0) }

func (l *nodeLedger) problem(kind, format string, args ...any) {
	l.counts[kind]++
	if len(l.problems) < 40 {
		l.problems = append(l.problems, kind+": "+fmt.Sprintf(format, args...))
	}
}

// crashed records a crash that started at from (see ncCrash) and is over
// now.
func (l *nodeLedger) crashed(from time.Duration) {
	l.mu.Lock()
	l.crashes = append(l.crashes, ncCrash{from, l.now()})
	l.mu.Unlock()
}

// ncLoad is the load of one server life: it ends when the server dies or
// stop is called.
type ncLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	c      *clients
}

var ncSession struct {
	sync.Mutex
	n int
}

func nextSession() int {
	ncSession.Lock()
	defer ncSession.Unlock()
	ncSession.n++
	return ncSession.n
}

// startLoad starts two producers, the stream consumer and the two queue
// consumers against addr. life numbers the server's lives (message ids
// stay unique across them).
func startLoad(l *nodeLedger, addr string, life int, produce bool) *ncLoad {
	ctx, cancel := context.WithCancel(context.Background())
	ld := &ncLoad{cancel: cancel, c: newClients(addr)}
	if produce {
		for w := range 2 {
			ld.wg.Add(1)
			go func() { defer ld.wg.Done(); ncProduce(ctx, l, ld.c, fmt.Sprintf("L%dP%d", life, w), ncTopic) }()
		}
		ld.wg.Add(1)
		go func() { defer ld.wg.Done(); ncProduce(ctx, l, ld.c, fmt.Sprintf("L%dR", life), ncRetTopic) }()
	}
	ld.wg.Add(3)
	go func() { defer ld.wg.Done(); ncStream(ctx, l, ld.c) }()
	go func() { defer ld.wg.Done(); ncQueue(ctx, l, ld.c, "w", false) }()
	go func() { defer ld.wg.Done(); ncQueue(ctx, l, ld.c, "p", true) }()
	return ld
}

func (ld *ncLoad) stop() {
	ld.cancel()
	ld.wg.Wait()
	ld.c.close()
}

// ncProduce publishes batches of 1–8 messages, one batch at a time, keys
// k0–k4; a message's value is "<producer>|<key>|<seq>" with seq counting
// per producer. A failed publish is not retried (its messages may or may
// not be stored).
func ncProduce(ctx context.Context, l *nodeLedger, c *clients, name, topic string) {
	seq := 0
	pad := strings.Repeat("x", 200)
	for i := 0; ctx.Err() == nil; i++ {
		var msgs []*spoolv1.Message
		for range 1 + i%8 {
			key := fmt.Sprintf("k%d", seq%5)
			msgs = append(msgs, &spoolv1.Message{Key: []byte(key), Value: []byte(fmt.Sprintf("%s|%s|%d|%s", name, key, seq, pad))})
			seq++
		}
		l.mu.Lock()
		for _, m := range msgs {
			l.attempted[string(m.Value)] = true
		}
		l.mu.Unlock()
		resp, err := c.publish.Publish(ctx, connect.NewRequest(&spoolv1.PublishRequest{Topic: topic, Messages: msgs}))
		if err != nil {
			if ctx.Err() != nil || connect.CodeOf(err) == connect.CodeUnavailable || connect.CodeOf(err) == connect.CodeUnknown || connect.CodeOf(err) == connect.CodeCanceled {
				return // the server died or the load stopped
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		l.mu.Lock()
		for k, r := range resp.Msg.Results {
			id, at := string(msgs[k].Value), pos{r.Partition, r.Offset}
			if old, ok := l.ackedAt[topic][at]; ok && old != id {
				l.problem("two messages at one offset", "%s offset %d/%d acknowledged for %q and for %q", topic, r.Partition, r.Offset, old, id)
			}
			l.ackedAt[topic][at] = id
			if topic == ncTopic {
				l.acked[id] = at
			}
		}
		l.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// ncStream consumes stream subscription "s" and commits what it received
// every 100 ms, recording each delivery and each confirmed commit.
func ncStream(ctx context.Context, l *nodeLedger, c *clients) {
	stream := c.consume.Consume(ctx)
	defer stream.CloseResponse()
	if err := stream.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: &spoolv1.ConsumeStart{
		Topic: ncTopic, Subscription: "s", Credits: 1 << 30, SessionTimeout: durationpb.New(2 * time.Second)}}}); err != nil {
		return
	}
	type resp struct {
		r   *spoolv1.ConsumeResponse
		err error
	}
	ch := make(chan resp, 16)
	go func() {
		for {
			r, err := stream.Receive()
			ch <- resp{r, err}
			if err != nil {
				return
			}
		}
	}()
	session := nextSession()
	var gen int64
	next := map[int32]int64{}
	var commitID uint64
	pending := map[uint64]map[int32]int64{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if len(next) == 0 {
				continue
			}
			commitID++
			var po []*spoolv1.PartitionOffset
			offs := map[int32]int64{}
			for p, o := range next {
				po = append(po, &spoolv1.PartitionOffset{Partition: p, Offset: o})
				offs[p] = o
			}
			pending[commitID] = offs
			if err := stream.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Commit{Commit: &spoolv1.Commit{Generation: gen, Offsets: po, CommitId: commitID}}}); err != nil {
				return
			}
		case it := <-ch:
			if it.err != nil {
				return
			}
			if a := it.r.GetAssignment(); a != nil {
				gen = a.Generation
				session = nextSession() // a new assignment: delivery starts again from the committed offsets
				next = map[int32]int64{}
			}
			if cr := it.r.GetCommitResult(); cr != nil {
				if offs, ok := pending[cr.CommitId]; ok && cr.Error == nil {
					l.mu.Lock()
					for p, o := range offs {
						l.sCommits = append(l.sCommits, ncCommit{p, o, l.now()})
					}
					l.mu.Unlock()
				}
				delete(pending, cr.CommitId)
			}
			if d := it.r.GetDeliveries(); d != nil {
				l.mu.Lock()
				for _, m := range d.Messages {
					l.sDels = append(l.sDels, ncDelivery{session, m.Partition, m.Offset, string(m.Value), l.now()})
					next[m.Partition] = m.Offset + 1
				}
				l.mu.Unlock()
			}
		}
	}
}

// ncQueue consumes queue subscription sub, acking (or with nack, nacking)
// each delivery; w's deliveries and confirmed acks are recorded.
func ncQueue(ctx context.Context, l *nodeLedger, c *clients, sub string, nack bool) {
	stream := c.consume.Consume(ctx)
	defer stream.CloseResponse()
	if err := stream.Send(&spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Start{Start: &spoolv1.ConsumeStart{
		Topic: ncTopic, Subscription: sub, Credits: 500, SessionTimeout: durationpb.New(2 * time.Second)}}}); err != nil {
		return
	}
	session := nextSession()
	var id uint64
	pending := map[uint64]string{}
	// Acks and credits go out 100 ms after the delivery, from their own
	// goroutine: leases are outstanding when a fault strikes.
	type later struct {
		due time.Time
		req *spoolv1.ConsumeRequest
	}
	out := make(chan later, 4096)
	sendDone := make(chan struct{})
	defer func() { close(out); <-sendDone }()
	go func() {
		defer close(sendDone)
		for o := range out {
			time.Sleep(time.Until(o.due))
			if ctx.Err() == nil {
				stream.Send(o.req)
			}
		}
	}()
	for {
		resp, err := stream.Receive()
		if err != nil {
			return
		}
		if lr := resp.GetLeaseResult(); lr != nil {
			l.mu.Lock()
			if v, ok := pending[lr.RequestId]; ok && len(lr.Stale) == 0 && lr.Error == nil {
				if _, seen := l.wAcked[v]; !seen {
					l.wAcked[v] = l.now()
				}
			}
			delete(pending, lr.RequestId)
			l.mu.Unlock()
		}
		ds := resp.GetDeliveries()
		if ds == nil {
			continue
		}
		for _, d := range ds.Messages {
			id++
			var req *spoolv1.ConsumeRequest
			l.mu.Lock()
			if nack {
				l.pDels++
				req = &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Nack{Nack: &spoolv1.Nack{
					Partition: d.Partition, Offset: d.Offset, Delay: durationpb.New(0), Error: "always fails", RequestId: id}}}
			} else {
				l.wDels = append(l.wDels, ncDelivery{session, d.Partition, d.Offset, string(d.Value), l.now()})
				pending[id] = string(d.Value)
				req = &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Ack{Ack: &spoolv1.Ack{
					Ranges: []*spoolv1.OffsetRange{{Partition: d.Partition, From: d.Offset, To: d.Offset + 1}}, RequestId: id}}}
			}
			l.mu.Unlock()
			out <- later{time.Now().Add(100 * time.Millisecond), req}
		}
		out <- later{time.Now().Add(100 * time.Millisecond), &spoolv1.ConsumeRequest{Kind: &spoolv1.ConsumeRequest_Credits{Credits: &spoolv1.Credits{Messages: int32(len(ds.Messages))}}}}
	}
}

// ncSetup creates the topics and subscriptions on a fresh node.
func ncSetup(t *testing.T, addr string) {
	c := newClients(addr)
	defer c.close()
	c.createTopic(t, ncTopic, &spoolv1.TopicConfig{Partitions: ncParts, Durability: spoolv1.Durability_DURABILITY_ALWAYS})
	c.createTopic(t, ncRetTopic, &spoolv1.TopicConfig{Partitions: 1, Durability: spoolv1.Durability_DURABILITY_ALWAYS, RetentionBytes: 128 << 10})
	c.createSub(t, ncTopic, "s", nil)
	backoff := &spoolv1.Backoff{Initial: durationpb.New(10 * time.Millisecond), Jitter: spoolv1.Jitter_JITTER_NONE}
	c.createSub(t, ncTopic, "w", &spoolv1.SubscriptionConfig{Mode: spoolv1.Mode_MODE_QUEUE, MaxDeliveries: 1000,
		AckTimeout: durationpb.New(time.Second), Backoff: backoff})
	c.createSub(t, ncTopic, "p", &spoolv1.SubscriptionConfig{Mode: spoolv1.Mode_MODE_QUEUE, MaxDeliveries: 3,
		AckTimeout: durationpb.New(time.Second), Backoff: backoff})
}

// ncStored reads what the node stores in topic through a new stream
// subscription: position → value.
func ncStored(t *testing.T, c *clients, topic, sub string) map[pos]string {
	t.Helper()
	desc, err := c.topics.DescribeTopic(context.Background(), connect.NewRequest(&spoolv1.DescribeTopicRequest{Name: topic}))
	if err != nil {
		t.Fatal(err)
	}
	total := int(desc.Msg.Messages)
	c.createSub(t, topic, sub, nil)
	cs := c.join(t, topic, sub, 1<<30)
	got := cs.receive(t, total, 10*time.Second)
	cs.close()
	if len(got) < total {
		t.Fatalf("%s: read %d of %d stored messages", topic, len(got), total)
	}
	out := map[pos]string{}
	for _, d := range got {
		out[pos{d.Partition, d.Offset}] = string(d.Value)
	}
	return out
}

// finish starts the node once more without faults, drains the
// subscriptions and checks the ledger; it returns the report.
func (l *nodeLedger) finish(t *testing.T, dir, addr string) string {
	t.Helper()
	p := startSpool(t, dir, addr)
	defer p.stop()
	ld := startLoad(l, addr, -1, false)
	c := newClients(addr)
	defer c.close()
	stored := ncStored(t, c, ncTopic, "verify")
	retStored := ncStored(t, c, ncRetTopic, "verify")
	drain := 60*time.Second + time.Duration(len(stored))*time.Millisecond
	deadline := time.Now().Add(drain)
	var dlq map[string]int
	for {
		l.mu.Lock()
		sSeen, wSeen := map[pos]bool{}, map[string]bool{}
		for _, d := range l.sDels {
			sSeen[pos{d.p, d.off}] = true
		}
		for _, d := range l.wDels {
			wSeen[d.id] = true
		}
		missS, missW := 0, 0
		for at, v := range stored {
			if !sSeen[at] {
				missS++
			}
			if !wSeen[v] {
				missW++
			}
		}
		l.mu.Unlock()
		dlq = deadLetterCounts(t, c, ncTopic, "p")
		if missS == 0 && missW == 0 && len(dlq) >= len(stored) {
			break
		}
		if time.Now().After(deadline) {
			ld.stop()
			l.mu.Lock()
			l.problem("undelivered", "after %v of draining: %d stored messages never delivered to stream s, %d never to queue w; %d of %d dead-lettered from p", drain, missS, missW, len(dlq), len(stored))
			l.mu.Unlock()
			return l.check(t, stored, retStored, dlq, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let late redeliveries show
	ld.stop()
	dlq = deadLetterCounts(t, c, ncTopic, "p")
	return l.check(t, stored, retStored, dlq, p)
}

// check judges the ledger against what the node stores (stored: the
// checked topic, ret: the retention topic) and its dead-letter topic.
func (l *nodeLedger) check(t *testing.T, stored, ret map[pos]string, dlq map[string]int, p *proc) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	// Lost writes and offsets holding two messages.
	for id, at := range l.acked {
		if got, ok := stored[at]; !ok {
			l.problem("lost", "%s acknowledged at %d/%d, nothing stored there", ncName(id), at.p, at.off)
		} else if got != id {
			l.problem("two messages at one offset", "%s acknowledged at %d/%d, which holds %s", ncName(id), at.p, at.off, ncName(got))
		}
	}
	// Duplicates, messages never sent, order per producer and key.
	where := map[string]pos{}
	last := map[string]int{} // partition|producer|key → last seq
	for _, at := range slices.SortedFunc(func(yield func(pos) bool) {
		for at := range stored {
			if !yield(at) {
				return
			}
		}
	}, func(a, b pos) int {
		if a.p != b.p {
			return int(a.p - b.p)
		}
		return int(a.off - b.off)
	}) {
		v := stored[at]
		if prev, ok := where[v]; ok {
			l.problem("duplicate", "%s stored at %d/%d and %d/%d", ncName(v), prev.p, prev.off, at.p, at.off)
		}
		where[v] = at
		if !l.attempted[v] {
			l.problem("phantom", "%d/%d holds %s, never sent", at.p, at.off, ncName(v))
			continue
		}
		f := strings.Split(v, "|")
		seq, _ := strconv.Atoi(f[2])
		k := fmt.Sprintf("%d|%s|%s", at.p, f[0], f[1])
		if prev, ok := last[k]; ok && seq < prev {
			l.problem("order", "partition %d: %s (seq %d) after seq %d of the same producer and key", at.p, ncName(v), seq, prev)
		}
		last[k] = seq
	}
	// Stream subscription: each delivery is what is stored there; no
	// delivery below a commit confirmed before it; forward within an assignment.
	committed := map[int32]int64{}
	ci := 0
	sort := slices.Clone(l.sCommits)
	slices.SortFunc(sort, func(a, b ncCommit) int { return int(a.at - b.at) })
	lastOff := map[[2]int64]int64{}
	sRedelivered := 0
	seenS := map[pos]bool{}
	for _, d := range l.sDels {
		for ci < len(sort) && sort[ci].at < d.at {
			committed[sort[ci].p] = max(committed[sort[ci].p], sort[ci].off)
			ci++
		}
		if got := stored[pos{d.p, d.off}]; got != d.id {
			l.problem("two messages at one offset", "stream s got %s from %d/%d, which holds %s", ncName(d.id), d.p, d.off, ncName(got))
		}
		if c, ok := committed[d.p]; ok && d.off < c {
			l.problem("committed redelivered", "stream s got %d/%d at %v after offset %d was committed", d.p, d.off, d.at.Round(time.Millisecond), c)
		}
		k := [2]int64{int64(d.session), int64(d.p)}
		if prev, ok := lastOff[k]; ok && d.off <= prev {
			l.problem("order", "stream s went back from %d/%d to %d/%d within one assignment", d.p, prev, d.p, d.off)
		}
		lastOff[k] = d.off
		if seenS[pos{d.p, d.off}] {
			sRedelivered++
		}
		seenS[pos{d.p, d.off}] = true
	}
	// Queue subscription: each delivery is what is stored there; a message
	// whose ack was confirmed is delivered again only across a crash less
	// than queueAckWindow after the confirmation.
	wRedelivered, wInWindow := 0, 0
	seenW := map[string]bool{}
	for _, d := range l.wDels {
		if got := stored[pos{d.p, d.off}]; got != d.id {
			l.problem("two messages at one offset", "queue w got %s from %d/%d, which holds %s", ncName(d.id), d.p, d.off, ncName(got))
		}
		if seenW[d.id] {
			wRedelivered++
		}
		seenW[d.id] = true
		a, ok := l.wAcked[d.id]
		if !ok || a >= d.at {
			continue
		}
		excused := false
		// A crash excuses the delivery if the process was gone after the
		// ack was confirmed and before the delivery, and the kill was sent
		// no more than the window after the confirmation (seeing the kill
		// take effect — a GiB process torn down, its output drained — can
		// take long on a loaded machine).
		for _, c := range l.crashes {
			if c.to > a && c.to < d.at && c.from-a <= queueAckWindow {
				excused = true
			}
		}
		if excused {
			wInWindow++
			continue
		}
		l.problem("acked redelivered", "queue w got %s (%d/%d) at %v; its ack was confirmed at %v, with no crash within %v after", ncName(d.id), d.p, d.off,
			d.at.Round(time.Millisecond), a.Round(time.Millisecond), queueAckWindow)
	}
	// Dead letters: every stored message exactly once, nothing else.
	for _, v := range stored {
		if n := dlq[v]; n != 1 {
			l.problem("dead letters", "%s is %d times in p's dead-letter topic", ncName(v), n)
		}
	}
	for v, n := range dlq {
		if _, ok := where[v]; !ok {
			l.problem("dead letters", "p's dead-letter topic holds %s (%d times), not in the topic", ncName(v), n)
		}
	}
	// Retention topic: what is left is a contiguous run of offsets, each
	// holding what was acknowledged there; every acknowledged offset from
	// the first one left on is still there.
	var first, lastRet int64 = -1, -1
	for at, v := range ret {
		if first < 0 || at.off < first {
			first = at.off
		}
		lastRet = max(lastRet, at.off)
		if a, ok := l.ackedAt[ncRetTopic][at]; ok && a != v {
			l.problem("two messages at one offset", "%s %d: acknowledged %s, holds %s", ncRetTopic, at.off, ncName(a), ncName(v))
		}
	}
	if first >= 0 && int64(len(ret)) != lastRet-first+1 {
		l.problem("lost", "%s holds %d messages between offsets %d and %d: a hole", ncRetTopic, len(ret), first, lastRet)
	}
	for at, v := range l.ackedAt[ncRetTopic] {
		if first >= 0 && at.off >= first {
			if _, ok := ret[at]; !ok {
				l.problem("lost", "%s acknowledged %s at %d, after retention's start %d; not stored", ncRetTopic, ncName(v), at.off, first)
			}
		}
	}
	report := fmt.Sprintf("sent %d, acknowledged %d, stored %d (retention topic: %d acknowledged, %d left); stream s: %d deliveries (%d again), %d commits; queue w: %d deliveries (%d again, %d of acked messages within the crash window); p: %d deliveries, %d dead letters; %d crashes, %d pauses",
		len(l.attempted), len(l.acked), len(stored), len(l.ackedAt[ncRetTopic]), len(ret), len(l.sDels), sRedelivered, len(l.sCommits),
		len(l.wDels), wRedelivered, wInWindow, l.pDels, len(dlq), len(l.crashes), l.pauses)
	if len(l.problems) > 0 {
		t.Errorf("checker found problems %v:\n  %s\n%s\nlast server log tail:\n%s", l.counts, strings.Join(l.problems, "\n  "), report, tail(p.logs.String(), 80))
	}
	return report
}

// ncName shortens a message value for reports.
func ncName(v string) string {
	if i := strings.LastIndex(v, "|"); i >= 0 {
		return v[:i]
	}
	return v
}

func cyclesOr(short int) int {
	if *crashCycles > 0 {
		return *crashCycles
	}
	return short
}

// TestNodeKillUnderLoad: SIGKILL at a random moment 0.3–1.5 s into each
// life of the node, restart, go on; then drain and check.
func TestNodeKillUnderLoad(t *testing.T) {
	cycles := cyclesOr(4)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 3))
	dir, addr := t.TempDir(), freePort(t)
	l := newNodeLedger()
	t0 := time.Now()
	for life := range cycles {
		p, _ := startSpoolEnv(t, dir, addr, ncServerEnv, false)
		if life == 0 {
			ncSetup(t, addr)
		}
		ld := startLoad(l, addr, life, true)
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		from := l.now()
		p.kill()
		l.crashed(from)
		ld.stop()
	}
	report := l.finish(t, dir, addr)
	t.Logf("seed %d: %d kill cycles in %v; %s", seed, cycles, time.Since(t0).Round(time.Millisecond), report)
}

// TestNodePause: the node is stopped (SIGSTOP) under load for longer than
// the consumers' session timeout and the queue's ack timeout, then
// continued; leases and sessions expire and messages are delivered again,
// but nothing is lost and no message whose ack was confirmed is
// delivered again (no crash: the window is empty). Then drain and check.
func TestNodePause(t *testing.T) {
	cycles := cyclesOr(2)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 4))
	dir, addr := t.TempDir(), freePort(t)
	l := newNodeLedger()
	t0 := time.Now()
	p, _ := startSpoolEnv(t, dir, addr, ncServerEnv, false)
	ncSetup(t, addr)
	ld := startLoad(l, addr, 0, true)
	for range cycles {
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2*time.Second + time.Second + time.Duration(rng.IntN(1000))*time.Millisecond) // > session (2 s) and ack (1 s) timeouts
		if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		l.mu.Lock()
		l.pauses++
		l.mu.Unlock()
	}
	time.Sleep(time.Second)
	ld.stop()
	p.stop()
	report := l.finish(t, dir, addr)
	t.Logf("seed %d: %d pauses in %v; %s", seed, cycles, time.Since(t0).Round(time.Millisecond), report)
}

// TestNodeCrashPoints: for each named crash point the node is started with
// SPOOLTEST_CRASHPOINT=<point>:<n> (n random, so that it dies under load,
// not at its first write), loaded until it exits there (or 6 s, then
// SIGKILL), and restarted without it; one data directory through every
// point, then drain and check.
func TestNodeCrashPoints(t *testing.T) {
	rounds := 1
	if *crashCycles > 0 {
		rounds = max(1, *crashCycles/len(crashpoint.All))
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 5))
	dir, addr := t.TempDir(), freePort(t)
	l := newNodeLedger()
	t0 := time.Now()
	p, _ := startSpoolEnv(t, dir, addr, ncServerEnv, false)
	ncSetup(t, addr)
	p.stop()
	reached := map[string]int{}
	life := 0
	for range rounds {
		for _, point := range crashpoint.All {
			n := 1 + rng.IntN(20)
			if point == crashpoint.SeglogRetentionDelete || point == crashpoint.SeglogRoll || point == crashpoint.SeglogIndexWrite {
				n = 1 + rng.IntN(3)
			}
			env := append(slices.Clone(ncServerEnv), fmt.Sprintf("%s=%s:%d", crashpoint.Env, point, n))
			life++
			p, exited := startSpoolEnv(t, dir, addr, env, true)
			var ld *ncLoad
			if !exited {
				ld = startLoad(l, addr, life, true)
			}
			var err error
			select {
			case err = <-p.done:
				p.done <- err
			case <-time.After(6 * time.Second):
				p.kill()
				err = <-p.done
				p.done <- err
			}
			l.crashed(l.now())
			if ld != nil {
				ld.stop()
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) && ee.ExitCode() == crashpoint.ExitCode {
				reached[point]++
			} else if !strings.Contains(p.logs.String(), "crashpoint:") {
				t.Logf("%s:%d not reached in 6 s (killed)", point, n)
			} else {
				t.Errorf("%s:%d: exit %v\n%s", point, n, err, tail(p.logs.String(), 80))
			}
		}
	}
	report := l.finish(t, dir, addr)
	t.Logf("seed %d: %d crash-point lives in %v, points reached %v; %s", seed, life, time.Since(t0).Round(time.Millisecond), reached, report)
	if *crashCycles == 0 {
		for _, point := range crashpoint.All {
			if reached[point] == 0 {
				t.Logf("crash point %s was not reached in this run", point)
			}
		}
	}
}

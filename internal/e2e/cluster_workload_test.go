package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// workload runs Kafka clients (franz-go) against a testCluster and writes
// everything they do into a ledger: one idempotent producer (acks=all)
// sending to every partition in turn, and a consumer group whose members
// commit what they polled after each poll.
type workload struct {
	t      *testing.T
	l      *ledger
	c      *testCluster
	topic  string
	parts  int32
	group  string
	every  time.Duration // between two sends
	stopP  chan struct{}
	stopC  chan struct{}
	wgP    sync.WaitGroup
	wgC    sync.WaitGroup
	prod   *kgo.Client
	errsMu sync.Mutex
	errs   []string // client errors worth a look, a few
}

func newWorkload(t *testing.T, c *testCluster, l *ledger, topic string, parts int32) *workload {
	return &workload{t: t, l: l, c: c, topic: topic, parts: parts, group: "ledger", every: 4 * time.Millisecond,
		stopP: make(chan struct{}), stopC: make(chan struct{})}
}

func (w *workload) note(format string, args ...any) {
	w.errsMu.Lock()
	defer w.errsMu.Unlock()
	if len(w.errs) < 20 {
		w.errs = append(w.errs, fmt.Sprintf(format, args...))
	}
}

// clientOpts are what every client of the workload uses: every node as a
// seed, and timeouts short enough that a request to a paused or cut-off
// node is given up within seconds.
func (w *workload) clientOpts() []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(w.c.kafkaAddrs()...), kgo.RequestTimeoutOverhead(time.Second),
		kgo.DialTimeout(2 * time.Second), kgo.MetadataMinAge(100 * time.Millisecond), kgo.RetryTimeout(45 * time.Second)}
}

// startProducer starts the producer: one message every w.every, to
// partitions in turn, at most 32 in flight per partition (a partition
// without a leader holds up only its own messages, until all 32 wait).
func (w *workload) startProducer(name string) {
	opts := append(w.clientOpts(), kgo.DefaultProduceTopic(w.topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProduceRequestTimeout(2*time.Second), kgo.RecordDeliveryTimeout(60*time.Second))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.prod = cl
	w.wgP.Add(1)
	go func() {
		defer w.wgP.Done()
		sems := make([]chan struct{}, w.parts)
		for i := range sems {
			sems[i] = make(chan struct{}, 32)
		}
		seq := make([]int, w.parts)
		tick := time.NewTicker(w.every)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-w.stopP:
				return
			case <-tick.C:
			}
			p := int32(i % int(w.parts))
			select {
			case sems[p] <- struct{}{}:
			default:
				continue // that partition is stuck: send to the next
			}
			op := w.l.send(name, p, seq[p])
			seq[p]++
			r := &kgo.Record{Partition: p, Key: []byte(op.id), Value: []byte(op.id)}
			cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
				w.l.sent(op, r.Offset, err)
				if err != nil {
					w.note("produce %s: %v", op.id, err)
				}
				<-sems[p]
			})
		}
	}()
}

// stopProducer stops sending and waits for what is in flight.
func (w *workload) stopProducer() {
	close(w.stopP)
	w.wgP.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := w.prod.Flush(ctx); err != nil {
		w.t.Errorf("producer flush: %v", err)
	}
	w.prod.Close()
}

// startConsumers starts n members of the consumer group, member i first
// connected to node i (mod the cluster's size).
func (w *workload) startConsumers(n int) {
	for i := range n {
		name := fmt.Sprintf("C%d", i)
		var mu sync.Mutex
		session := 0
		opts := append(w.clientOpts(), kgo.ConsumerGroup(w.group), kgo.ConsumeTopics(w.topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
			kgo.FetchMaxWait(200*time.Millisecond), kgo.SessionTimeout(10*time.Second), kgo.RebalanceTimeout(10*time.Second),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
				mu.Lock()
				session++
				mu.Unlock()
			}))
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			w.t.Fatal(err)
		}
		w.wgC.Add(1)
		go func() {
			defer w.wgC.Done()
			defer cl.Close()
			for {
				select {
				case <-w.stopC:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				fs := cl.PollFetches(ctx)
				cancel()
				// The membership the records were fetched in: the commit
				// names it (see commit).
				member, gen := cl.GroupMetadata()
				mu.Lock()
				s := session
				mu.Unlock()
				next := map[int32]kgo.EpochOffset{}
				fs.EachRecord(func(r *kgo.Record) {
					w.l.delivered(name, s, r.Partition, r.Offset, string(r.Value))
					next[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
				})
				fs.EachError(func(topic string, p int32, err error) {
					if !errors.Is(err, context.DeadlineExceeded) {
						w.note("%s fetch %s/%d: %v", name, topic, p, err)
					}
				})
				if len(next) > 0 {
					w.commit(cl, i, member, gen, next)
				}
				cl.AllowRebalance()
			}
		}()
	}
}

// commit commits a member's offsets and records each partition's outcome.
// It names the member and generation the records were polled in, as a
// careful client does: kgo's own commit takes the membership current when
// the request goes out, and a member that lost its membership while it
// processed (the coordinator moved: group state is the coordinator's
// memory) rejoins before its commit is sent, so that offsets of records
// polled in the old membership would be committed in the new one, where
// another member may have consumed the partition past them meanwhile —
// no broker can tell such a commit from a good one. Named, it is refused
// (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID) like the Java consumer's
// CommitFailedException. A member without a membership commits nothing.
func (w *workload) commit(cl *kgo.Client, client int, member string, gen int32, next map[int32]kgo.EpochOffset) {
	if member == "" || gen < 0 {
		return
	}
	ops := map[int32]*offsetOp{}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = w.group, member, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = w.topic
	for p, eo := range next {
		ops[p] = w.l.offsetCall(w.group, client, p, true, eo.Offset)
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, eo.Offset, eo.Epoch
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if resp != nil {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if op := ops[p.Partition]; op != nil {
					// An error code is the last attempt's: the client
					// retries a commit answered "coordinator not
					// available", an answer that (in Kafka as here) may
					// come after the write was proposed and still takes
					// effect, and a later attempt can be refused (the
					// member gone meanwhile). So a refused commit's outcome
					// is unknown too.
					perr := kerr.ErrorForCode(p.ErrorCode)
					w.l.offsetDone(op, 0, perr, perr == nil)
					delete(ops, p.Partition)
				}
			}
		}
	}
	for _, op := range ops { // no answer: the outcome is unknown
		if err == nil {
			err = errors.New("no answer for the partition")
		}
		w.l.offsetDone(op, 0, err, false)
	}
}

// stopConsumers waits until every acknowledged message was delivered (at
// most d), then stops the group's members.
func (w *workload) stopConsumers(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		got := w.l.deliveredIDs()
		missing := 0
		for _, s := range w.l.acked() {
			if got[s.id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(w.stopC)
	w.wgC.Wait()
}

// startOffsetReader reads the group's committed offsets every interval
// until the consumers stop, as client id.
func (w *workload) startOffsetReader(client int, interval time.Duration) {
	cl, err := kgo.NewClient(w.clientOpts()...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.wgC.Add(1)
	go func() {
		defer w.wgC.Done()
		defer cl.Close()
		for {
			select {
			case <-w.stopC:
				return
			case <-time.After(interval):
			}
			w.readCommittedWith(cl, client)
		}
	}()
}

// readCommitted reads the group's committed offsets through any node
// (OffsetFetch reaches the coordinator) into the ledger, as client id.
func (w *workload) readCommitted(client int) {
	cl, err := kgo.NewClient(w.clientOpts()...)
	if err != nil {
		w.t.Fatal(err)
	}
	defer cl.Close()
	w.readCommittedWith(cl, client)
}

func (w *workload) readCommittedWith(cl *kgo.Client, client int) {
	adm := kadm.NewClient(cl)
	ops := map[int32]*offsetOp{}
	for p := range w.parts {
		ops[p] = w.l.offsetCall(w.group, client, p, false, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsets(ctx, w.group)
	for p, op := range ops {
		switch {
		case err != nil:
			w.l.offsetDone(op, 0, err, true)
		default:
			o, ok := resp.Lookup(w.topic, p)
			switch {
			case !ok:
				w.l.offsetDone(op, -1, nil, true)
			case o.Err != nil:
				w.l.offsetDone(op, 0, o.Err, true)
			default:
				w.l.offsetDone(op, o.At, nil, true)
			}
		}
	}
}

// checkLedger stops every node, reads every partition's replicas from
// their data directories and checks the ledger against them.
func (w *workload) checkLedger(requireDrain bool) *ledgerReport {
	w.t.Helper()
	w.c.stopAll()
	reps := map[int32][]*replica{}
	for p := range w.parts {
		for _, nd := range w.c.nodes {
			r, err := readReplica(nd.id, nd.dir, w.topic, p)
			if err != nil {
				w.t.Fatal(err)
			}
			reps[p] = append(reps[p], r)
		}
	}
	r := w.l.check(reps, requireDrain)
	for _, e := range w.errs {
		w.t.Logf("client: %s", e)
	}
	return r
}

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/vfs"
)

// A ledger records what the clients of a cluster test did and saw — every
// publish with its outcome, every delivery, every offset commit and every
// read of committed offsets — with the times each call started and
// returned, and checks it against the partition logs each replica holds
// at the end (read from the nodes' data directories after they stopped):
//
//   - no acknowledged publish is lost: each is on every replica, at the
//     offset its acknowledgement named;
//   - no offset holds two different messages: the replicas' logs are the
//     same raft entries (index, term, bytes) where they overlap, and every
//     delivery carried what the logs hold at its offset;
//   - a partition keeps each producer's order, and holds each message
//     once (idempotent producers' retries are recognised);
//   - a committed offset never moves backwards: a commit or read that
//     started after another returned never shows a lower offset;
//   - committed offsets are a linearizable register per partition
//     (porcupine; ledger_offsets_test.go).
//
// Messages carry their identity in key and value: "<producer>/<partition>/<seq>",
// seq counting from 0 per producer and partition.
type ledger struct {
	mu      sync.Mutex
	t0      time.Time
	sends   []*sendOp
	dels    []delivery
	commits []*offsetOp
	reads   []*offsetOp
}

func newLedger() *ledger { return &ledger{t0: time.Now()} }

// now is the ledger's clock: monotonic time since it was made.
func (l *ledger) now() time.Duration { return time.Since(l.t0) }

// sendOp is one publish of one message.
type sendOp struct {
	id        string
	producer  string
	partition int32
	seq       int
	call, ret time.Duration
	done      bool
	acked     bool
	offset    int64
	err       string
}

// delivery is one message a consumer received.
type delivery struct {
	consumer  string
	session   int // counts the consumer's assignments
	partition int32
	offset    int64
	id        string
	at        time.Duration
}

// offsetOp is a commit (write) or a read of a consumer group's committed
// offset of one partition. A failed one is kept: a commit whose outcome is
// unknown may still have taken effect.
type offsetOp struct {
	group     string
	client    int
	partition int32
	write     bool
	offset    int64 // committed, or read (-1: none)
	call, ret time.Duration
	ok        bool
	definite  bool // a failure that certainly did not take effect
	err       string
}

func msgID(producer string, p int32, seq int) string {
	return fmt.Sprintf("%s/%d/%d", producer, p, seq)
}

// parseID splits a message id; ok false for anything else.
func parseID(id string) (producer string, p int32, seq int, ok bool) {
	f := strings.Split(id, "/")
	if len(f) != 3 {
		return "", 0, 0, false
	}
	pp, err1 := strconv.Atoi(f[1])
	s, err2 := strconv.Atoi(f[2])
	return f[0], int32(pp), s, err1 == nil && err2 == nil
}

// send records the start of a publish and returns it, to finish with sent.
func (l *ledger) send(producer string, p int32, seq int) *sendOp {
	op := &sendOp{id: msgID(producer, p, seq), producer: producer, partition: p, seq: seq}
	l.mu.Lock()
	op.call = l.now()
	l.sends = append(l.sends, op)
	l.mu.Unlock()
	return op
}

// sent records a publish's outcome.
func (l *ledger) sent(op *sendOp, offset int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	op.ret, op.done = l.now(), true
	if err != nil {
		op.err = err.Error()
		return
	}
	op.acked, op.offset = true, offset
}

func (l *ledger) delivered(consumer string, session int, p int32, offset int64, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dels = append(l.dels, delivery{consumer: consumer, session: session, partition: p, offset: offset, id: id, at: l.now()})
}

// offsetCall records the start of a commit or a read of committed offsets.
func (l *ledger) offsetCall(group string, client int, p int32, write bool, offset int64) *offsetOp {
	op := &offsetOp{group: group, client: client, partition: p, write: write, offset: offset}
	l.mu.Lock()
	defer l.mu.Unlock()
	op.call = l.now()
	if write {
		l.commits = append(l.commits, op)
	} else {
		l.reads = append(l.reads, op)
	}
	return op
}

// offsetDone records its outcome: for a read, the offset read.
func (l *ledger) offsetDone(op *offsetOp, offset int64, err error, definite bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	op.ret = l.now()
	if err != nil {
		op.err, op.definite = err.Error(), definite
		return
	}
	op.ok = true
	if !op.write {
		op.offset = offset
	}
}

// acked returns the acknowledged publishes.
func (l *ledger) acked() []*sendOp {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*sendOp
	for _, s := range l.sends {
		if s.acked {
			out = append(out, s)
		}
	}
	return out
}

// deliveredIDs returns how many times each message was delivered.
func (l *ledger) deliveredIDs() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, d := range l.dels {
		out[d.id]++
	}
	return out
}

// replica is one node's copy of one partition: its raft entries and the
// records of its data entries, in log order.
type replica struct {
	node      int
	partition int32
	entries   []seglog.Entry
	records   []logRecord
}

type logRecord struct {
	offset int64
	id     string // the record's value
	index  uint64 // the raft entry holding it
	term   uint64
}

// readReplica reads partition p of topic from a stopped node's data
// directory. It opens a copy of the partition's directory with seglog (the
// node's own files are not touched: opening a log may recover it).
func readReplica(node int, dataDir, topic string, p int32) (*replica, error) {
	dirs, err := filepath.Glob(filepath.Join(dataDir, "topics", topic+"-*"))
	if err != nil || len(dirs) != 1 {
		return nil, fmt.Errorf("node %d: topic %s: directories %v, %v", node, topic, dirs, err)
	}
	src := filepath.Join(dirs[0], strconv.Itoa(int(p)))
	cp, err := os.MkdirTemp("", "spool-ledger-replica")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cp)
	if err := copyDir(src, cp); err != nil {
		return nil, err
	}
	log, _, err := seglog.Open(vfs.Default, cp, seglog.Options{Replicated: true})
	if err != nil {
		return nil, fmt.Errorf("node %d: open %s/%d: %w", node, topic, p, err)
	}
	defer log.Close()
	r := &replica{node: node, partition: p}
	first, last := log.FirstIndex(), log.LastIndex()
	if last >= first {
		err = log.ScanEntries(first, last+1, func(e seglog.Entry) bool {
			r.entries = append(r.entries, e)
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("node %d: scan %s/%d: %w", node, topic, p, err)
		}
	}
	for _, e := range r.entries {
		if e.Internal {
			continue
		}
		b, err := batch.Parse(e.Data)
		if err != nil {
			return nil, fmt.Errorf("node %d: %s/%d entry %d: %w", node, topic, p, e.Index, err)
		}
		for rec, err := range b.Records(64 << 20) {
			if err != nil {
				return nil, fmt.Errorf("node %d: %s/%d entry %d: %w", node, topic, p, e.Index, err)
			}
			r.records = append(r.records, logRecord{offset: b.Header.RecordOffset(rec), id: string(rec.Value), index: e.Index, term: e.Term})
		}
	}
	return r, nil
}

func copyDir(src, dst string) error {
	names, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n.IsDir() {
			continue
		}
		in, err := os.Open(filepath.Join(src, n.Name()))
		if err != nil {
			return err
		}
		out, err := os.Create(filepath.Join(dst, n.Name()))
		if err == nil {
			_, err = io.Copy(out, in)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
		in.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// ledgerReport is what check found.
type ledgerReport struct {
	Sent, Acked, Failed, Unfinished int
	// Stored counts the distinct messages on the replicas; Redelivered
	// the deliveries beyond each message's first.
	Stored, Delivered, Redelivered int
	Commits, Reads                 int
	Lost                           int            // acknowledged, missing (or elsewhere) on a replica
	Divergent                      int            // raft entries or offsets that differ between replicas
	Duplicates                     int            // a message stored at two offsets
	Reordered                      int            // a producer's messages out of order in a partition
	BadDeliveries                  int            // a delivery that is not what the logs hold at its offset
	NonMonotonic                   int            // a consumer going back within one assignment
	Undelivered                    int            // acknowledged and never delivered (when a drain was required)
	CommitsBack                    int            // a committed offset seen moving backwards
	CommitErrors                   map[string]int // commits refused or failed, by error
	PhantomReads                   int            // a read of an offset only refused commits wrote
	Problems                       []string
	CommitProblems                 []string
}

func (r *ledgerReport) problem(counter *int, format string, args ...any) {
	*counter++
	if len(r.Problems) < 40 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// ok reports whether the data checks passed (commit checks are
// CommitProblems, judged by the caller).
func (r *ledgerReport) ok() bool {
	return r.Lost+r.Divergent+r.Duplicates+r.Reordered+r.BadDeliveries+r.NonMonotonic+r.Undelivered == 0
}

func (r *ledgerReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d: acknowledged %d, failed %d, unfinished %d; stored %d; delivered %d (%d again); commits %d, reads %d\n",
		r.Sent, r.Acked, r.Failed, r.Unfinished, r.Stored, r.Delivered, r.Redelivered, r.Commits, r.Reads)
	fmt.Fprintf(&b, "lost %d, divergent %d, duplicates %d, reordered %d, bad deliveries %d, non-monotonic %d, undelivered %d, commits backwards %d",
		r.Lost, r.Divergent, r.Duplicates, r.Reordered, r.BadDeliveries, r.NonMonotonic, r.Undelivered, r.CommitsBack)
	if r.PhantomReads > 0 {
		fmt.Fprintf(&b, ", reads of refused commits %d", r.PhantomReads)
	}
	if len(r.CommitErrors) > 0 {
		fmt.Fprintf(&b, "; failed commits %v", r.CommitErrors)
	}
	for _, p := range r.Problems {
		b.WriteString("\n  " + p)
	}
	for _, p := range r.CommitProblems {
		b.WriteString("\n  commit: " + p)
	}
	return b.String()
}

// check checks the ledger against the replicas of every partition
// (replicas[p] holds one per node). requireDrain: every acknowledged
// message must have been delivered.
func (l *ledger) check(replicas map[int32][]*replica, requireDrain bool) *ledgerReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &ledgerReport{Sent: len(l.sends), Delivered: len(l.dels), Commits: len(l.commits), Reads: len(l.reads)}
	canon := map[int32]map[int64]string{} // partition → offset → id, agreed by the replicas
	for p, reps := range replicas {
		canon[p] = checkReplicas(r, p, reps)
	}
	stored := map[string]bool{}
	for p, offs := range canon {
		checkPartition(r, p, offs, stored)
	}
	r.Stored = len(stored)
	for _, s := range l.sends {
		switch {
		case !s.done:
			r.Unfinished++
		case !s.acked:
			r.Failed++
		default:
			r.Acked++
			for _, rep := range replicas[s.partition] {
				if id, ok := recordAt(rep, s.offset); !ok || id != s.id {
					r.problem(&r.Lost, "%s acknowledged at %d/%d: node %d holds %q there", s.id, s.partition, s.offset, rep.node, id)
				}
			}
		}
	}
	checkAckOrder(r, l.sends)
	l.checkDeliveries(r, canon, requireDrain)
	r.CommitsBack, r.CommitProblems = checkMonotonicOffsets(l.commits, l.reads)
	r.PhantomReads, r.CommitProblems = phantomReads(l.commits, l.reads, r.CommitProblems)
	r.CommitErrors = map[string]int{}
	for _, op := range l.commits {
		if !op.ok {
			e, _, _ := strings.Cut(op.err, ":")
			r.CommitErrors[e]++
		}
	}
	return r
}

// checkReplicas compares the replicas of partition p entry by entry where
// they overlap, and returns offset → id as they hold it.
func checkReplicas(r *ledgerReport, p int32, reps []*replica) map[int64]string {
	offs := map[int64]string{}
	where := map[int64]int{}
	for _, rep := range reps {
		for _, rec := range rep.records {
			if id, ok := offs[rec.offset]; ok && id != rec.id {
				r.problem(&r.Divergent, "partition %d offset %d: node %d holds %q, node %d %q", p, rec.offset, where[rec.offset], id, rep.node, rec.id)
				continue
			}
			offs[rec.offset], where[rec.offset] = rec.id, rep.node
		}
	}
	for i, a := range reps {
		byIndex := map[uint64]seglog.Entry{}
		for _, e := range a.entries {
			byIndex[e.Index] = e
		}
		for _, b := range reps[i+1:] {
			for _, e := range b.entries {
				o, ok := byIndex[e.Index]
				if ok && (o.Term != e.Term || o.Internal != e.Internal || !bytes.Equal(o.Data, e.Data)) {
					r.problem(&r.Divergent, "partition %d raft entry %d: node %d has term %d (%d bytes), node %d term %d (%d bytes)",
						p, e.Index, a.node, o.Term, len(o.Data), b.node, e.Term, len(e.Data))
				}
			}
		}
	}
	return offs
}

// recordAt returns the id a replica holds at an offset.
func recordAt(rep *replica, off int64) (string, bool) {
	i := sort.Search(len(rep.records), func(i int) bool { return rep.records[i].offset >= off })
	if i < len(rep.records) && rep.records[i].offset == off {
		return rep.records[i].id, true
	}
	return "", false
}

// checkPartition checks one partition's agreed contents: every message
// once, each producer's messages in the order sent.
func checkPartition(r *ledgerReport, p int32, offs map[int64]string, stored map[string]bool) {
	keys := slices.Sorted(func(yield func(int64) bool) {
		for o := range offs {
			if !yield(o) {
				return
			}
		}
	})
	seen := map[string]int64{}
	lastSeq := map[string]int{}
	for _, o := range keys {
		id := offs[o]
		if prev, ok := seen[id]; ok {
			r.problem(&r.Duplicates, "%s is at offsets %d and %d of partition %d", id, prev, o, p)
			continue
		}
		seen[id] = o
		stored[id] = true
		prod, pp, seq, ok := parseID(id)
		if !ok || pp != p {
			r.problem(&r.Divergent, "partition %d offset %d holds %q, which no producer sent there", p, o, id)
			continue
		}
		if last, ok := lastSeq[prod]; ok && seq < last {
			r.problem(&r.Reordered, "partition %d: %s at offset %d comes after %s/%d/%d", p, id, o, prod, p, last)
		}
		lastSeq[prod] = max(lastSeq[prod], seq)
	}
}

// checkAckOrder: a producer's acknowledged messages to a partition have
// offsets in the order it sent them.
func checkAckOrder(r *ledgerReport, sends []*sendOp) {
	type key struct {
		prod string
		p    int32
	}
	by := map[key][]*sendOp{}
	for _, s := range sends {
		if s.acked {
			k := key{s.producer, s.partition}
			by[k] = append(by[k], s)
		}
	}
	for _, ss := range by {
		sort.Slice(ss, func(i, j int) bool { return ss[i].seq < ss[j].seq })
		for i := 1; i < len(ss); i++ {
			if ss[i].offset <= ss[i-1].offset {
				r.problem(&r.Reordered, "%s acknowledged at offset %d, after %s at %d", ss[i].id, ss[i].offset, ss[i-1].id, ss[i-1].offset)
			}
		}
	}
}

// checkDeliveries: each delivery is what the logs hold at its offset; a
// consumer moves forward within one assignment; with requireDrain every
// acknowledged message was delivered.
func (l *ledger) checkDeliveries(r *ledgerReport, canon map[int32]map[int64]string, requireDrain bool) {
	type key struct {
		consumer string
		session  int
		p        int32
	}
	last := map[key]int64{}
	count := map[string]int{}
	for _, d := range l.dels {
		count[d.id]++
		if id, ok := canon[d.partition][d.offset]; !ok || id != d.id {
			r.problem(&r.BadDeliveries, "%s delivered %q from %d/%d, where the logs hold %q", d.consumer, d.id, d.partition, d.offset, id)
		}
		k := key{d.consumer, d.session, d.partition}
		if prev, ok := last[k]; ok && d.offset <= prev {
			r.problem(&r.NonMonotonic, "%s (assignment %d) got %d/%d after %d", d.consumer, d.session, d.partition, d.offset, prev)
		}
		last[k] = d.offset
	}
	for _, n := range count {
		r.Redelivered += n - 1
	}
	if !requireDrain {
		return
	}
	for _, s := range l.sends {
		if s.acked && count[s.id] == 0 {
			r.problem(&r.Undelivered, "%s (at %d/%d) was never delivered", s.id, s.partition, s.offset)
		}
	}
}

// checkMonotonicOffsets checks, per group and partition, that no commit
// or read shows an offset below one that a commit or read which returned
// before it started had shown: committed offsets never move backwards.
// (Commits that failed are left out: they may or may not have happened.)
func checkMonotonicOffsets(commits, reads []*offsetOp) (int, []string) {
	type key struct {
		group string
		p     int32
	}
	by := map[key][]*offsetOp{}
	for _, op := range append(slices.Clone(commits), reads...) {
		if op.ok {
			k := key{op.group, op.partition}
			by[k] = append(by[k], op)
		}
	}
	n := 0
	var problems []string
	for k, ops := range by {
		byRet := slices.Clone(ops)
		sort.Slice(byRet, func(i, j int) bool { return byRet[i].ret < byRet[j].ret })
		sort.Slice(ops, func(i, j int) bool { return ops[i].call < ops[j].call })
		j := 0
		var high *offsetOp // the highest offset among the operations done before ops[i] started
		for _, op := range ops {
			for j < len(byRet) && byRet[j].ret < op.call {
				if high == nil || byRet[j].offset > high.offset {
					high = byRet[j]
				}
				j++
			}
			if high != nil && op.offset < high.offset {
				n++
				if len(problems) < 20 {
					problems = append(problems, fmt.Sprintf("%s partition %d: %s of %d at %v, after %s of %d done at %v",
						k.group, k.p, opName(op), op.offset, op.call.Round(time.Millisecond), opName(high), high.offset, high.ret.Round(time.Millisecond)))
				}
			}
		}
	}
	return n, problems
}

func opName(op *offsetOp) string {
	if op.write {
		return fmt.Sprintf("commit (client %d)", op.client)
	}
	return fmt.Sprintf("read (client %d)", op.client)
}

// stall returns, of the messages to partition p in flight at t (sent
// before, not acknowledged), how many there were and how long after t the
// last of them was acknowledged (or failed).
func (l *ledger) stall(p int32, t time.Duration) (n int, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sends {
		if s.partition == p && s.call < t && (!s.done || s.ret > t) {
			n++
			if s.done {
				d = max(d, s.ret-t)
			}
		}
	}
	return n, d
}

// ackGap returns the longest time between two consecutive
// acknowledgements of partition p in [from, to].
func (l *ledger) ackGap(p int32, from, to time.Duration) time.Duration {
	l.mu.Lock()
	var rets []time.Duration
	for _, s := range l.sends {
		if s.partition == p && s.acked && s.ret >= from && s.ret <= to {
			rets = append(rets, s.ret)
		}
	}
	l.mu.Unlock()
	return longestGap(rets, from, to)
}

// deliveryGap returns the longest time between two consecutive
// deliveries from partition p in [from, to].
func (l *ledger) deliveryGap(p int32, from, to time.Duration) time.Duration {
	l.mu.Lock()
	var ats []time.Duration
	for _, d := range l.dels {
		if d.partition == p && d.at >= from && d.at <= to {
			ats = append(ats, d.at)
		}
	}
	l.mu.Unlock()
	return longestGap(ats, from, to)
}

func longestGap(rets []time.Duration, from, to time.Duration) time.Duration {
	slices.Sort(rets)
	gap, prev := time.Duration(0), from
	for _, r := range rets {
		gap, prev = max(gap, r-prev), r
	}
	return max(gap, to-prev)
}

// dumpOffsets logs partition p's commits and reads, and its deliveries'
// first and last offsets per consumer assignment.
func (l *ledger) dumpOffsets(t interface{ Logf(string, ...any) }, p int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	ops := append(slices.Clone(l.commits), l.reads...)
	sort.Slice(ops, func(i, j int) bool { return ops[i].call < ops[j].call })
	for _, op := range ops {
		if op.partition == p {
			fmt.Fprintf(&b, "\n  %v–%v %s %d ok=%v %s", op.call.Round(time.Millisecond), op.ret.Round(time.Millisecond), opName(op), op.offset, op.ok, op.err)
		}
	}
	t.Logf("partition %d offsets:%s", p, b.String())
	b.Reset()
	type run struct {
		consumer    string
		session     int
		first, last int64
		n           int
		from, to    time.Duration
	}
	var runs []*run
	for _, d := range l.dels {
		if d.partition != p {
			continue
		}
		if k := len(runs) - 1; k >= 0 && runs[k].consumer == d.consumer && runs[k].session == d.session && d.offset > runs[k].last {
			runs[k].last, runs[k].to = d.offset, d.at
			runs[k].n++
			continue
		}
		runs = append(runs, &run{d.consumer, d.session, d.offset, d.offset, 1, d.at, d.at})
	}
	for _, r := range runs {
		fmt.Fprintf(&b, "\n  %v–%v %s (assignment %d): %d deliveries, offsets %d–%d", r.from.Round(time.Millisecond), r.to.Round(time.Millisecond), r.consumer, r.session, r.n, r.first, r.last)
	}
	t.Logf("partition %d deliveries:%s", p, b.String())
}

// phantomReads counts reads that returned an offset (other than none or
// the start) which no commit wrote but commits that were refused with an
// error code: a refused commit that took effect.
func phantomReads(commits, reads []*offsetOp, problems []string) (int, []string) {
	type key struct {
		group string
		p     int32
		off   int64
	}
	ok, refused := map[key]bool{}, map[key]*offsetOp{}
	for _, c := range commits {
		k := key{c.group, c.partition, c.offset}
		if c.ok || !c.definite {
			ok[k] = true
		} else {
			refused[k] = c
		}
	}
	n := 0
	for _, r := range reads {
		k := key{r.group, r.partition, r.offset}
		if c := refused[k]; r.ok && r.offset > 0 && !ok[k] && c != nil {
			n++
			if len(problems) < 40 {
				problems = append(problems, fmt.Sprintf("%s partition %d: read (client %d) at %v returned %d, which only a refused commit wrote (%v–%v: %s)",
					r.group, r.partition, r.client, r.call.Round(time.Millisecond), r.offset, c.call.Round(time.Millisecond), c.ret.Round(time.Millisecond), c.err))
			}
		}
	}
	return n, problems
}

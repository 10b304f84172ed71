package partlog

import (
	"fmt"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/spoolmq/spool/internal/vfs"
)

// TestFaultsLeaveAPrefixRaftAccepts fails the i-th write, sync, create or
// truncation of the partition log's files, for i = 0, 1, … until a
// workload of appends and overwrites runs clean. The failed append and
// every later one must fail (the log is sticky-failed); then a crash that
// keeps a random part of the unsynced writes (possibly tearing the last)
// must reopen to a prefix of what was submitted that holds every
// acknowledged entry raft had not told it to replace, and raft must accept
// the storage.
func TestFaultsLeaveAPrefixRaftAccepts(t *testing.T) {
	rng := seeded(t, 3)
	for i := int64(0); ; i++ {
		mem := vfs.NewMemFS()
		efs := vfs.NewErrorFS(mem, nil)
		dir := t.TempDir()
		d := openDisk(t, efs, dir)
		inj := vfs.OnIndex(i)
		efs.SetInjector(vfs.All(vfs.OnKinds(vfs.OpFileWrite, vfs.OpFileSync, vfs.OpCreate, vfs.OpFileTruncate), inj))
		var acked, tried []*raftpb.Entry // the log as last acknowledged, and with the last append
		term, failed := uint64(1), false
		for step := range 40 {
			from := uint64(len(acked)) + 1
			if len(acked) > 0 && rng.IntN(4) == 0 {
				from = 1 + rng.Uint64N(uint64(len(acked)))
				term++
			}
			ents := randomEntries(rng, acked[:from-1], from, term, 1+rng.IntN(5), fmt.Sprintf("%d.%d", i, step))
			tried = append(append([]*raftpb.Entry(nil), acked[:from-1]...), ents...)
			hs := &raftpb.HardState{Term: new(term), Commit: new(from - 1)}
			w, err := d.s.Append(appendMsg(ents, hs))
			if err == nil {
				err = w.Wait()
			}
			if err != nil {
				failed = true
				if _, err2 := d.s.Append(appendMsg(randomEntries(rng, nil, uint64(len(tried))+1, term, 1, "after"), nil)); err2 == nil {
					t.Fatalf("op %d: an append after the failure was accepted", i)
				}
				break
			}
			acked = tried
		}
		if failed != inj.Fired() {
			t.Fatalf("op %d: injected %v but the workload failed: %v", i, inj.Fired(), failed)
		}
		d.close()
		crash := mem.CrashClone(vfs.CrashOptions{Rand: rng, TearLastWrite: true})
		checkRecovered(t, fmt.Sprintf("op %d", i), openDisk(t, crash, dir), acked, tried)
		if !inj.Fired() {
			t.Logf("workload ran clean after %d injection points", i)
			return
		}
	}
}

// checkRecovered checks a reopened storage: its log must be a prefix of
// the log as last acknowledged or of the log with the failed append, and
// hold at least what the two have in common (the entries raft did not ask
// to replace: the ones it did were never committed, and no answer went out
// after the failed append); and raft must start on it.
func checkRecovered(t *testing.T, what string, d *disk, acked, tried []*raftpb.Entry) {
	t.Helper()
	defer d.close()
	last, _ := d.s.LastIndex()
	var got []*raftpb.Entry
	if last > 0 {
		var err error
		if got, err = d.s.Entries(1, last+1, 1<<62); err != nil || uint64(len(got)) != last {
			t.Fatalf("%s: entries: %d %v, want %d", what, len(got), err, last)
		}
	}
	kept := common(acked, tried)
	if len(got) < kept || !isPrefix(got, acked) && !isPrefix(got, tried) {
		t.Fatalf("%s: recovered %d entries (%d in common with the acknowledged %d, %d with the %d submitted)",
			what, len(got), common(got, acked), len(acked), common(got, tried), len(tried))
	}
	hs, _, _ := d.s.InitialState()
	if hs.GetCommit() > last {
		t.Fatalf("%s: commit %d past the last entry %d", what, hs.GetCommit(), last)
	}
	if _, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: d.s,
		MaxInflightMsgs: 16, AsyncStorageWrites: true, Logger: discardLogger{}}); err != nil {
		t.Fatalf("%s: raft refuses the recovered storage: %v", what, err)
	}
}

// common returns the length of the longest common prefix of a and b.
func common(a, b []*raftpb.Entry) int {
	n := 0
	for n < len(a) && n < len(b) && proto.Equal(a[n], b[n]) {
		n++
	}
	return n
}

func isPrefix(a, b []*raftpb.Entry) bool { return len(a) <= len(b) && common(a, b) == len(a) }

package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/anishathalye/porcupine"
)

// Committed offsets as a linearizable register, one per consumer group and
// partition: a commit writes it, an OffsetFetch reads it (-1: nothing
// committed). porcupine searches for an order of the operations, each
// taking effect at one instant between its call and its return, in which
// every read returns the last write before it. A commit that failed with
// an unknown outcome (a timeout, a broken connection) may have taken
// effect at any time after its call: it gets a return at infinity, as
// etcd's robustness tests do; one refused with an error code did not
// happen and is left out, as are failed reads.

type offsetInput struct {
	key    string // group/partition
	write  bool
	offset int64
}

var offsetModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(offsetInput).key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return int64(-1) },
	Step: func(state, input, output any) (bool, any) {
		in := input.(offsetInput)
		if in.write {
			return true, in.offset
		}
		return output.(int64) == state.(int64), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(offsetInput)
		if in.write {
			return fmt.Sprintf("%s commit %d", in.key, in.offset)
		}
		return fmt.Sprintf("%s read → %d", in.key, output.(int64))
	},
	DescribeState: func(state any) string { return fmt.Sprint(state.(int64)) },
}

// offsetHistory turns the ledger's commits and reads into porcupine's
// operations.
//
// A commit of unknown outcome whose offset no read of its register ever
// returned is left out: the history is linearizable with it exactly when
// it is without it (with it, it can take effect last, after every other
// operation; without it, an order that held it loses nothing, as no read
// followed it before the next write — such a read would have returned
// its offset). Under a network partition many commits end unknown, and
// each one left in, open until infinity, multiplies porcupine's search.
func (l *ledger) offsetHistory() []porcupine.Operation {
	l.mu.Lock()
	defer l.mu.Unlock()
	type value struct {
		group     string
		partition int32
		offset    int64
	}
	read := map[value]bool{}
	for _, op := range l.reads {
		if op.ok {
			read[value{op.group, op.partition, op.offset}] = true
		}
	}
	var h []porcupine.Operation
	for _, op := range append(append([]*offsetOp(nil), l.commits...), l.reads...) {
		if !op.ok && (op.definite || !op.write) {
			continue
		}
		if !op.ok && !read[value{op.group, op.partition, op.offset}] {
			continue
		}
		ret := int64(op.ret)
		if !op.ok {
			ret = math.MaxInt64
		}
		out := any(int64(0))
		if !op.write {
			out = op.offset
		}
		h = append(h, porcupine.Operation{
			ClientId: op.client,
			Input:    offsetInput{key: fmt.Sprintf("%s/%d", op.group, op.partition), write: op.write, offset: op.offset},
			Call:     int64(op.call), Output: out, Return: ret,
		})
	}
	return h
}

// checkOffsetsLinearizable checks the ledger's committed-offset history.
// On a violation it writes porcupine's visualisation to a file and names
// it in the returned description.
func (l *ledger) checkOffsetsLinearizable(name string) (porcupine.CheckResult, string) {
	h := l.offsetHistory()
	res, info := porcupine.CheckOperationsVerbose(offsetModel, h, 60*time.Second)
	desc := fmt.Sprintf("%d operations: %s", len(h), resultName(res))
	if res == porcupine.Illegal {
		path := filepath.Join(os.TempDir(), "spool-offsets-"+name+".html")
		if f, err := os.Create(path); err == nil {
			if err := porcupine.Visualize(offsetModel, info, f); err == nil {
				desc += " (visualisation: " + path + ")"
			}
			f.Close()
		}
	}
	return res, desc
}

func resultName(r porcupine.CheckResult) string {
	switch r {
	case porcupine.Ok:
		return "linearizable"
	case porcupine.Illegal:
		return "not linearizable"
	}
	return "unknown (the check timed out)"
}

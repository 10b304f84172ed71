// Package crashpoint holds named points in the storage code where a test
// can make the process die at once, as a power cut or kill -9 would there.
//
// A process started with SPOOLTEST_CRASHPOINT=<name> exits at the first
// Hit(<name>); <name>:<n> exits at the n-th. The exit is immediate
// (os.Exit with ExitCode: no deferred function, no flush, no sync), after
// one line on standard error naming the point. Unset, Hit costs one
// atomic load.
//
// The variable does not start with SPOOL_ on purpose: spool serve refuses
// unknown SPOOL_* variables (they are configuration keys), and this one is
// not configuration but a test hook, read by this package alone.
package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// Env is the environment variable that arms a point.
const Env = "SPOOLTEST_CRASHPOINT"

// ExitCode is the exit status of a process stopped at a point.
const ExitCode = 86

// The points, in the order data goes through them.
const (
	SeglogBeforeAppend    = "seglog.before-append"    // a group about to be written to the active segment
	SeglogAfterAppend     = "seglog.after-append"     // written, not yet fsynced (nothing acknowledged)
	SeglogBeforeFsync     = "seglog.before-fsync"     // same moment under policy always, before the fsync call
	SeglogAfterFsync      = "seglog.after-fsync"      // fsynced, before the end offset moves and appenders are released
	SeglogIndexWrite      = "seglog.index-write"      // a segment's seal (index) about to be written
	SeglogRoll            = "seglog.roll"             // sealed; the next segment not created yet
	SeglogRetentionDelete = "seglog.retention-delete" // a segment's index removed, its log file not yet
	StateWrite            = "state.write"             // a state store batch about to be committed
	OffsetCommit          = "broker.offset-commit"    // a stream subscription commit about to be written
	QueueSnapshot         = "broker.queue-snapshot"   // a queue subscription's state about to be saved
)

// All lists every point.
var All = []string{SeglogBeforeAppend, SeglogAfterAppend, SeglogBeforeFsync, SeglogAfterFsync,
	SeglogIndexWrite, SeglogRoll, SeglogRetentionDelete, StateWrite, OffsetCommit, QueueSnapshot}

type point struct {
	name string
	n    int64
	hits atomic.Int64
}

var armed atomic.Pointer[point]

func init() {
	if v, ok := os.LookupEnv(Env); ok && v != "" {
		p, err := parse(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "crashpoint: %s: %v\n", Env, err)
			os.Exit(2)
		}
		armed.Store(p)
	}
}

// parse reads <name>[:<n>].
func parse(v string) (*point, error) {
	name, ns, hasN := strings.Cut(v, ":")
	p := &point{name: name, n: 1}
	if hasN {
		n, err := strconv.ParseInt(ns, 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: the hit count must be a positive integer", v)
		}
		p.n = n
	}
	for _, known := range All {
		if known == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%q: no such point (known: %s)", name, strings.Join(All, ", "))
}

// Hit marks a point. When it is the armed point's n-th hit, the process
// exits at once with ExitCode.
func Hit(name string) {
	p := armed.Load()
	if p == nil || p.name != name {
		return
	}
	if p.hits.Add(1) != p.n {
		return
	}
	fmt.Fprintf(os.Stderr, "crashpoint: %s hit %d: exiting\n", name, p.n)
	os.Exit(ExitCode)
}

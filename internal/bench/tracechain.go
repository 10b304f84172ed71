package bench

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/exp/trace"
)

// A record's path through the server is a chain of goroutines handing
// work to each other: a connection reads and queues it, the log's flush
// token holder writes and syncs it, and its readable end wakes the
// producer's response writer and the consumers' waiting fetches. An
// execution trace (runtime/trace; `spool serve --debug-addr` serves one at
// /debug/pprof/trace) records every such hand-off. TraceChain reads one
// and measures each link: how long goroutines stay blocked at each known
// point of the path, how long a woken goroutine waits for a CPU before it
// runs (the cost of the hand-off itself), how long the system calls of the
// path take, the regions the server marks, and the garbage collector's
// stop-the-world pauses.

// chainSite names a point where a goroutine of the record path blocks:
// the first frame of its blocked stack that contains match.
type chainSite struct {
	match, name string
}

// chainSites are the known blocking points, most specific first.
var chainSites = []chainSite{
	{"seglog.(*Pending).Wait", "wait until durable (response writer)"},
	{"kafka.(*producePipe).push", "kafka: produce pipeline full"},
	{"kafka.(*producePipe).drain", "kafka: request waits for earlier produces"},
	{"kafka.(*producePipe).run", "kafka: response writer idle"},
	{"kafka.waitAny", "kafka: fetch waits for data"},
	{"broker.(*Session).Next", "native: session waits for data"},
	{"seglog.(*Log).run", "log writer idle (flush hand-off)"},
	{"seglog.(*Log).enqueue", "append waits for queue space"},
	{"kafka.(*conn).readRequest", "kafka: connection waits for a request"},
	{"connectrpc.com/connect", "native: Connect stream I/O"},
	{"net/http", "net/http"},
	{"golang.org/x/net/http2", "http2"},
	{"sync.(*Mutex).Lock", "mutex"},
	{"sync.(*RWMutex)", "rwmutex"},
}

// ChainStat is the distribution of one link.
type ChainStat struct {
	Name          string
	Count         int64
	P50, P99, Max time.Duration
	Total         time.Duration
}

// ChainReport is what TraceChain measured.
type ChainReport struct {
	Span     time.Duration // from the first event to the last
	Blocked  []ChainStat   // time blocked, by site
	Wake     []ChainStat   // runnable → running after an unblock, by the site it was blocked at
	Syscalls []ChainStat   // by call
	Regions  []ChainStat   // by region name
	STW      ChainStat     // stop-the-world pauses
	GCs      int64
}

type chainHists map[string]*hdrhistogram.Histogram

func (h chainHists) add(name string, d time.Duration) {
	x := h[name]
	if x == nil {
		x = hdrhistogram.New(1, int64(time.Minute), 3)
		h[name] = x
	}
	x.RecordValue(max(int64(d), 1))
}

func (h chainHists) stats() []ChainStat {
	var out []ChainStat
	for name, x := range h {
		out = append(out, statOf(name, x))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Total > out[j].Total })
	return out
}

func statOf(name string, x *hdrhistogram.Histogram) ChainStat {
	return ChainStat{Name: name, Count: x.TotalCount(), P50: time.Duration(x.ValueAtQuantile(50)),
		P99: time.Duration(x.ValueAtQuantile(99)), Max: time.Duration(x.Max()),
		Total: time.Duration(float64(x.TotalCount()) * x.Mean())}
}

// siteOf names where a goroutine blocked: the first known site on its
// stack, else its innermost frame outside the runtime ("" if none).
func siteOf(s trace.Stack) string {
	var frames []string
	for f := range s.Frames() {
		frames = append(frames, f.Func)
	}
	for _, cs := range chainSites {
		for _, f := range frames {
			if strings.Contains(f, cs.match) {
				if strings.HasPrefix(cs.match, "sync.") {
					return cs.name + " in " + callerOf(frames)
				}
				return cs.name
			}
		}
	}
	for _, f := range frames {
		if !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "internal/") {
			return f
		}
	}
	return ""
}

// callerOf returns the innermost frame of Spool's own code, else the
// innermost outside the runtime and the sync package.
func callerOf(frames []string) string {
	for _, f := range frames {
		if strings.HasPrefix(f, "github.com/spoolmq/spool/") {
			return strings.TrimPrefix(f, "github.com/spoolmq/spool/internal/")
		}
	}
	for _, f := range frames {
		if !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "sync.") && !strings.HasPrefix(f, "internal/") {
			return f
		}
	}
	return "?"
}

// syscallOf names a system call by the innermost frame that says which,
// and by whose code made it (the partition logs, the state store, a
// connection).
func syscallOf(s trace.Stack) string {
	name, by := "other", ""
	for f := range s.Frames() {
		switch {
		case name != "other":
		case strings.Contains(f.Func, "Fdatasync"), strings.Contains(f.Func, "Fsync"):
			name = "fdatasync"
		case strings.HasPrefix(f.Func, "syscall.pwrite"), strings.HasPrefix(f.Func, "syscall.pread"),
			strings.HasPrefix(f.Func, "syscall.write"), strings.HasPrefix(f.Func, "syscall.read"):
			name = strings.TrimPrefix(f.Func, "syscall.")
		}
		if by == "" {
			switch {
			case strings.Contains(f.Func, "/internal/seglog."):
				by = "partition log"
			case strings.Contains(f.Func, "cockroachdb/pebble"):
				by = "state store"
			case strings.Contains(f.Func, "/internal/kafka."):
				by = "kafka connection"
			case strings.Contains(f.Func, "net/http"), strings.Contains(f.Func, "x/net/http2"):
				by = "http"
			}
		}
	}
	if by != "" {
		return name + " (" + by + ")"
	}
	return name
}

// TraceChain reads an execution trace and measures the links of the
// record path. Only goroutines whose blocked stacks touch Spool's code or
// its listeners are counted (the trace's own reader and the runtime's
// workers are not).
func TraceChain(r io.Reader) (ChainReport, error) {
	var rep ChainReport
	tr, err := trace.NewReader(r)
	if err != nil {
		return rep, err
	}
	type gstate struct {
		blockedAt trace.Time
		site      string
		unblocked trace.Time
		wokenFrom string
		syscallAt trace.Time
		syscall   string
	}
	gs := map[trace.GoID]*gstate{}
	get := func(id trace.GoID) *gstate {
		g := gs[id]
		if g == nil {
			g = &gstate{}
			gs[id] = g
		}
		return g
	}
	blocked, wake, sys, regions, stw := chainHists{}, chainHists{}, chainHists{}, chainHists{}, chainHists{}
	regionStart := map[trace.GoID]map[string][]trace.Time{}
	stwStart := map[trace.GoID]trace.Time{}
	var first, last trace.Time
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, err
		}
		t := ev.Time()
		if first == 0 {
			first = t
		}
		last = t
		switch ev.Kind() {
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			id := st.Resource.Goroutine()
			from, to := st.Goroutine()
			g := get(id)
			switch {
			case from == trace.GoRunning && to == trace.GoWaiting:
				g.blockedAt, g.site = t, siteOf(st.Stack)
			case from == trace.GoWaiting && to == trace.GoRunnable:
				if g.blockedAt != 0 && g.site != "" {
					blocked.add(g.site, t.Sub(g.blockedAt))
					g.unblocked, g.wokenFrom = t, g.site
				}
				g.blockedAt = 0
			case from == trace.GoRunnable && to == trace.GoRunning:
				if g.unblocked != 0 {
					wake.add(g.wokenFrom, t.Sub(g.unblocked))
					g.unblocked = 0
				}
			case from == trace.GoRunning && to == trace.GoSyscall:
				g.syscallAt, g.syscall = t, syscallOf(st.Stack)
			case from == trace.GoSyscall:
				if g.syscallAt != 0 {
					sys.add(g.syscall, t.Sub(g.syscallAt))
					g.syscallAt = 0
				}
			}
		case trace.EventRegionBegin:
			name := ev.Region().Type
			m := regionStart[ev.Goroutine()]
			if m == nil {
				m = map[string][]trace.Time{}
				regionStart[ev.Goroutine()] = m
			}
			m[name] = append(m[name], t)
		case trace.EventRegionEnd:
			name := ev.Region().Type
			if starts := regionStart[ev.Goroutine()][name]; len(starts) > 0 {
				regions.add(name, t.Sub(starts[len(starts)-1]))
				regionStart[ev.Goroutine()][name] = starts[:len(starts)-1]
			}
		case trace.EventRangeBegin:
			if rg := ev.Range(); strings.HasPrefix(rg.Name, "stop-the-world") {
				stwStart[ev.Goroutine()] = t
			} else if rg.Name == "GC concurrent mark phase" {
				rep.GCs++
			}
		case trace.EventRangeEnd:
			if rg := ev.Range(); strings.HasPrefix(rg.Name, "stop-the-world") {
				if t0, ok := stwStart[ev.Goroutine()]; ok {
					stw.add("stw", t.Sub(t0))
					delete(stwStart, ev.Goroutine())
				}
			}
		}
	}
	rep.Span = last.Sub(first)
	rep.Blocked, rep.Wake, rep.Syscalls, rep.Regions = blocked.stats(), wake.stats(), sys.stats(), regions.stats()
	if x := stw["stw"]; x != nil {
		rep.STW = statOf("stop-the-world", x)
	}
	return rep, nil
}

// Markdown writes the report as tables, each link's rate per second of
// the trace beside its distribution.
func (rep ChainReport) Markdown(w io.Writer) {
	secs := rep.Span.Seconds()
	table := func(title string, rows []ChainStat) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n\n| what | per s | p50 | p99 | max | total per s |\n|---|---:|---:|---:|---:|---:|\n", title)
		for _, s := range rows {
			if s.Name == "" || float64(s.Count)/secs < 50 && !known(s.Name) {
				continue // periodic background work
			}
			fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s |\n", s.Name, float64(s.Count)/secs, durText(s.P50), durText(s.P99), durText(s.Max),
				durText(time.Duration(float64(s.Total)/secs)))
		}
	}
	fmt.Fprintf(w, "Trace of %.2f s.\n", secs)
	table("Blocked (from blocking until woken), by where:", rep.Blocked)
	table("Wake-up latency (woken until running: the cost of a hand-off), by where it had blocked:", rep.Wake)
	table("System calls:", rep.Syscalls)
	table("Regions:", rep.Regions)
	if rep.STW.Count > 0 {
		table(fmt.Sprintf("Garbage collector (%d cycles):", rep.GCs), []ChainStat{rep.STW})
	}
}

func known(name string) bool {
	for _, cs := range chainSites {
		if cs.name == name {
			return true
		}
	}
	return name == "stop-the-world" || strings.HasPrefix(name, "mutex in ") || strings.HasPrefix(name, "rwmutex in ")
}

func durText(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/1e6)
}

package broker

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkDedupMemory measures the heap a full de-duplication window takes
// per remembered id, at the default bound of 200,000 ids (the figure
// docs/config.md and DESIGN.md give for dedup.max-entries). The window is
// filled the way publishing fills it (reserve, record, expire), and the live
// heap divided by the ids remembered is reported twice: when the window is
// first full ("bytes/id-full"), and after 60 times the bound has passed
// through it ("bytes/id-steady"). The second is larger: deletions leave
// tombstones that Go's map prunes only in part, so its tables grow as ids
// turn over, until about 40 bounds' worth of ids, then stay that size.
//
//	go test -run '^$' -bench DedupMemory -benchtime 1x ./internal/broker
func BenchmarkDedupMemory(b *testing.B) {
	const n = 200_000
	var full, steady float64
	for b.Loop() {
		var base runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&base)
		perID := func(d *dedup) float64 {
			var m runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m)
			return float64(m.HeapAlloc-base.HeapAlloc) / float64(len(d.index))
		}
		d := newDedup(time.Hour, n)
		now := int64(1_000_000)
		for i := range 60 * n {
			st, _, seq := d.reserveLocked(keyOf(fmt.Sprint(i)), now)
			if st == dedupNew {
				d.recordLocked(seq, 0, int64(i), now)
			}
			d.expireLocked(now)
			now++
			if i+1 == n {
				full = perID(d)
			}
		}
		steady = perID(d)
	}
	b.ReportMetric(full, "bytes/id-full")
	b.ReportMetric(steady, "bytes/id-steady")
}

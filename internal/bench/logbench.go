// Package bench holds Spool's benchmark drivers. Each driver measures one
// thing and, in the same run, the machine's limit for it, so that results
// are reported as ratios that survive a noisy shared machine.
package bench

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/vfs"
)

// Result is one measured configuration.
type Result struct {
	Name      string        // "raw-fdatasync" or "log-append"
	Appenders int           // concurrent writers
	Size      int           // bytes per write / batch
	Ops       int64         // writes or appends completed
	Bytes     int64         // bytes written
	Elapsed   time.Duration // wall time
	P50, P99  time.Duration // per-operation latency
}

// MBps returns throughput in MB/s (10^6 bytes).
func (r Result) MBps() float64 { return float64(r.Bytes) / r.Elapsed.Seconds() / 1e6 }

// OpsPerSec returns operations per second.
func (r Result) OpsPerSec() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Second/time.Microsecond)*1000, 3)
}

func fromHist(h *hdrhistogram.Histogram) (p50, p99 time.Duration) {
	return time.Duration(h.ValueAtQuantile(50)), time.Duration(h.ValueAtQuantile(99))
}

// RawSync measures the machine's limit: one writer appending size bytes to a
// file in dir and fdatasyncing after each write, for d.
func RawSync(dir string, size int, d time.Duration) (Result, error) {
	path := filepath.Join(dir, fmt.Sprintf("raw-%d.dat", size))
	f, err := vfs.Default.Create(path)
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(path)
	defer f.Close()
	buf := bytes.Repeat([]byte{0xA5}, size)
	h := newHist()
	res := Result{Name: "raw-fdatasync", Appenders: 1, Size: size}
	start := time.Now()
	var pos int64
	for time.Since(start) < d {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, pos); err != nil {
			return res, err
		}
		if err := f.Sync(); err != nil {
			return res, err
		}
		h.RecordValue(int64(time.Since(t0)))
		pos += int64(size)
		res.Ops++
		if pos > 1<<30 { // keep the file bounded; start over
			if err := f.Truncate(0); err != nil {
				return res, err
			}
			pos = 0
		}
	}
	res.Elapsed = time.Since(start)
	res.Bytes = res.Ops * int64(size)
	res.P50, res.P99 = fromHist(h)
	return res, nil
}

// LogAppend measures seglog appends under the SyncAlways policy: appenders
// goroutines each appending size-byte batches for d.
func LogAppend(dir string, appenders, size int, d time.Duration) (Result, error) {
	ldir := filepath.Join(dir, fmt.Sprintf("log-%d-%d", appenders, size))
	defer os.RemoveAll(ldir)
	l, _, err := seglog.Open(vfs.Default, ldir, seglog.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return Result{}, err
	}
	b, err := batch.Padded(size, time.Now().UnixMilli())
	if err != nil {
		l.Close()
		return Result{}, err
	}
	var (
		mu    sync.Mutex
		h     = newHist()
		ops   atomic.Int64
		first error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := newHist()
			for time.Since(start) < d {
				t0 := time.Now()
				if _, err := l.Append(b); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
				local.RecordValue(int64(time.Since(t0)))
				ops.Add(1)
			}
			mu.Lock()
			h.Merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := Result{Name: "log-append", Appenders: appenders, Size: size, Ops: ops.Load(), Elapsed: time.Since(start)}
	res.Bytes = res.Ops * int64(size)
	res.P50, res.P99 = fromHist(h)
	if err := l.Close(); err != nil && first == nil {
		first = err
	}
	return res, first
}

// RecoveryResult is what Recovery measured.
type RecoveryResult struct {
	Bytes     int64         // size of the log
	Clean     time.Duration // Open after a clean shutdown
	CrashWarm time.Duration // Open with every segment scanned, data in the page cache
	CrashCold time.Duration // the same after dropping the page cache; 0 if that is not permitted
	Scanned   int64         // bytes scanned by a crash open
}

// Recovery builds a log of about total bytes in dir, then measures Open
// after a clean shutdown and Open after a crash that forces a full scan (all
// index files removed, as if no segment had been sealed), with the page
// cache warm and, when the process may drop it (root on Linux), cold.
func Recovery(dir string, total int64) (RecoveryResult, error) {
	var res RecoveryResult
	ldir := filepath.Join(dir, "recovery")
	defer os.RemoveAll(ldir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := seglog.Options{Sync: seglog.SyncNone, Logger: quiet}
	l, _, err := seglog.Open(vfs.Default, ldir, opts)
	if err != nil {
		return res, err
	}
	b, err := batch.Padded(16<<10, time.Now().UnixMilli())
	if err != nil {
		l.Close()
		return res, err
	}
	var many []byte
	for range 64 {
		many = append(many, b...)
	}
	for l.Size() < total {
		if _, err := l.Append(many); err != nil {
			l.Close()
			return res, err
		}
	}
	res.Bytes = l.Size()
	if err := l.Close(); err != nil {
		return res, err
	}
	opts.Sync = seglog.SyncAlways
	open := func() (time.Duration, *seglog.RecoveryReport, error) {
		t0 := time.Now()
		l, rep, err := seglog.Open(vfs.Default, ldir, opts)
		if err != nil {
			return 0, nil, err
		}
		d := time.Since(t0)
		return d, rep, l.Close()
	}
	d, rep, err := open()
	if err != nil {
		return res, err
	}
	if len(rep.Scanned) != 0 {
		return res, fmt.Errorf("clean open scanned %d segments", len(rep.Scanned))
	}
	res.Clean = d
	removeIndexes := func() {
		names, _ := os.ReadDir(ldir)
		for _, n := range names {
			if filepath.Ext(n.Name()) == ".index" {
				os.Remove(filepath.Join(ldir, n.Name()))
			}
		}
	}
	removeIndexes()
	if res.CrashWarm, rep, err = open(); err != nil {
		return res, err
	}
	res.Scanned = rep.ScannedBytes
	removeIndexes()
	if dropPageCache() == nil {
		if res.CrashCold, _, err = open(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// dropPageCache asks Linux to drop clean page-cache pages (needs root).
func dropPageCache() error {
	unix.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

package seglog_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/vfs"
)

// Run with: go test -run '^$' -bench . ./internal/seglog
// BenchmarkRawFdatasync is the machine's limit for the same sizes in the
// same directory kind (the test's temporary directory); `spool bench log`
// prints both as one table with ratios.

var benchSizes = []int{256, 1 << 10, 16 << 10}

func reportLatency(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		return
	}
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkRawFdatasync(b *testing.B) {
	for _, size := range append(benchSizes, 1<<20) {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			f, err := vfs.Default.Create(b.TempDir() + "/raw")
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := bytes.Repeat([]byte{1}, size)
			lat := make([]time.Duration, 0, b.N)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := f.WriteAt(buf, int64(i)*int64(size)); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			reportLatency(b, lat)
		})
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range benchSizes {
		for _, n := range []int{1, 4, 16, 64} {
			b.Run(fmt.Sprintf("appenders=%d/size=%d", n, size), func(b *testing.B) {
				l, _, err := seglog.Open(vfs.Default, b.TempDir()+"/log", seglog.Options{
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				data, err := batch.Padded(size, time.Now().UnixMilli())
				if err != nil {
					b.Fatal(err)
				}
				var (
					next atomic.Int64
					mu   sync.Mutex
					lat  = make([]time.Duration, 0, b.N)
					wg   sync.WaitGroup
				)
				b.SetBytes(int64(size))
				b.ResetTimer()
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						local := make([]time.Duration, 0, b.N/n+1)
						for next.Add(1) <= int64(b.N) {
							t0 := time.Now()
							if _, err := l.Append(data); err != nil {
								b.Error(err)
								return
							}
							local = append(local, time.Since(t0))
						}
						mu.Lock()
						lat = append(lat, local...)
						mu.Unlock()
					}()
				}
				wg.Wait()
				b.StopTimer()
				reportLatency(b, lat)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
			})
		}
	}
}

func BenchmarkRead(b *testing.B) {
	l, _, err := seglog.Open(vfs.Default, b.TempDir()+"/log", seglog.Options{
		Sync: seglog.SyncNone, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	data, err := batch.Padded(1<<10, time.Now().UnixMilli())
	if err != nil {
		b.Fatal(err)
	}
	for range 10000 {
		if _, err := l.Append(data); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(64 << 10)
	b.ResetTimer()
	off := int64(0)
	for i := 0; i < b.N; i++ {
		out, err := l.Read(off, 64<<10)
		if err != nil {
			b.Fatal(err)
		}
		off += int64(len(out) / len(data))
		if off >= l.EndOffset() {
			off = 0
		}
	}
}

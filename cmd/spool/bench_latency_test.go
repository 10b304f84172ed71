package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/bench"
)

// TestLatencyReport checks the tables of `spool bench latency` on a made-up
// report: medians, an error row for a measurement that lost records, and
// targets evaluated within each round.
func TestLatencyReport(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	q := func(p50, p99 float64) bench.Quantiles {
		return bench.Quantiles{Count: 100, P50: ms(p50), P99: ms(p99), P999: ms(p99), Max: ms(p99)}
	}
	rep := &bench.E2EReport{Started: true, Size: 256, Duration: time.Second}
	for r := 1; r <= 2; r++ {
		rep.Raw = append(rep.Raw, bench.RawResult{Round: r, P50: ms(1), P99: ms(2)})
		rep.E2E = append(rep.E2E,
			bench.E2EResult{Round: r, Path: bench.PathNativeStream, Rate: 1000, Sent: 100, Received: 100, Latency: q(1.2, 1.8)},
			bench.E2EResult{Round: r, Path: bench.PathKafka, Rate: 1000, Sent: 100, Received: 100, Latency: q(1.8, 3)},
			bench.E2EResult{Round: r, Path: bench.PathKfake, Rate: 1000, Sent: 100, Received: 100, Latency: q(0.4, 1)},
		)
		rep.OneAtATime = append(rep.OneAtATime, bench.OneResult{Round: r, Path: bench.OneKafka, Latency: q(1.05, 2)})
		rep.Throughput = append(rep.Throughput,
			bench.ThroughputResult{Round: r, Client: bench.ThroughputNative, Messages: 10, Rate: 95},
			bench.ThroughputResult{Round: r, Client: bench.ThroughputFranz, Messages: 10, Rate: 100})
	}
	rep.E2E = append(rep.E2E, bench.E2EResult{Round: 2, Path: bench.PathNativeQueue, Rate: 1000, Sent: 100, Received: 97,
		Err: "lost 3 of 100 records"})
	var out strings.Builder
	printLatencyReport(&out, rep, 2)
	got := out.String()
	for _, want := range []string{
		"| native stream | 1000/s | 1200 µs | 1800 µs |",
		"| native queue | 1000/s | **ERROR** round 2: lost 3 of 100 records |",
		"| kafka p50 ≤ 1.5 × kfake p50 + raw fdatasync p50 | 1000/s | 1800 µs | 1600 µs | missed |",
		"| kafka p99 ≤ 2 × kfake p99 | 1000/s | 3000 µs | 2000 µs | missed |",
		"| native stream p50 ≤ raw fdatasync p50 + 0.5 ms | 1000/s | 1200 µs | 1500 µs | met |",
		"| native stream p99 ≤ 2 ms | 1000/s | 1800 µs | 2000 µs | met |",
		"| one-at-a-time kafka ProduceSync p50 ≤ raw fdatasync p50 + 0.1 ms | — | 1050 µs | 1100 µs | met |",
		"| pipelined native ÷ franz-go ≥ 0.90 | — | 0.95 | 0.90 | met |",
		"| native stream | 1000/s | 1200 µs | 1800 µs | 1800 µs | 1800 µs | 0 µs | 0 µs | 0 µs | p50 met, p99 met |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "native queue p50") {
		t.Errorf("a target evaluated on a failed measurement:\n%s", got)
	}
	if !rep.Lost() {
		t.Error("Lost() = false")
	}
}

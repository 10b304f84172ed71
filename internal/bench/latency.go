package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spoolmq/spool/client"
)

// Paths of the end-to-end latency measurements.
const (
	PathNativeStream = "native stream"
	PathNativeQueue  = "native queue"
	PathKafka        = "kafka"
	PathKfake        = "kfake"
)

// Paths of the one-at-a-time publish measurements.
const (
	OneNativePublish     = "native Publish"
	OneNativePublishSync = "native Producer.PublishSync"
	OneKafka             = "kafka ProduceSync"
	OneKfake             = "kfake ProduceSync"
)

// Clients of the pipelined throughput measurement.
const (
	ThroughputNative = "native Producer"
	ThroughputFranz  = "franz-go"
)

// E2EConfig configures RunE2E.
type E2EConfig struct {
	// Dir holds the started server's data and the fdatasync probe's file:
	// the disk under test.
	Dir string
	// Server and Kafka are the native API URL and the Kafka address of a
	// running server to measure instead of starting one; with only one of
	// them, only that protocol is measured.
	Server, Kafka string
	// Start starts the server when Server and Kafka are both empty.
	Start ServerStarter

	Rates    []int         // records/s of the end-to-end measurements
	Duration time.Duration // per end-to-end measurement
	Rounds   int
	Size     int  // value bytes, at least 24
	Queue    bool // also measure native queue mode end to end

	OneAtATime         time.Duration // per one-at-a-time publish measurement; 0 skips them
	ThroughputMessages int           // per pipelined throughput measurement; 0 skips them
	RawDuration        time.Duration // raw fdatasync alone per round; default 1s

	Progress io.Writer // per-measurement lines; nil discards them
}

// E2EResult is one end-to-end latency measurement.
type E2EResult struct {
	Round      int    `json:"round"`
	Path       string `json:"path"`
	Rate       int    `json:"rate"`
	Sent       int64  `json:"sent"`
	Received   int64  `json:"received"`   // distinct records received
	Duplicates int64  `json:"duplicates"` // records received more than once
	Failed     int64  `json:"failed"`     // sends the client reported failed
	// Latency is from the send (the producer call) to the consumer's
	// receipt; Corrected is from the scheduled send time, so it includes
	// the producer's own lateness; Lag is that lateness.
	Latency   Quantiles `json:"latency"`
	Corrected Quantiles `json:"corrected"`
	Lag       Quantiles `json:"schedule_lag"`
	// SyncDuring is 4 KiB write+fdatasync every 2 ms in the same
	// directory during the measurement.
	SyncDuring Quantiles `json:"fdatasync_during"`
	Err        string    `json:"error,omitempty"` // lost, duplicated or failed records
}

// OneResult is one one-at-a-time publish measurement: publish, wait for
// the acknowledgement, pause 2 ms, repeat.
type OneResult struct {
	Round   int       `json:"round"`
	Path    string    `json:"path"`
	Latency Quantiles `json:"latency"`
}

// ThroughputResult is one pipelined publish measurement from one producer.
type ThroughputResult struct {
	Round    int     `json:"round"`
	Client   string  `json:"client"`
	Messages int     `json:"messages"`
	Rate     float64 `json:"rate"` // acknowledged messages/s
}

// RawResult is the raw 4 KiB write+fdatasync latency, alone, of a round.
type RawResult struct {
	Round int           `json:"round"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
}

// E2EReport is everything RunE2E measured, round by round.
type E2EReport struct {
	Server     string             `json:"server"`
	Kafka      string             `json:"kafka"`
	Started    bool               `json:"started"` // the benchmark started the server
	Size       int                `json:"size"`
	Duration   time.Duration      `json:"duration_ns"`
	Raw        []RawResult        `json:"raw_fdatasync"`
	E2E        []E2EResult        `json:"e2e"`
	OneAtATime []OneResult        `json:"one_at_a_time"`
	Throughput []ThroughputResult `json:"throughput"`
}

// Lost reports whether any end-to-end measurement lost, duplicated or
// failed records.
func (r *E2EReport) Lost() bool {
	for _, e := range r.E2E {
		if e.Err != "" {
			return true
		}
	}
	return false
}

// e2eRun is the state of one RunE2E.
type e2eRun struct {
	cfg      E2EConfig
	progress io.Writer
	dir      string // for the probe's and the raw measurement's files
	native   *client.Client
	kafka    string
	kfake    string
	pool     []byte
	rep      *E2EReport
}

// RunE2E measures end-to-end latency (producer send → consumer receipt)
// at fixed rates on one-partition topics, through the Go SDK in stream and
// queue mode and through franz-go against Spool's Kafka listener and,
// with the same client code, against franz-go's in-memory kfake; each
// measurement with a concurrent fdatasync probe in the same directory.
// Each round also measures raw fdatasync alone, one-at-a-time publish
// latency and pipelined publish throughput from one producer (SDK against
// franz-go). It returns what it measured even when it fails part-way.
func RunE2E(ctx context.Context, cfg E2EConfig) (_ *E2EReport, err error) {
	if cfg.Size < headerLen {
		return nil, fmt.Errorf("value size %d: at least %d bytes needed", cfg.Size, headerLen)
	}
	if cfg.RawDuration <= 0 {
		cfg.RawDuration = time.Second
	}
	r := &e2eRun{cfg: cfg, progress: cfg.Progress, rep: &E2EReport{Size: cfg.Size, Duration: cfg.Duration}}
	if r.progress == nil {
		r.progress = io.Discard
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(cfg.Dir, "spool-latency-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	r.dir = tmp
	srv := Server{URL: cfg.Server, KafkaAddr: cfg.Kafka}
	if cfg.Server == "" && cfg.Kafka == "" {
		if cfg.Start == nil {
			return nil, errors.New("no server given and no way to start one")
		}
		fmt.Fprintf(r.progress, "starting the server in %s...\n", tmp)
		s, stop, serr := cfg.Start(ctx, filepath.Join(tmp, "data"))
		if serr != nil {
			return nil, serr
		}
		srv = s
		r.rep.Started = true
		// Stop the server on every way out; a failure to stop cleanly is
		// an error of the run.
		defer func() {
			if serr := stop(); serr != nil && err == nil {
				err = serr
			}
		}()
	}
	r.rep.Server, r.rep.Kafka = srv.URL, srv.KafkaAddr
	if srv.URL != "" {
		if r.native, err = client.New(srv.URL, client.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
			return r.rep, err
		}
		defer r.native.Close()
	}
	if srv.KafkaAddr != "" {
		r.kafka = srv.KafkaAddr
		addr, stopK, kerr := StartKfake()
		if kerr != nil {
			return r.rep, kerr
		}
		defer stopK()
		r.kfake = addr
	}
	r.pool = randomPool(8 << 20)
	for round := 1; round <= cfg.Rounds; round++ {
		if err = r.round(ctx, round); err != nil {
			return r.rep, err
		}
	}
	return r.rep, err
}

func (r *e2eRun) round(ctx context.Context, round int) error {
	cfg := r.cfg
	fmt.Fprintf(r.progress, "round %d/%d: raw 4 KiB write+fdatasync for %s...\n", round, cfg.Rounds, cfg.RawDuration)
	raw, err := RawSync(r.dir, 4096, cfg.RawDuration)
	if err != nil {
		return err
	}
	r.rep.Raw = append(r.rep.Raw, RawResult{Round: round, P50: raw.P50, P99: raw.P99})
	fmt.Fprintf(r.progress, "round %d/%d: raw fdatasync p50 %s p99 %s\n", round, cfg.Rounds, us(raw.P50), us(raw.P99))

	for _, rate := range cfg.Rates {
		var paths []string
		if r.native != nil {
			paths = append(paths, PathNativeStream)
			if cfg.Queue {
				paths = append(paths, PathNativeQueue)
			}
		}
		if r.kafka != "" {
			paths = append(paths, PathKafka, PathKfake)
		}
		for _, path := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			var res E2EResult
			var err error
			switch path {
			case PathNativeStream:
				res, err = r.nativeE2E(ctx, rate, false)
			case PathNativeQueue:
				res, err = r.nativeE2E(ctx, rate, true)
			case PathKafka:
				res, err = r.kafkaE2E(ctx, r.kafka, rate)
			case PathKfake:
				res, err = r.kafkaE2E(ctx, r.kfake, rate)
			}
			if err != nil {
				return fmt.Errorf("%s at %d/s: %w", path, rate, err)
			}
			res.Round, res.Path, res.Rate = round, path, rate
			r.rep.E2E = append(r.rep.E2E, res)
			fmt.Fprintf(r.progress, "round %d/%d: %s %d/s: sent %d received %d; latency %s; corrected p99 %s; schedule lag p50 %s p99 %s max %s; fdatasync during p50 %s p99 %s\n",
				round, cfg.Rounds, path, rate, res.Sent, res.Received, res.Latency, us(res.Corrected.P99),
				us(res.Lag.P50), us(res.Lag.P99), us(res.Lag.Max), us(res.SyncDuring.P50), us(res.SyncDuring.P99))
			if res.Err != "" {
				fmt.Fprintf(r.progress, "round %d/%d: %s %d/s: ERROR: %s\n", round, cfg.Rounds, path, rate, res.Err)
			}
		}
	}

	if cfg.OneAtATime > 0 {
		for _, path := range []string{OneNativePublish, OneNativePublishSync, OneKafka, OneKfake} {
			if (path == OneNativePublish || path == OneNativePublishSync) && r.native == nil ||
				(path == OneKafka || path == OneKfake) && r.kafka == "" {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			q, err := r.oneAtATime(ctx, path)
			if err != nil {
				return fmt.Errorf("one-at-a-time %s: %w", path, err)
			}
			r.rep.OneAtATime = append(r.rep.OneAtATime, OneResult{Round: round, Path: path, Latency: q})
			fmt.Fprintf(r.progress, "round %d/%d: one-at-a-time %s: %d publishes, %s\n", round, cfg.Rounds, path, q.Count, q)
		}
	}

	if cfg.ThroughputMessages > 0 && r.native != nil && r.kafka != "" {
		for _, name := range []string{ThroughputNative, ThroughputFranz} {
			if err := ctx.Err(); err != nil {
				return err
			}
			rate, err := r.throughput(ctx, name)
			if err != nil {
				return fmt.Errorf("pipelined %s: %w", name, err)
			}
			r.rep.Throughput = append(r.rep.Throughput, ThroughputResult{Round: round, Client: name,
				Messages: cfg.ThroughputMessages, Rate: rate})
			fmt.Fprintf(r.progress, "round %d/%d: pipelined %s: %d × %d B at %.0f msg/s\n", round, cfg.Rounds, name,
				cfg.ThroughputMessages, cfg.Size, rate)
		}
	}
	return nil
}

// measure runs one end-to-end measurement once the consumer feeding rec
// runs: warm-up, the open-loop schedule with the fdatasync probe beside
// it, then waiting for every acknowledgement (flush) and for the consumer
// to receive every record.
func (r *e2eRun) measure(ctx context.Context, rate int, rec *e2eRecorder, send func([]byte), flush func(context.Context) (int64, error)) (E2EResult, error) {
	var res E2EResult
	if err := warmUp(ctx, r.cfg.Size, rec, send); err != nil {
		return res, err
	}
	probe, err := startSyncProbe(r.dir, 2*time.Millisecond)
	if err != nil {
		return res, err
	}
	lag, sent := openLoop(ctx, rate, int(rec.n), newValueSource(r.pool, r.cfg.Size), send)
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	failed, ferr := flush(fctx)
	cancel()
	// Wait for the consumer: until everything acknowledged has arrived, or
	// 10 s without a new record.
	last, lastAt := rec.got.Load(), time.Now()
	for rec.got.Load() < sent-failed && time.Since(lastAt) < 10*time.Second && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
		if g := rec.got.Load(); g != last {
			last, lastAt = g, time.Now()
		}
	}
	res.SyncDuring, err = probe.finish()
	if err != nil {
		return res, fmt.Errorf("fdatasync probe: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	res.Sent, res.Received, res.Duplicates, res.Failed = sent, rec.got.Load(), rec.dup, failed
	res.Latency, res.Corrected, res.Lag = rec.lat.quantiles(), rec.corr.quantiles(), lag.quantiles()
	var problems []error
	if res.Received < res.Sent {
		problems = append(problems, fmt.Errorf("lost %d of %d records", res.Sent-res.Received, res.Sent))
	}
	if res.Duplicates > 0 {
		problems = append(problems, fmt.Errorf("%d duplicates", res.Duplicates))
	}
	if rec.bad > 0 {
		problems = append(problems, fmt.Errorf("%d records not sent by this measurement", rec.bad))
	}
	if res.Failed > 0 || ferr != nil {
		problems = append(problems, fmt.Errorf("%d sends failed (%v)", res.Failed, ferr))
	}
	if len(problems) > 0 {
		res.Err = errors.Join(problems...).Error()
	}
	return res, nil
}

// topicName returns a new topic name.
func topicName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

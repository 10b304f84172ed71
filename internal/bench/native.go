package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/tlsutil"
	"github.com/spoolmq/spool/server"
)

// NativeConfig configures RunNative.
type NativeConfig struct {
	Dir      string        // data directory of the in-process server (the disk under test)
	Server   string        // an already running server's URL; empty: start one in Dir
	Size     int           // message value size
	Messages int           // messages for the pipelined publish and the consume
	Duration time.Duration // time for the one-at-a-time latency measurement
	Progress io.Writer
	// PublishProfile and ConsumeProfile, when set, receive CPU profiles of
	// the pipelined publish and the consume phases.
	PublishProfile, ConsumeProfile io.Writer
	// Traced gives every message a sampled W3C traceparent (1,024
	// distinct ones in turn) and, for the in-process server, exports the
	// broker's spans over OTLP to an in-process receiver that discards
	// them: tracing on, its whole cost on this machine.
	Traced bool
	// TLS serves the in-process server's listeners over TLS, with
	// development certificates made in a temporary directory, and the
	// client trusts their CA (ignored with Server).
	TLS bool
	// ClientTLS is the client's TLS configuration for an https:// Server
	// (its CA, a client certificate).
	ClientTLS *tls.Config
	// TraceSampled is the fraction of those traceparents that carry the
	// sampled flag (the others are 00: their producer did not sample).
	TraceSampled float64
}

// NativeResult is one RunNative measurement set.
type NativeResult struct {
	Size          int
	RawSyncP50    time.Duration // write+fdatasync of 4 KiB in the same directory, same run
	RawSyncP99    time.Duration
	PipelinedRate float64 // messages/s, SDK Producer, durable
	SyncP50       time.Duration
	SyncP99       time.Duration
	SyncRate      float64 // one-at-a-time publishes/s
	ConsumeRate   float64 // messages/s, SDK Consumer, stream mode
}

// RunNative measures Spool through the Go SDK over loopback: pipelined
// durable publish, one-at-a-time publish latency, and stream consume, with
// the raw fdatasync latency measured in the same directory in the same run.
func RunNative(cfg NativeConfig) (NativeResult, error) {
	res := NativeResult{Size: cfg.Size}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	addr := cfg.Server
	if cfg.Traced && addr == "" {
		stop, err := startOTLPSink()
		if err != nil {
			return res, err
		}
		defer stop()
	}
	tlsCfg := cfg.ClientTLS
	if addr == "" {
		dir, err := os.MkdirTemp(cfg.Dir, "native-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		scfg := server.Config{DataDir: filepath.Join(dir, "data"), HTTPAddr: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if cfg.TLS {
			files, err := tlsutil.GenerateDev(tlsutil.DevOptions{Dir: filepath.Join(dir, "certs"), Hosts: []string{"127.0.0.1"}})
			if err != nil {
				return res, err
			}
			scfg.TLS = server.TLSConfig{CertFile: files.Server, KeyFile: files.ServerKey}
			if tlsCfg, err = tlsutil.ClientConfig(files.CA, "", ""); err != nil {
				return res, err
			}
		}
		srv, err := server.New(scfg)
		if err != nil {
			return res, err
		}
		if err := srv.Start(); err != nil {
			return res, err
		}
		defer srv.Shutdown(context.Background())
		addr = "http://" + srv.HTTPAddr()
		if cfg.TLS {
			addr = "https://" + srv.HTTPAddr()
		}
	}
	raw, err := RawSync(cfg.Dir, 4096, cfg.Duration)
	if err != nil {
		return res, err
	}
	res.RawSyncP50, res.RawSyncP99 = raw.P50, raw.P99

	copts := []client.Option{client.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	if tlsCfg != nil {
		copts = append(copts, client.WithTLS(tlsCfg))
	}
	c, err := client.New(addr, copts...)
	if err != nil {
		return res, err
	}
	defer c.Close()
	ctx := context.Background()
	topic := fmt.Sprintf("bench-%d-%d", cfg.Size, time.Now().UnixNano())
	if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1}); err != nil {
		return res, err
	}
	defer c.DeleteTopic(ctx, topic)
	if _, err := c.CreateSubscription(ctx, topic, "bench", client.SubscriptionConfig{Start: client.Earliest()}); err != nil {
		return res, err
	}
	value := make([]byte, cfg.Size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	msg := traceparents(cfg.Traced, cfg.TraceSampled, value)

	// Pipelined publish.
	fmt.Fprintf(progress, "pipelined publish of %d × %d B...\n", cfg.Messages, cfg.Size)
	p, err := c.NewProducer(topic)
	if err != nil {
		return res, err
	}
	var failed atomic.Int64
	if cfg.PublishProfile != nil {
		if err := pprof.StartCPUProfile(cfg.PublishProfile); err == nil {
			defer pprof.StopCPUProfile()
		}
	}
	t0 := time.Now()
	futures := make([]*client.Future, 0, 4096)
	for i := range cfg.Messages {
		futures = append(futures, p.Send(ctx, msg(i)))
		if len(futures) == cap(futures) || i == cfg.Messages-1 {
			for _, f := range futures {
				if _, err := f.Wait(ctx); err != nil {
					failed.Add(1)
				}
			}
			futures = futures[:0]
		}
	}
	if err := p.Close(ctx); err != nil {
		return res, err
	}
	res.PipelinedRate = float64(cfg.Messages) / time.Since(t0).Seconds()
	if cfg.PublishProfile != nil {
		pprof.StopCPUProfile()
	}
	if n := failed.Load(); n > 0 {
		return res, fmt.Errorf("%d publishes failed", n)
	}

	// Stream consume of what was published.
	fmt.Fprintf(progress, "stream consume of %d messages...\n", cfg.Messages)
	var got atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	k, err := c.NewConsumer(topic, "bench", func(context.Context, *client.Message) error {
		if got.Add(1) == int64(cfg.Messages) {
			once.Do(func() { close(done) })
		}
		return nil
	}, client.ConsumerPrefetch(20000))
	if err != nil {
		return res, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	if cfg.ConsumeProfile != nil {
		if err := pprof.StartCPUProfile(cfg.ConsumeProfile); err == nil {
			defer pprof.StopCPUProfile()
		}
	}
	t0 = time.Now()
	go func() { errc <- k.Run(runCtx) }()
	select {
	case <-done:
	case err := <-errc:
		cancel()
		return res, fmt.Errorf("consumer stopped: %v", err)
	case <-time.After(5 * time.Minute):
		cancel()
		return res, fmt.Errorf("consumed %d of %d in 5 minutes", got.Load(), cfg.Messages)
	}
	res.ConsumeRate = float64(cfg.Messages) / time.Since(t0).Seconds()
	if cfg.ConsumeProfile != nil {
		pprof.StopCPUProfile()
	}
	cancel()
	<-errc

	// One-at-a-time publish latency: a Producer without linger, waiting for
	// each message before sending the next (PublishSync).
	fmt.Fprintf(progress, "one-at-a-time publish for %s...\n", cfg.Duration)
	sp, err := c.NewProducer(topic, client.ProducerLinger(0))
	if err != nil {
		return res, err
	}
	defer sp.Close(ctx)
	h := hdrhistogram.New(1, int64(10*time.Second), 3)
	n := 0
	t0 = time.Now()
	for time.Since(t0) < cfg.Duration {
		s := time.Now()
		if _, err := sp.PublishSync(ctx, msg(n)); err != nil {
			return res, err
		}
		h.RecordValue(int64(time.Since(s)))
		n++
	}
	res.SyncRate = float64(n) / time.Since(t0).Seconds()
	res.SyncP50, res.SyncP99 = time.Duration(h.ValueAtQuantile(50)), time.Duration(h.ValueAtQuantile(99))
	return res, nil
}

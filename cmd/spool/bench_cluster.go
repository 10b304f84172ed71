package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/bench"
)

func newBenchClusterCmd() *cobra.Command {
	var (
		dir      string
		records  int
		rate     int
		duration time.Duration
		kills    int
		settle   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "A three-node cluster beside a single node: Kafka produce rate, latency at a fixed rate, failover time",
		Long: "Starts one `spool serve` from this executable as a single node, then three as a cluster\n" +
			"(every partition replicated on the three, each fsyncing; free loopback ports, data under\n" +
			"--dir), and measures on each, through franz-go: produce of --records 256-byte records to a\n" +
			"one-partition topic (idempotent, acks=all, 4,096 buffered records) and to a three-partition\n" +
			"topic (the client's defaults: 50,000 buffered records, one request in flight per broker),\n" +
			"and to a one-partition topic with five requests in flight (franz-go allows that only\n" +
			"without idempotence; 50,000 buffered records),\n" +
			"and end-to-end latency at --rate records/s for\n" +
			"--duration. On the cluster it then kills (-9) the partition's leader --kills times and\n" +
			"measures from the kill to the next acknowledged record (producer retrying every 20 ms),\n" +
			"restarting the killed node each time.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			run, err := os.MkdirTemp(dir, "cluster-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(run)
			ctx := cmd.Context()
			errOut := cmd.ErrOrStderr()
			fmt.Fprintln(errOut, "single node...")
			single, stop, err := bench.ProcessServer(exe)(ctx, filepath.Join(run, "single"))
			if err != nil {
				return err
			}
			sk, err := bench.RunKafka(single.KafkaAddr, 256, records, false, errOut, nil)
			if err != nil {
				stop()
				return err
			}
			s5, err := bench.RunKafkaProduce(single.KafkaAddr, 256, records, 1, 50_000, 5)
			if err != nil {
				stop()
				return err
			}
			s3, err := bench.RunKafkaProduce(single.KafkaAddr, 256, records, 3, 0, 0)
			if err != nil {
				stop()
				return err
			}
			sl, err := bench.RunKafkaLatency(single.KafkaAddr, rate, duration)
			stop()
			if err != nil {
				return err
			}
			fmt.Fprintln(errOut, "three-node cluster...")
			c, err := bench.StartCluster(ctx, exe, filepath.Join(run, "cluster"), 3)
			if err != nil {
				return err
			}
			defer c.Stop()
			time.Sleep(2 * time.Second) // a metadata leader, registrations
			ck, err := bench.RunKafka(c.KafkaAddrs()[0], 256, records, false, errOut, nil)
			if err != nil {
				return err
			}
			c5, err := bench.RunKafkaProduce(c.KafkaAddrs()[0], 256, records, 1, 50_000, 5)
			if err != nil {
				return err
			}
			c3, err := bench.RunKafkaProduce(c.KafkaAddrs()[0], 256, records, 3, 0, 0)
			if err != nil {
				return err
			}
			cl, err := bench.RunKafkaLatency(c.KafkaAddrs()[0], rate, duration)
			if err != nil {
				return err
			}
			fctx, cancel := context.WithTimeout(ctx, time.Duration(kills)*(settle+30*time.Second))
			defer cancel()
			fo, err := c.Failovers(fctx, kills, settle, errOut)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "| measurement (256 B, franz-go, acks=all) | single node | cluster of 3 | cluster ÷ single |\n|---|---:|---:|---:|\n")
			fmt.Fprintf(out, "| produce, records/s | %.0f | %.0f | %.2f |\n", sk.ProduceRate, ck.ProduceRate, ck.ProduceRate/sk.ProduceRate)
			fmt.Fprintf(out, "| produce, 5 requests in flight (not idempotent), records/s | %.0f | %.0f | %.2f |\n", s5, c5, c5/s5)
			fmt.Fprintf(out, "| produce, 3 partitions, client defaults, records/s | %.0f | %.0f | %.2f |\n", s3, c3, c3/s3)
			fmt.Fprintf(out, "| end-to-end p50 at %d/s | %v | %v | |\n", rate, sl.P50.Round(time.Microsecond), cl.P50.Round(time.Microsecond))
			fmt.Fprintf(out, "| end-to-end p99 at %d/s | %v | %v | |\n", rate, sl.P99.Round(time.Microsecond), cl.P99.Round(time.Microsecond))
			if len(fo) > 0 {
				fmt.Fprintf(out, "\nFailover (leader killed → next acknowledged record), %d kills: median %v, max %v\n",
					len(fo), bench.Median(fo).Round(time.Millisecond), maxDuration(fo).Round(time.Millisecond))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".bench", "directory for the servers' data")
	f.IntVar(&records, "records", 300_000, "records produced per measurement")
	f.IntVar(&rate, "rate", 5000, "records per second of the latency measurement")
	f.DurationVar(&duration, "duration", 10*time.Second, "length of the latency measurement")
	f.IntVar(&kills, "kills", 20, "leader kills")
	f.DurationVar(&settle, "settle", 2*time.Second, "time a restarted node gets before the next kill")
	return cmd
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// Command batchcodec prints the compression codecs of the record batches a
// Spool topic serves over Kafka, so the kcat part of Spool's compatibility
// suite can check that a codec was really used, stored and served (not
// silently dropped by the producer or re-encoded by the broker).
//
//	batchcodec -broker 127.0.0.1:9092 -topic T -n 100    # prints e.g. "gzip"
//
// It reads the first n records of every partition together, without a
// group, and prints the distinct codecs in the order first seen, comma-separated.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

func main() {
	broker := flag.String("broker", "127.0.0.1:9092", "Kafka address of the Spool server (a cluster's: comma-separated)")
	topic := flag.String("topic", "", "topic to read")
	n := flag.Int("n", 1, "records to read")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after this long")
	flag.Parse()
	if err := run(*broker, *topic, *n, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "batchcodec:", err)
		os.Exit(1)
	}
}

func run(broker, topic string, n int, timeout time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(broker, ",")...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var seen []string
	for read := 0; read < n; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("read %d of %d records: %w", read, n, ctx.Err())
		}
		if err := fs.Err0(); err != nil {
			return err
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			c := int(r.Attrs.CompressionType())
			name := fmt.Sprintf("codec-%d", c)
			if c < len(codecs) {
				name = codecs[c]
			}
			if !slices.Contains(seen, name) {
				seen = append(seen, name)
			}
		})
	}
	fmt.Println(strings.Join(seen, ","))
	return nil
}

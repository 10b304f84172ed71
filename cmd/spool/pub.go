package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

// maxLineBytes is the longest stdin line `spool pub` accepts (the server's
// request limit).
const maxLineBytes = 8 << 20

// pubFlags are the options of `spool pub`.
type pubFlags struct {
	key, subject, id string
	headers          []string
	delay, ttl       time.Duration
	partition        int32
	printOffsets     bool
	deliveryTimeout  time.Duration
}

func newPubCmd() *cobra.Command {
	var pf pubFlags
	cmd := &cobra.Command{
		Use:   "pub TOPIC [VALUE]",
		Short: "Publish messages: VALUE, or one per line of stdin",
		Long: "Publish VALUE as one message or, without VALUE, one message per line of stdin\n" +
			"(the value is the line without its \"\\n\"; other bytes, \"\\r\" included, are kept;\n" +
			"lines up to 8 MiB) through a batching, pipelined producer. When the command\n" +
			"succeeds, every message was acknowledged, i.e. stored under the topic's durability\n" +
			"policy. A summary goes to stderr; --print-offsets prints where each message was\n" +
			"stored, in input order.",
		Example: "  spool pub orders '{\"id\":1}' --key cust-1 --subject orders.eu.created\n" +
			"  printf 'a\\nb\\n' | spool pub orders -v\n" +
			"  spool pub orders < events.ndjson",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tmpl, err := pf.message(cmd)
			if err != nil {
				return err
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				var st pubStats
				if len(args) == 2 {
					m := tmpl
					m.Value, m.ID = []byte(args[1]), pf.id
					err = pubOne(ctx, c, args[0], m, cmd.OutOrStdout(), pf.printOffsets, &st)
				} else {
					err = pubLines(ctx, c, args[0], tmpl, pf, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), &st)
				}
				if err == nil || st.published > 0 {
					st.report(cmd.ErrOrStderr(), args[0])
				}
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&pf.key, "key", "", "message `KEY`: messages with the same key go to the same partition, in order")
	f.StringVar(&pf.subject, "subject", "", "`SUBJECT` (routing key) matched by subscription filters, as dot-separated tokens: orders.eu.created")
	f.StringVar(&pf.id, "id", "", "idempotency `ID`: a message whose id the topic saw within its dedup window is not stored again; "+
		"with stdin, line N gets the id ID-N (N from 1), so re-running the same input stores nothing twice")
	f.StringArrayVarP(&pf.headers, "header", "H", nil, "header `key=value` (repeatable; keys may repeat)")
	f.DurationVar(&pf.delay, "delay", 0, "hold the message back from queue subscriptions for this long")
	f.DurationVar(&pf.ttl, "ttl", 0, "expire the message this long after publishing (default: the topic's ttl)")
	f.Int32Var(&pf.partition, "partition", 0, "publish to partition `N` instead of the one the key (or rotation) chooses")
	f.DurationVar(&pf.deliveryTimeout, "delivery-timeout", time.Minute, "with stdin: give up on a message not acknowledged this long after it was read, retries "+
		"(e.g. while the topic is full or the server unavailable) included; keep it below the topic's dedup window")
	f.BoolVarP(&pf.printOffsets, "print-offsets", "v", false, "print partition/offset of each message to stdout, with (duplicate) for ids seen before")
	return cmd
}

// message validates the flags and returns the message every published
// message starts from.
func (pf *pubFlags) message(cmd *cobra.Command) (client.Message, error) {
	var m client.Message
	switch {
	case pf.delay < 0:
		return m, usageErrorf(cmd, "--delay: must not be negative")
	case pf.ttl < 0:
		return m, usageErrorf(cmd, "--ttl: must not be negative")
	case pf.partition < 0:
		return m, usageErrorf(cmd, "--partition: must not be negative")
	case pf.deliveryTimeout <= 0:
		return m, usageErrorf(cmd, "--delivery-timeout: must be positive")
	}
	hs, err := parseHeaders(pf.headers)
	if err != nil {
		return m, usageErrorf(cmd, "--header: %v", err)
	}
	m = client.Message{Subject: pf.subject, Headers: hs, Delay: pf.delay, TTL: pf.ttl}
	if pf.key != "" {
		m.Key = []byte(pf.key)
	}
	if cmd.Flags().Changed("partition") {
		m = m.ToPartition(pf.partition)
	}
	return m, nil
}

// pubStats counts acknowledged messages.
type pubStats struct {
	published  int // acknowledged, duplicates included
	duplicates int // acknowledged as duplicates: not stored again
}

func (st *pubStats) add(w io.Writer, r client.PublishResult, print bool) error {
	st.published++
	dup := ""
	if r.Duplicate {
		st.duplicates++
		dup = " (duplicate)"
	}
	if !print {
		return nil
	}
	_, err := fmt.Fprintf(w, "%d/%d%s\n", r.Partition, r.Offset, dup)
	return err
}

func (st *pubStats) report(w io.Writer, topic string) {
	dups := ""
	if st.duplicates > 0 {
		dups = fmt.Sprintf(" (%s, not stored again)", plural(st.duplicates, "duplicate"))
	}
	fmt.Fprintf(w, "published %s to %s%s\n", plural(st.published, "message"), topic, dups)
}

// pubOne publishes m in one request.
func pubOne(ctx context.Context, c *client.Client, topic string, m client.Message, out io.Writer, print bool, st *pubStats) error {
	rs, err := c.Publish(ctx, topic, m)
	if err != nil {
		return err
	}
	return st.add(out, rs[0], print)
}

// pubLines publishes one message per line of in through a Producer, and
// reports results in input order. It stops reading at the first failure.
func pubLines(ctx context.Context, c *client.Client, topic string, tmpl client.Message, pf pubFlags,
	in io.Reader, out, errOut io.Writer, st *pubStats) error {
	// Fail fast (and before reading stdin) on a missing topic or server.
	if _, err := c.DescribeTopic(ctx, topic); err != nil {
		return err
	}
	if isTerminal(in) {
		fmt.Fprintln(errOut, "reading messages from stdin, one per line; end with Ctrl-D")
	}
	p, err := c.NewProducer(topic, client.ProducerDeliveryTimeout(pf.deliveryTimeout))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The reporter waits for the futures in input order.
	futures := make(chan *client.Future, 4096)
	var pubErr error
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		for f := range futures {
			r, err := f.Wait(context.Background())
			if err == nil {
				err = st.add(out, r, pf.printOffsets)
			}
			if err != nil && pubErr == nil {
				pubErr = err
				cancel() // stop reading
			}
		}
	}()

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes+1)
	sc.Split(scanLF)
	line := 0
	for ctx.Err() == nil && sc.Scan() {
		line++
		m := tmpl
		m.Value = bytes.Clone(sc.Bytes())
		if pf.id != "" {
			m.ID = pf.id + "-" + strconv.Itoa(line)
		}
		futures <- p.Send(ctx, m)
	}
	readErr := sc.Err()
	if errors.Is(readErr, bufio.ErrTooLong) {
		readErr = fmt.Errorf("stdin line %d is longer than 8 MiB", line+1)
	} else if readErr != nil {
		readErr = fmt.Errorf("reading stdin: %w", readErr)
	}
	close(futures)
	closeErr := p.Close(context.Background())
	<-reported
	return cmp.Or(pubErr, readErr, closeErr)
}

// isTerminal reports whether r is a terminal (a character device).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// scanLF splits at "\n" and keeps every other byte; a last line without
// "\n" counts.
func scanLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

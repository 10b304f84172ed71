package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

// consumeFlags are the options of `spool consume`.
type consumeFlags struct {
	sub     string
	count   int
	timeout time.Duration
	output  string
	verbose bool
	nack    bool // queue: nack instead of acknowledging
	reject  bool // queue: reject instead of acknowledging
}

// Errors the handler of `spool consume --nack/--reject` returns on purpose;
// not worth a warning.
var (
	errNack   = errors.New("nacked by spool consume --nack")
	errReject = errors.New("rejected by spool consume --reject")
)

func newConsumeCmd() *cobra.Command {
	var cf consumeFlags
	cmd := &cobra.Command{
		Use:   "consume TOPIC --sub NAME",
		Short: "Print messages of a subscription, committing (or acknowledging) as it goes",
		Long: "Join subscription --sub as a consumer and print its messages to stdout, committing\n" +
			"each printed message, so that the next consume (or any consumer of the subscription)\n" +
			"continues after it. Runs until --count messages were printed, until --timeout has\n" +
			"passed since the start, or until Ctrl-C (SIGINT) or SIGTERM; each stop commits what\n" +
			"was printed and exits 0, except that a --timeout that ends before --count messages\n" +
			"were printed exits 4, and a deleted topic or subscription (spool topic delete, spool\n" +
			"sub delete) ends it at once with exit 3.\n\n" +
			"On a queue subscription each printed message is acknowledged instead (with --nack:\n" +
			"nacked, so it is redelivered after the subscription's backoff and dead-lettered after\n" +
			"its max deliveries; with --reject: dead-lettered at once); messages received but not\n" +
			"printed are given back for immediate redelivery.\n\n" +
			"--output text prints each value as is, followed by \"\\n\" (with -v, preceded by\n" +
			"\"PARTITION/OFFSET key=KEY \"; KEY is Go-quoted if it is not printable without spaces).\n" +
			"--output json prints one object per line:\n" +
			"  {\"partition\":0,\"offset\":7,\"timestamp\":\"2026-01-02T15:04:05.123456789Z\",\n" +
			"   \"id\":\"…\",\"subject\":\"orders.eu\",\"key\":\"cust-1\",\n" +
			"   \"headers\":[{\"key\":\"spool.id\",\"value\":\"…\"}],\"value\":\"hello\"}\n" +
			"The key (null without a key), the value and header values are strings when they are valid\n" +
			"UTF-8, otherwise base64, flagged by \"key_encoding\":\"base64\",\n" +
			"\"value_encoding\":\"base64\" or, in a header, \"value_encoding\":\"base64\".\n" +
			"Headers are a list because keys can repeat; Spool's own (spool.*) are included.\n" +
			"Queue deliveries add \"delivery_count\" and \"first_delivered_at\" (and, with -v,\n" +
			"\"delivery=N \" after the key).",
		Example: "  spool consume orders --sub billing --count 10\n" +
			"  spool consume orders --sub audit --timeout 5s --output json | jq .value\n" +
			"  spool consume jobs --sub workers --count 1 --nack      # see it fail, retry, dead-letter",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case cf.sub == "":
				return usageErrorf(cmd, "--sub is required")
			case cf.count < 0:
				return usageErrorf(cmd, "--count: must not be negative")
			case cf.timeout < 0:
				return usageErrorf(cmd, "--timeout: must not be negative")
			case cf.nack && cf.reject:
				return usageErrorf(cmd, "--nack and --reject exclude each other")
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				return consume(ctx, cmd, c, args[0], cf)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cf.sub, "sub", "", "the subscription `NAME` to consume (required; see spool sub create)")
	f.IntVar(&cf.count, "count", 0, "stop after printing `N` messages (default: no limit)")
	f.DurationVar(&cf.timeout, "timeout", 0, "stop this long after the start, counting from the start, not from the last message (default: no limit); exit 4 if --count was not reached")
	f.VarP(newEnum(&cf.output, "text", "text", "json"), "output", "o", "text: one value per line; json: one object per line with partition, offset, timestamp, key, headers and value")
	f.BoolVarP(&cf.verbose, "verbose", "v", false, "text output: prefix each value with PARTITION/OFFSET key=KEY (and delivery=N on a queue subscription)")
	f.BoolVar(&cf.nack, "nack", false, "queue subscriptions: nack each printed message instead of acknowledging it (to test redelivery and dead-lettering)")
	f.BoolVar(&cf.reject, "reject", false, "queue subscriptions: reject (dead-letter) each printed message instead of acknowledging it")
	return cmd
}

// consume runs a Consumer until cf's stop condition and prints messages.
func consume(ctx context.Context, cmd *cobra.Command, c *client.Client, topic string, cf consumeFlags) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	// Fail fast on a missing topic, subscription or server: the consumer
	// itself would keep retrying an unreachable server.
	info, err := c.DescribeSubscription(ctx, topic, cf.sub)
	if err != nil {
		return err
	}
	queue := info.Subscription.Config.Mode == client.ModeQueue
	if !queue && (cf.nack || cf.reject) {
		return usageErrorf(cmd, "--nack and --reject apply to queue subscriptions; %s is a %s subscription",
			cf.sub, info.Subscription.Config.Mode)
	}
	sigCtx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	timeCtx := sigCtx
	if cf.timeout > 0 {
		var cancel context.CancelFunc
		timeCtx, cancel = context.WithTimeout(sigCtx, cf.timeout)
		defer cancel()
	}
	runCtx, done := context.WithCancel(timeCtx)
	defer done()

	pr := &msgPrinter{w: out, json: cf.output == "json", verbose: cf.verbose}
	var (
		mu       sync.Mutex
		printed  int
		writeErr error
	)
	// The handler prints one message at a time; once --count messages are
	// printed it stops the consumer, and refuses any message still handed
	// to it (with errStop: not committed; on a queue subscription, given
	// back for immediate redelivery).
	handler := func(_ context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if (cf.count > 0 && printed >= cf.count) || writeErr != nil {
			return client.RetryAfter(errStop, 0)
		}
		if err := pr.print(m); err != nil {
			// Stop; on a queue subscription the message is nacked.
			writeErr = fmt.Errorf("writing output: %w", err)
			done()
			return writeErr
		}
		printed++
		if printed == cf.count {
			done()
		}
		switch {
		case cf.nack:
			return errNack
		case cf.reject:
			return client.Reject(errReject)
		}
		return nil
	}
	var opts []client.ConsumerOption
	switch {
	case queue:
		// Hold one lease at a time: a message received and not printed
		// would still count as a delivery.
		opts = append(opts, client.ConsumerPrefetch(1))
	case cf.count > 0:
		opts = append(opts, client.ConsumerStopOnError(), client.ConsumerPrefetch(min(cf.count, 1000)))
	default:
		opts = append(opts, client.ConsumerStopOnError())
	}
	k, err := c.NewConsumer(topic, cf.sub, handler, opts...)
	if err != nil {
		return err
	}
	err = k.Run(runCtx)
	mu.Lock()
	n := printed
	if err == nil {
		err = writeErr
	}
	mu.Unlock()
	verb := "consumed"
	switch {
	case cf.nack:
		verb = "nacked"
	case cf.reject:
		verb = "rejected"
	}
	fmt.Fprintf(errOut, "%s %s from %s/%s\n", verb, plural(n, "message"), topic, cf.sub)
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	if cf.count > 0 && n < cf.count && sigCtx.Err() == nil && errors.Is(timeCtx.Err(), context.DeadlineExceeded) {
		return &timeoutError{got: n, want: cf.count}
	}
	return nil
}

// msgPrinter writes delivered messages, one line each.
type msgPrinter struct {
	w       io.Writer
	json    bool
	verbose bool
	buf     bytes.Buffer
}

func (p *msgPrinter) print(m *client.Message) error {
	b := &p.buf
	b.Reset()
	if p.json {
		enc := json.NewEncoder(b) // Encode ends the line
		enc.SetEscapeHTML(false)
		if err := enc.Encode(newMessageJSON(m)); err != nil {
			return err
		}
	} else {
		if p.verbose {
			fmt.Fprintf(b, "%d/%d key=%s ", m.Partition, m.Offset, textKey(m.Key))
			if !m.FirstDeliveredAt.IsZero() {
				fmt.Fprintf(b, "delivery=%d ", m.DeliveryCount)
			}
		}
		b.Write(m.Value)
		b.WriteByte('\n')
	}
	_, err := p.w.Write(b.Bytes())
	return err
}

// messageJSON is one line of `spool consume --output json`.
type messageJSON struct {
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	Timestamp     string       `json:"timestamp"`
	ID            string       `json:"id,omitempty"`
	Subject       string       `json:"subject,omitempty"`
	Key           *string      `json:"key"`
	KeyEncoding   string       `json:"key_encoding,omitempty"`
	Headers       []headerJSON `json:"headers"`
	Value         string       `json:"value"`
	ValueEncoding string       `json:"value_encoding,omitempty"`
	// Queue deliveries only.
	DeliveryCount    int32  `json:"delivery_count,omitempty"`
	FirstDeliveredAt string `json:"first_delivered_at,omitempty"`
}

type headerJSON struct {
	Key           string `json:"key"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
}

func newMessageJSON(m *client.Message) messageJSON {
	js := messageJSON{
		Partition: m.Partition,
		Offset:    m.Offset,
		Timestamp: m.Timestamp.UTC().Format(time.RFC3339Nano),
		ID:        m.ID,
		Subject:   m.Subject,
		Headers:   make([]headerJSON, len(m.Headers)),
	}
	if len(m.Key) > 0 {
		k, enc := jsonBytes(m.Key)
		js.Key, js.KeyEncoding = &k, enc
	}
	js.Value, js.ValueEncoding = jsonBytes(m.Value)
	if !m.FirstDeliveredAt.IsZero() {
		js.DeliveryCount, js.FirstDeliveredAt = m.DeliveryCount, jsonTime(m.FirstDeliveredAt)
	}
	for i, h := range m.Headers {
		v, enc := jsonBytes(h.Value)
		js.Headers[i] = headerJSON{Key: h.Key, Value: v, ValueEncoding: enc}
	}
	return js
}

// jsonBytes returns b as a string if it is valid UTF-8, else as base64 with
// the encoding "base64".
func jsonBytes(b []byte) (s, encoding string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

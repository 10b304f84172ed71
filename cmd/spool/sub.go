package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

func newSubCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sub",
		Short: "Create, change, list, describe, reset, purge and delete subscriptions",
	}
	cmd.AddCommand(newSubCreateCmd(), newSubAlterCmd(), newSubListCmd(), newSubDescribeCmd(), newSubDeleteCmd(), newSubResetCmd(), newSubPurgeCmd())
	return cmd
}

// queueFlags are the queue-mode options of `spool sub create`.
type queueFlags struct {
	ackTimeout        time.Duration
	maxDeliveries     int32
	backoffInitial    time.Duration
	backoffMax        time.Duration
	backoffMultiplier float64
	backoffJitter     string
	backoffDelays     []time.Duration
	ordering          string
	dlq               string
	onExpired         string
	maxInFlight       int32
	rateLimit         float64
	rateBurst         int32
	processedKey      string // queue: off, id, key, header:NAME
	processedTTL      time.Duration
	onFailure         string // stream only
}

// queueFlagNames are the flags that apply to --mode queue only; the
// others of queueFlags (attempts, backoff, dead-letter topic) apply to
// stream subscriptions too, for failed messages.
var queueFlagNames = []string{"ack-timeout", "ordering", "on-expired", "max-in-flight", "rate-limit", "rate-burst",
	"processed-key", "processed-ttl"}

// apply checks the queue flags of cmd and sets them in cfg.
func (qf *queueFlags) apply(cmd *cobra.Command, cfg *client.SubscriptionConfig) error {
	for _, d := range []struct {
		flag string
		d    time.Duration
	}{{"ack-timeout", qf.ackTimeout}, {"backoff-initial", qf.backoffInitial}, {"backoff-max", qf.backoffMax},
		{"processed-ttl", qf.processedTTL}} {
		if d.d < 0 {
			return usageErrorf(cmd, "--%s: must not be negative", d.flag)
		}
	}
	for _, n := range []struct {
		flag string
		n    float64
	}{{"max-deliveries", float64(qf.maxDeliveries)}, {"max-in-flight", float64(qf.maxInFlight)},
		{"rate-burst", float64(qf.rateBurst)}, {"rate-limit", qf.rateLimit}, {"backoff-multiplier", qf.backoffMultiplier}} {
		if n.n < 0 || math.IsNaN(n.n) || math.IsInf(n.n, 0) {
			return usageErrorf(cmd, "--%s: must be a non-negative number", n.flag)
		}
	}
	if k := qf.processedKey; k != "" && k != "off" && k != "id" && k != "key" && (!strings.HasPrefix(k, "header:") || k == "header:") {
		return usageErrorf(cmd, "--processed-key: want off, id, key or header:NAME, not %q", k)
	}
	if cmd.Flags().Changed("backoff-multiplier") && qf.backoffMultiplier < 1 {
		return usageErrorf(cmd, "--backoff-multiplier: must be at least 1")
	}
	cfg.AckTimeout = qf.ackTimeout
	cfg.MaxDeliveries = qf.maxDeliveries
	cfg.Backoff = client.Backoff{
		Initial:    qf.backoffInitial,
		Max:        qf.backoffMax,
		Multiplier: qf.backoffMultiplier,
		Jitter: map[string]client.Jitter{"": client.JitterDefault, "full": client.JitterFull,
			"equal": client.JitterEqual, "none": client.JitterNone}[qf.backoffJitter],
		Delays: qf.backoffDelays,
	}
	cfg.Ordering = map[string]client.Ordering{"": client.OrderingDefault, "none": client.OrderingNone, "key": client.OrderingKey}[qf.ordering]
	cfg.DeadLetterTopic = qf.dlq
	cfg.OnExpired = map[string]client.ExpiredAction{"": client.ExpiredDefault, "dead-letter": client.ExpiredDeadLetter,
		"drop": client.ExpiredDrop}[qf.onExpired]
	cfg.MaxInFlight = qf.maxInFlight
	cfg.RateLimit = qf.rateLimit
	cfg.RateBurst = qf.rateBurst
	cfg.ProcessedKey, cfg.ProcessedTTL = qf.processedKey, qf.processedTTL
	cfg.OnFailure = map[string]client.FailureAction{"": client.FailureDefault, "dead-letter": client.FailureDeadLetter,
		"stop": client.FailureStop}[qf.onFailure]
	return nil
}

func newSubCreateCmd() *cobra.Command {
	var (
		mode, filter, start string
		qf                  queueFlags
		reads               string
		readsFile           schemaInputFlags
	)
	cmd := &cobra.Command{
		Use:   "create TOPIC NAME",
		Short: "Create a subscription on a topic",
		Long: "Create a subscription on a topic. Every subscription receives every message of the\n" +
			"topic that matches its filter, independently of the others; its committed offsets\n" +
			"start at --start, resolved when the subscription is created.\n\n" +
			"Filters match message subjects (spool pub --subject): dot-separated tokens where\n" +
			"\"*\" matches one token and \"#\" zero or more, e.g. orders.*.created or orders.#.\n\n" +
			"--mode queue makes a work queue: any consumer may receive any message, and each\n" +
			"delivery is a lease the consumer acknowledges (done), nacks (redelivered after the\n" +
			"backoff) or rejects (dead-lettered), or that expires after --ack-timeout (counts as a\n" +
			"nack). After --max-deliveries deliveries a message goes to the dead-letter topic\n" +
			"(--dlq, default dlq.TOPIC.NAME); see `spool dlq`. The n-th redelivery waits\n" +
			"min(initial x multiplier^(n-1), max), randomized by --backoff-jitter, or the n-th of\n" +
			"--backoff-delays (the last one repeating). Options left out take the server's defaults.\n\n" +
			"A stream subscription's consumers retry a message whose handler fails up to\n" +
			"--max-deliveries times (waiting the backoff between tries), then the server applies\n" +
			"--on-failure: dead-letter (copy it to --dlq and go on; the default) or stop (halt the\n" +
			"partition at the message until `spool sub reset --partition` moves it).",
		Example: "  spool sub create orders billing --filter 'orders.eu.#' --start -1h\n" +
			"  spool sub create orders fulfilment --mode queue --ack-timeout 1m --max-deliveries 3 \\\n" +
			"      --backoff-initial 1s --backoff-max 1m --ordering key\n" +
			"  spool sub create orders ledger --on-failure stop --max-deliveries 10",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, err := positionFlag(cmd, "start", start)
			if err != nil {
				return err
			}
			cfg := client.SubscriptionConfig{Filter: filter, Start: pos, Mode: client.ModeStream}
			if mode == "queue" {
				cfg.Mode = client.ModeQueue
				if cmd.Flags().Changed("on-failure") {
					return usageErrorf(cmd, "--on-failure applies to stream subscriptions: a queue subscription always dead-letters")
				}
			} else {
				for _, name := range queueFlagNames {
					if cmd.Flags().Changed(name) {
						return usageErrorf(cmd, "--%s applies to queue subscriptions (--mode queue)", name)
					}
				}
			}
			if err := qf.apply(cmd, &cfg); err != nil {
				return err
			}
			readSubject, readVersion, err := readsFlag(cmd, reads, readsFile.file)
			if err != nil {
				return err
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				s, err := c.CreateSubscription(ctx, args[0], args[1], cfg)
				if err != nil {
					return err
				}
				if readSubject != "" {
					if err := declareReader(ctx, cmd, args[0], args[1], readSubject, readVersion, &readsFile); err != nil {
						return fmt.Errorf("subscription %s created, but its reader schema was not declared: %w", args[1], err)
					}
				}
				extra := ", dead letters to " + orDash(s.Config.DeadLetterTopic)
				if s.Config.Mode == client.ModeStream && s.Config.OnFailure == client.FailureStop {
					extra = ", failed messages halt their partition"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "created subscription %s on topic %s (%s, start %s%s)\n",
					s.Name, s.Topic, s.Config.Mode, s.Config.Start, extra)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Var(newEnum(&mode, "stream", "stream", "queue"), "mode", "stream: partitions are assigned to consumers, in order, with committed offsets; queue: any consumer gets any message, each delivery a lease to acknowledge")
	f.StringVar(&filter, "filter", "", "deliver only messages whose subject matches `PATTERN` (default: every message)")
	f.StringVar(&start, "start", "earliest", "where the subscription starts, a `POSITION`: "+positionHelp)
	f.DurationVar(&qf.ackTimeout, "ack-timeout", 0, "queue: lease length of a delivery (server default: 30s)")
	f.Int32Var(&qf.maxDeliveries, "max-deliveries", 0, "queue: dead-letter a message delivered `N` times without an ack; stream: handler attempts per message before --on-failure (server default: 5)")
	f.DurationVar(&qf.backoffInitial, "backoff-initial", 0, "delay of the first redelivery (queue) or handler retry (stream) (server default: 1s)")
	f.DurationVar(&qf.backoffMax, "backoff-max", 0, "longest redelivery or retry delay (server default: 5m)")
	f.Float64Var(&qf.backoffMultiplier, "backoff-multiplier", 0, "growth of the delay per redelivery or retry, at least 1 (server default: 2)")
	f.Var(newEnum(&qf.backoffJitter, "", "full", "equal", "none"), "backoff-jitter", "randomization of a delay d: full (uniform in [0,d]), equal ([d/2,d]) or none (server default: full)")
	f.Var((*durationsValue)(&qf.backoffDelays), "backoff-delays", "explicit delays `D,D,...`, the last one repeating (instead of initial/max/multiplier)")
	f.Var(newEnum(&qf.ordering, "", "none", "key"), "ordering", "queue: none (any message any time) or key (one message per key in flight, in offset order) (server default: none)")
	f.StringVar(&qf.dlq, "dlq", "", "dead-letter `TOPIC` (default: dlq.TOPIC.NAME, created with a queue subscription, at the first dead letter of a stream one)")
	f.Var(newEnum(&qf.onExpired, "", "dead-letter", "drop"), "on-expired", "queue: what happens to a message whose TTL passed (server default: dead-letter)")
	f.Int32Var(&qf.maxInFlight, "max-in-flight", 0, "queue: leases in flight in the whole subscription, at most `N` (server default: 1000 per partition)")
	f.Float64Var(&qf.rateLimit, "rate-limit", 0, "queue: deliveries per second over the subscription, `R` (default: unlimited)")
	f.Int32Var(&qf.rateBurst, "rate-burst", 0, "queue: burst of the rate limit, `N` deliveries (server default: max(1, rate-limit))")
	f.StringVar(&qf.processedKey, "processed-key", "", "queue: keep a ledger of processed messages keyed by `KEY` (id, key or header:NAME) and acknowledge a message whose key was processed instead of delivering it (default: off; docs/idempotent-consumer.md)")
	f.DurationVar(&qf.processedTTL, "processed-ttl", 0, "queue: how long a processed key is remembered (server default: 24h)")
	f.StringVar(&reads, "reads", "", "declare the schema the subscription reads with, `SUBJECT:VERSION` (VERSION a number or latest), or SUBJECT with --reads-file: registrations its consumers cannot read are then refused (docs/schemas.md)")
	f.StringVar(&readsFile.file, "reads-file", "", "with --reads SUBJECT: the reader schema's `FILE`, looked up in the subject")
	f.StringVar(&readsFile.typ, "reads-type", "", "the --reads-file schema's type: avro, json or protobuf (default: from the file's extension)")
	addRegistryFlag(cmd)
	f.Var(newEnum(&qf.onFailure, "", "dead-letter", "stop"), "on-failure", "stream: what happens to a message whose handler failed --max-deliveries times: dead-letter (copy to --dlq, go on) or stop (halt the partition) (server default: dead-letter)")
	return cmd
}

func newSubListCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list TOPIC",
		Short: "List a topic's subscriptions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				subs, err := c.ListSubscriptions(ctx, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if output == "json" {
					js := make([]subJSON, len(subs))
					for i, s := range subs {
						js[i] = newSubJSON(s)
					}
					return writeJSON(out, js)
				}
				tw := newTable(out)
				fmt.Fprintln(tw, "NAME\tMODE\tFILTER\tSTART\tCREATED")
				for _, s := range subs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Config.Mode, orDash(s.Config.Filter),
						s.Config.Start, textTime(s.Created))
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func newSubDescribeCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "describe TOPIC NAME",
		Short: "Show a subscription: members, committed offsets and lag",
		Long: "Show a subscription: its config; the membership generation; the live members\n" +
			"(consumers) with the partitions they own; and per partition the committed offset\n" +
			"(the next message to consume; - if nothing was committed yet), the end offset,\n" +
			"the lag (messages not yet consumed) and the age of the oldest unconsumed message;\n" +
			"and the total lag.\n\n" +
			"For a queue subscription: its queue config, the messages dead-lettered and dropped\n" +
			"(expired) since the server started, and per partition the ack floor (every message\n" +
			"below it is finished), the end offset, the lag (end - floor), and how many messages\n" +
			"are ready, waiting (backing off or delayed), blocked (behind their key), in flight\n" +
			"(leased), whether delivery is held back by --max-in-flight (LIMITED), and how many\n" +
			"delayed messages are parked in the state store.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.DescribeSubscription(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(cmd.OutOrStdout(), newSubInfoJSON(info))
				}
				return printSubInfo(cmd.OutOrStdout(), info)
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printSubInfo(w io.Writer, info *client.SubscriptionInfo) error {
	s := info.Subscription
	tw := newTable(w)
	fmt.Fprintf(tw, "Subscription:\t%s\n", s.Name)
	fmt.Fprintf(tw, "Topic:\t%s\n", s.Topic)
	fmt.Fprintf(tw, "Mode:\t%s\n", s.Config.Mode)
	fmt.Fprintf(tw, "Filter:\t%s\n", orDash(s.Config.Filter))
	fmt.Fprintf(tw, "Start:\t%s\n", s.Config.Start)
	fmt.Fprintf(tw, "Created:\t%s\n", textTime(s.Created))
	queue := s.Config.Mode == client.ModeQueue
	if !queue {
		fmt.Fprintf(tw, "Generation:\t%d\n", info.Generation)
	}
	fmt.Fprintf(tw, "Lag:\t%d\n", info.Lag)
	fmt.Fprintf(tw, "Dead-lettered:\t%d\n", info.DeadLettered)
	if queue {
		fmt.Fprintf(tw, "Dropped:\t%d\n", info.Dropped)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if queue {
		if err := printQueueConfig(w, s.Config); err != nil {
			return err
		}
	} else if err := printFailureConfig(w, s.Config); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(info.Members) == 0 {
		fmt.Fprintln(w, "Members: none")
	} else if queue {
		// Queue members own no partitions: any of them gets any message.
		tw = newTable(w)
		fmt.Fprintln(tw, "MEMBER\tCLIENT\tINSTANCE\tSESSION-DEADLINE")
		for _, m := range info.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.MemberID, orDash(m.ClientID), orDash(m.InstanceID), textTime(m.SessionDeadline))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	} else {
		tw = newTable(w)
		fmt.Fprintln(tw, "MEMBER\tCLIENT\tINSTANCE\tPARTITIONS\tREVOKING\tSESSION-DEADLINE")
		for _, m := range info.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.MemberID, orDash(m.ClientID), orDash(m.InstanceID),
				textInts(m.Partitions), textInts(m.Revoking), textTime(m.SessionDeadline))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	if queue {
		return printQueuePartitions(w, info.Partitions)
	}
	return printSubPartitions(w, info.Partitions)
}

// printQueueConfig prints the queue-mode config of a subscription.
func printQueueConfig(w io.Writer, c client.SubscriptionConfig) error {
	fmt.Fprintln(w, "\nQueue config:")
	tw := newTable(w)
	fmt.Fprintf(tw, "  ack-timeout:\t%s\n", textDuration(c.AckTimeout, "default"))
	fmt.Fprintf(tw, "  max-deliveries:\t%s\n", textDefault(int64(c.MaxDeliveries)))
	fmt.Fprintf(tw, "  backoff:\t%s\n", textBackoff(c.Backoff))
	fmt.Fprintf(tw, "  ordering:\t%s\n", c.Ordering)
	fmt.Fprintf(tw, "  dead-letter-topic:\t%s\n", orDash(c.DeadLetterTopic))
	fmt.Fprintf(tw, "  on-expired:\t%s\n", c.OnExpired)
	fmt.Fprintf(tw, "  max-in-flight:\t%s\n", textDefault(int64(c.MaxInFlight)))
	rate := "unlimited"
	if c.RateLimit > 0 {
		rate = fmt.Sprintf("%s/s, burst %s", strconv.FormatFloat(c.RateLimit, 'g', -1, 64), textDefault(int64(c.RateBurst)))
	}
	fmt.Fprintf(tw, "  rate-limit:\t%s\n", rate)
	fmt.Fprintf(tw, "  processed-key:\t%s\n", textProcessed(c))
	return tw.Flush()
}

// printFailureConfig prints a stream subscription's failure policy.
func printFailureConfig(w io.Writer, c client.SubscriptionConfig) error {
	fmt.Fprintln(w, "\nFailed messages:")
	tw := newTable(w)
	fmt.Fprintf(tw, "  on-failure:\t%s\n", c.OnFailure)
	fmt.Fprintf(tw, "  max-deliveries:\t%s\n", textDefault(int64(c.MaxDeliveries)))
	fmt.Fprintf(tw, "  backoff:\t%s\n", textBackoff(c.Backoff))
	fmt.Fprintf(tw, "  dead-letter-topic:\t%s\n", orDash(c.DeadLetterTopic))
	return tw.Flush()
}

// textBackoff formats a redelivery backoff: "1s..5m0s x2, jitter full" or
// the explicit delays "1s,10s,1m0s".
func textBackoff(b client.Backoff) string {
	if len(b.Delays) > 0 {
		ds := make([]string, len(b.Delays))
		for i, d := range b.Delays {
			ds[i] = d.String()
		}
		return strings.Join(ds, ",") + " (the last one repeating)"
	}
	mult := "default"
	if b.Multiplier > 0 {
		mult = strconv.FormatFloat(b.Multiplier, 'g', -1, 64)
	}
	return fmt.Sprintf("%s..%s x%s, jitter %s", textDuration(b.Initial, "default"), textDuration(b.Max, "default"), mult, b.Jitter)
}

// textDefault formats a setting where 0 means the server's default.
func textDefault(n int64) string {
	if n == 0 {
		return "default"
	}
	return strconv.FormatInt(n, 10)
}

// printQueuePartitions prints a queue subscription's state per partition.
func printQueuePartitions(w io.Writer, ps []client.SubscriptionPartition) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PARTITION\tACK-FLOOR\tEND\tLAG\tREADY\tWAITING\tBLOCKED\tIN-FLIGHT\tLIMITED\tPARKED\tOLDEST-UNCONSUMED")
	for _, p := range ps {
		q := p.Queue
		if q == nil {
			q = &client.QueuePartition{AckFloor: p.CommittedOffset}
		}
		limited := "no"
		if q.InFlightLimited {
			limited = "yes"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\n", p.Partition, q.AckFloor, p.EndOffset, p.Lag,
			q.Ready, q.Waiting, q.Blocked, q.InFlight, limited, q.Parked, textAge(p.OldestUnconsumedAge))
	}
	return tw.Flush()
}

// printSubPartitions prints a subscription's progress per partition.
func printSubPartitions(w io.Writer, ps []client.SubscriptionPartition) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PARTITION\tCOMMITTED\tEND\tLAG\tOLDEST-UNCONSUMED\tMEMBER\tHALTED")
	var halts []client.SubscriptionPartition
	for _, p := range ps {
		committed := "-"
		if p.CommittedOffset >= 0 {
			committed = fmt.Sprint(p.CommittedOffset)
		}
		halted := "-"
		if h := p.Halted; h != nil {
			halted = fmt.Sprintf("at %d", h.Offset)
			halts = append(halts, p)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\n", p.Partition, committed, p.EndOffset, p.Lag,
			textAge(p.OldestUnconsumedAge), orDash(p.MemberID), halted)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range halts {
		h := p.Halted
		fmt.Fprintf(w, "\nPartition %d halted at offset %d after %d attempts (%s, member %s): %s\n"+
			"  go on with: spool sub reset TOPIC NAME --partition %d --to %d (skip it) or --to %d (retry it)\n",
			p.Partition, h.Offset, h.Attempts, textTime(h.Time), orDash(h.MemberID), h.Error, p.Partition, h.Offset+1, h.Offset)
	}
	return nil
}

func newSubDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete TOPIC NAME",
		Short: "Delete a subscription and its committed offsets",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.DeleteSubscription(ctx, args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "deleted subscription %s on topic %s\n", args[1], args[0])
				return nil
			})
		},
	}
}

// JSON shapes of `spool sub list/describe/reset --output json`. A committed
// offset of -1 means nothing was committed yet; ages are Go duration
// strings; times RFC 3339 in UTC; start is "earliest", "latest",
// "time:<RFC 3339>" or "offset:<n>".
type (
	subJSON struct {
		Topic   string           `json:"topic"`
		Name    string           `json:"name"`
		Mode    string           `json:"mode"`
		Filter  string           `json:"filter"`
		Start   string           `json:"start"`
		Created string           `json:"created,omitempty"`
		Queue   *queueConfigJSON `json:"queue,omitempty"`   // queue subscriptions only
		Failure *failureJSON     `json:"failure,omitempty"` // stream subscriptions only
	}
	failureJSON struct {
		OnFailure       string      `json:"on_failure"`
		MaxDeliveries   int32       `json:"max_deliveries"`
		Backoff         backoffJSON `json:"backoff"`
		DeadLetterTopic string      `json:"dead_letter_topic"`
	}
	haltJSON struct {
		Offset   int64  `json:"offset"`
		Error    string `json:"error"`
		Attempts int32  `json:"attempts"`
		Time     string `json:"time"`
		MemberID string `json:"member_id,omitempty"`
	}
	queueConfigJSON struct {
		AckTimeout      string      `json:"ack_timeout"`
		MaxDeliveries   int32       `json:"max_deliveries"`
		Backoff         backoffJSON `json:"backoff"`
		Ordering        string      `json:"ordering"`
		DeadLetterTopic string      `json:"dead_letter_topic"`
		OnExpired       string      `json:"on_expired"`
		MaxInFlight     int32       `json:"max_in_flight"`
		RateLimit       float64     `json:"rate_limit"`
		RateBurst       int32       `json:"rate_burst"`
		ProcessedKey    string      `json:"processed_key"`           // off, id, key, header:NAME
		ProcessedTTL    string      `json:"processed_ttl,omitempty"` // with a processed key
	}
	backoffJSON struct {
		Initial    string   `json:"initial"`
		Max        string   `json:"max"`
		Multiplier float64  `json:"multiplier"`
		Jitter     string   `json:"jitter"`
		Delays     []string `json:"delays,omitempty"`
	}
	subInfoJSON struct {
		subJSON
		Generation   int64              `json:"generation"`
		Lag          int64              `json:"lag"`
		DeadLettered int64              `json:"dead_lettered"`
		Dropped      *int64             `json:"dropped,omitempty"` // queue subscriptions only
		Members      []memberJSON       `json:"members"`
		Partitions   []subPartitionJSON `json:"partitions"`
	}
	memberJSON struct {
		MemberID        string  `json:"member_id"`
		ClientID        string  `json:"client_id"`
		InstanceID      string  `json:"instance_id,omitempty"`
		Partitions      []int32 `json:"partitions"`
		Revoking        []int32 `json:"revoking"`
		SessionDeadline string  `json:"session_deadline,omitempty"`
	}
	subPartitionJSON struct {
		Partition           int32               `json:"partition"`
		CommittedOffset     int64               `json:"committed_offset"`
		EndOffset           int64               `json:"end_offset"`
		Lag                 int64               `json:"lag"`
		OldestUnconsumedAge string              `json:"oldest_unconsumed_age"`
		MemberID            string              `json:"member_id,omitempty"`
		Queue               *queuePartitionJSON `json:"queue,omitempty"`  // queue subscriptions only
		Halted              *haltJSON           `json:"halted,omitempty"` // stream: a halted partition
	}
	queuePartitionJSON struct {
		AckFloor        int64 `json:"ack_floor"`
		Ready           int32 `json:"ready"`
		Waiting         int32 `json:"waiting"`
		Blocked         int32 `json:"blocked"`
		InFlight        int32 `json:"in_flight"`
		InFlightLimited bool  `json:"in_flight_limited"`
		Parked          int64 `json:"parked"`
	}
	resetPartitionJSON struct {
		Partition       int32 `json:"partition"`
		CommittedOffset int64 `json:"committed_offset"`
		EndOffset       int64 `json:"end_offset"`
	}
)

func newSubJSON(s client.Subscription) subJSON {
	js := subJSON{Topic: s.Topic, Name: s.Name, Mode: s.Config.Mode.String(), Filter: s.Config.Filter,
		Start: s.Config.Start.String(), Created: jsonTime(s.Created)}
	if c := s.Config; c.Mode == client.ModeQueue {
		js.Queue = &queueConfigJSON{
			AckTimeout:    c.AckTimeout.String(),
			MaxDeliveries: c.MaxDeliveries,
			Backoff: backoffJSON{Initial: c.Backoff.Initial.String(), Max: c.Backoff.Max.String(),
				Multiplier: c.Backoff.Multiplier, Jitter: c.Backoff.Jitter.String()},
			Ordering:        c.Ordering.String(),
			DeadLetterTopic: c.DeadLetterTopic,
			OnExpired:       c.OnExpired.String(),
			MaxInFlight:     c.MaxInFlight,
			RateLimit:       c.RateLimit,
			RateBurst:       c.RateBurst,
			ProcessedKey:    client.ProcessedKeyOff,
		}
		if c.ProcessedKey != "" && c.ProcessedKey != client.ProcessedKeyOff {
			js.Queue.ProcessedKey, js.Queue.ProcessedTTL = c.ProcessedKey, c.ProcessedTTL.String()
		}
		for _, d := range c.Backoff.Delays {
			js.Queue.Backoff.Delays = append(js.Queue.Backoff.Delays, d.String())
		}
	} else {
		js.Failure = &failureJSON{OnFailure: c.OnFailure.String(), MaxDeliveries: c.MaxDeliveries, DeadLetterTopic: c.DeadLetterTopic,
			Backoff: backoffJSON{Initial: c.Backoff.Initial.String(), Max: c.Backoff.Max.String(),
				Multiplier: c.Backoff.Multiplier, Jitter: c.Backoff.Jitter.String()}}
		for _, d := range c.Backoff.Delays {
			js.Failure.Backoff.Delays = append(js.Failure.Backoff.Delays, d.String())
		}
	}
	return js
}

func newSubInfoJSON(info *client.SubscriptionInfo) subInfoJSON {
	js := subInfoJSON{
		subJSON:      newSubJSON(info.Subscription),
		Generation:   info.Generation,
		Lag:          info.Lag,
		DeadLettered: info.DeadLettered,
		Members:      make([]memberJSON, len(info.Members)),
		Partitions:   newSubPartitionsJSON(info.Partitions),
	}
	if info.Subscription.Config.Mode == client.ModeQueue {
		js.Dropped = &info.Dropped
	}
	for i, m := range info.Members {
		js.Members[i] = memberJSON{MemberID: m.MemberID, ClientID: m.ClientID, InstanceID: m.InstanceID,
			Partitions: append([]int32{}, m.Partitions...), Revoking: append([]int32{}, m.Revoking...),
			SessionDeadline: jsonTime(m.SessionDeadline)}
	}
	return js
}

func newSubPartitionsJSON(ps []client.SubscriptionPartition) []subPartitionJSON {
	js := make([]subPartitionJSON, len(ps))
	for i, p := range ps {
		js[i] = subPartitionJSON{Partition: p.Partition, CommittedOffset: p.CommittedOffset, EndOffset: p.EndOffset,
			Lag: p.Lag, OldestUnconsumedAge: p.OldestUnconsumedAge.String(), MemberID: p.MemberID}
		if q := p.Queue; q != nil {
			js[i].Queue = &queuePartitionJSON{AckFloor: q.AckFloor, Ready: q.Ready, Waiting: q.Waiting, Blocked: q.Blocked,
				InFlight: q.InFlight, InFlightLimited: q.InFlightLimited, Parked: q.Parked}
		}
		if h := p.Halted; h != nil {
			js[i].Halted = &haltJSON{Offset: h.Offset, Error: h.Error, Attempts: h.Attempts, Time: jsonTime(h.Time), MemberID: h.MemberID}
		}
	}
	return js
}

// textProcessed describes a queue subscription's processed-key ledger.
func textProcessed(c client.SubscriptionConfig) string {
	if c.ProcessedKey == "" || c.ProcessedKey == client.ProcessedKeyOff {
		return "off"
	}
	return fmt.Sprintf("%s, ttl %s", c.ProcessedKey, c.ProcessedTTL)
}

package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

// subAlterFlags maps each flag of `spool sub alter` to the setting it
// changes.
var subAlterFlags = []struct {
	flag  string
	field client.SubField
}{
	{"filter", client.SubFieldFilter},
	{"ack-timeout", client.SubFieldAckTimeout},
	{"max-deliveries", client.SubFieldMaxDeliveries},
	{"backoff-initial", client.SubFieldBackoffInitial},
	{"backoff-max", client.SubFieldBackoffMax},
	{"backoff-multiplier", client.SubFieldBackoffMultiplier},
	{"backoff-jitter", client.SubFieldBackoffJitter},
	{"backoff-delays", client.SubFieldBackoffDelays},
	{"on-expired", client.SubFieldOnExpired},
	{"max-in-flight", client.SubFieldMaxInFlight},
	{"rate-limit", client.SubFieldRateLimit},
	{"rate-burst", client.SubFieldRateBurst},
	{"on-failure", client.SubFieldOnFailure},
	{"processed-key", client.SubFieldProcessedKey},
	{"processed-ttl", client.SubFieldProcessedTTL},
}

// subFixedFlags are settings of `spool sub create` that cannot change, with
// what to do instead.
var subFixedFlags = map[string]string{
	"mode":     "a subscription's mode cannot change: create a new subscription",
	"start":    "a subscription's start cannot change: move it with `spool sub reset --to`",
	"ordering": "a subscription's ordering cannot change: create a new subscription",
	"dlq":      "a subscription's dead-letter topic cannot change: create a new subscription",
}

func newSubAlterCmd() *cobra.Command {
	var (
		filter, onFailure string
		qf                queueFlags
		fixed             string // the value of a flag that cannot change (refused)
	)
	cmd := &cobra.Command{
		Use:   "alter TOPIC NAME",
		Short: "Change a subscription's filter, delivery settings and limits",
		Long: "Change a subscription while consumers are connected: only the settings given change,\n" +
			"and consumers keep their sessions and leases.\n\n" +
			"--filter applies to messages read from now on; messages already read keep their\n" +
			"fate (a queue subscription still delivers what it took in under the old filter).\n" +
			"Queue settings apply to later decisions: leases keep their deadlines and scheduled\n" +
			"redeliveries their times; the next lease end uses the new backoff and max\n" +
			"deliveries. --max-in-flight and the rate limit apply to the next delivery. A\n" +
			"setting given as 0 returns to its default.\n\n" +
			"--ack-timeout, --on-expired, --max-in-flight, --rate-limit, --rate-burst,\n" +
			"--processed-key and --processed-ttl apply to\n" +
			"queue subscriptions; --on-failure to stream subscriptions, where --max-deliveries is\n" +
			"the consumer's handler attempts and the --backoff-* flags its delays between them.\n" +
			"The mode, start, ordering and dead-letter topic cannot change.",
		Example: "  spool sub alter orders billing --filter 'orders.eu.#'\n" +
			"  spool sub alter jobs resize --max-in-flight 50 --rate-limit 100\n" +
			"  spool sub alter jobs resize --backoff-initial 5s --max-deliveries 10\n" +
			"  spool sub alter orders billing --on-failure stop --max-deliveries 3",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			for name, msg := range subFixedFlags {
				if cmd.Flags().Changed(name) {
					return usageErrorf(cmd, "--%s: %s", name, msg)
				}
			}
			cfg := client.SubscriptionConfig{Filter: filter}
			if err := qf.apply(cmd, &cfg); err != nil {
				return err
			}
			cfg.OnFailure = map[string]client.FailureAction{"": client.FailureDefault, "dead-letter": client.FailureDeadLetter,
				"stop": client.FailureStop}[onFailure]
			var fields []client.SubField
			for _, sf := range subAlterFlags {
				if cmd.Flags().Changed(sf.flag) {
					fields = append(fields, sf.field)
				}
			}
			if len(fields) == 0 {
				return usageErrorf(cmd, "nothing to change: give at least one setting (see --help)")
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				s, err := c.AlterSubscription(ctx, args[0], args[1], cfg, fields...)
				if err != nil {
					return err
				}
				var changes []string
				for _, f := range fields {
					if c := subSettingText(s.Config, f); !slices.Contains(changes, c) {
						changes = append(changes, c) // the backoff flags share one line
					}
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "altered subscription %s on topic %s: %s\n", s.Name, s.Topic, strings.Join(changes, ", "))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&filter, "filter", "", "deliver only messages whose subject matches `PATTERN`; '' for every message")
	f.DurationVar(&qf.ackTimeout, "ack-timeout", 0, "queue: lease length of a delivery; 0: the default (30s)")
	f.Int32Var(&qf.maxDeliveries, "max-deliveries", 0, "queue: dead-letter a message delivered `N` times without an ack; stream: handler attempts per message; 0: the default (5)")
	f.DurationVar(&qf.backoffInitial, "backoff-initial", 0, "delay of the first redelivery (queue) or retry (stream); 0: the default (1s)")
	f.DurationVar(&qf.backoffMax, "backoff-max", 0, "longest redelivery or retry delay; 0: the default (5m)")
	f.Float64Var(&qf.backoffMultiplier, "backoff-multiplier", 0, "growth of the delay per redelivery or retry, at least 1")
	f.Var(newEnum(&qf.backoffJitter, "", "full", "equal", "none"), "backoff-jitter", "randomization of a delay d: full (uniform in [0,d]), equal ([d/2,d]) or none")
	f.Var((*durationsValue)(&qf.backoffDelays), "backoff-delays", "explicit delays `D,D,...`, the last one repeating (instead of initial/max/multiplier)")
	f.Var(newEnum(&qf.onExpired, "", "dead-letter", "drop"), "on-expired", "queue: what happens to a message whose TTL passed")
	f.Int32Var(&qf.maxInFlight, "max-in-flight", 0, "queue: leases in flight in the whole subscription, at most `N`; 0: the default (1000 per partition)")
	f.Float64Var(&qf.rateLimit, "rate-limit", 0, "queue: deliveries per second over the subscription, `R`; 0: unlimited")
	f.Int32Var(&qf.rateBurst, "rate-burst", 0, "queue: burst of the rate limit, `N` deliveries; 0: max(1, rate-limit)")
	f.StringVar(&qf.processedKey, "processed-key", "", "queue: key the ledger of processed messages by `KEY` (id, key or header:NAME), or off; keys recorded before keep their kind (docs/idempotent-consumer.md)")
	f.DurationVar(&qf.processedTTL, "processed-ttl", 0, "queue: how long a processed key is remembered, for keys processed from now on; 0: the default (24h)")
	f.Var(newEnum(&onFailure, "", "dead-letter", "stop"), "on-failure", "stream: what happens to a message whose handler failed --max-deliveries times: dead-letter it, or stop the partition until it is reset")
	for name := range subFixedFlags {
		f.StringVar(&fixed, name, "", "cannot change")
		f.Lookup(name).Hidden = true
	}
	return cmd
}

// subSettingText formats one setting of a subscription's effective config
// as "flag value".
func subSettingText(c client.SubscriptionConfig, f client.SubField) string {
	var v string
	switch f {
	case client.SubFieldFilter:
		v = orDash(c.Filter)
	case client.SubFieldAckTimeout:
		v = textDuration(c.AckTimeout, "default")
	case client.SubFieldMaxDeliveries:
		v = textDefault(int64(c.MaxDeliveries))
	case client.SubFieldBackoffInitial, client.SubFieldBackoffMax, client.SubFieldBackoffMultiplier,
		client.SubFieldBackoffJitter, client.SubFieldBackoffDelays:
		return "backoff " + textBackoff(c.Backoff)
	case client.SubFieldOnExpired:
		v = c.OnExpired.String()
	case client.SubFieldMaxInFlight:
		v = textDefault(int64(c.MaxInFlight))
	case client.SubFieldRateLimit:
		v = "unlimited"
		if c.RateLimit > 0 {
			v = strconv.FormatFloat(c.RateLimit, 'g', -1, 64) + "/s"
		}
	case client.SubFieldRateBurst:
		v = textDefault(int64(c.RateBurst))
	case client.SubFieldOnFailure:
		v = c.OnFailure.String()
	case client.SubFieldProcessedKey, client.SubFieldProcessedTTL:
		return "processed-key " + textProcessed(c)
	}
	for _, sf := range subAlterFlags {
		if sf.field == f {
			return sf.flag + " " + v
		}
	}
	return string(f) + " " + v
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

// topicReadFlags are the options of `spool topic read`.
type topicReadFlags struct {
	partition int32
	from      string
	count     int64
	follow    bool
	output    string
	verbose   bool
}

func newTopicReadCmd() *cobra.Command {
	var rf topicReadFlags
	cmd := &cobra.Command{
		Use:   "read TOPIC",
		Short: "Print a topic's messages without a subscription (nothing is committed)",
		Long: "Print the messages of TOPIC from a position, in one partition (--partition) or all of\n" +
			"them, without a subscription: nothing is committed or leased, no consumer group is\n" +
			"joined, and the topic's subscriptions do not notice. For debugging and audits.\n\n" +
			"Messages come in offset order within each partition, the partitions interleaved.\n" +
			"Without --follow the read ends once each partition was read up to the end offset it\n" +
			"had when the read started; with --follow it waits for new messages until --count\n" +
			"messages were printed, Ctrl-C (SIGINT) or SIGTERM (exit 0). Messages removed by\n" +
			"retention while the read runs are skipped.\n\n" +
			"The output is that of `spool consume` (see `spool consume --help`): --output text\n" +
			"prints each value as is, followed by \"\\n\" (with -v, preceded by\n" +
			"\"PARTITION/OFFSET key=KEY \"); --output json prints one object per line with\n" +
			"partition, offset, timestamp, id, subject, key, headers and value.",
		Example: "  spool topic read orders                                  # everything stored, then exit\n" +
			"  spool topic read orders --partition 1 --from 1200 --count 10 -v\n" +
			"  spool topic read orders --from -15m --follow -o json | jq .value\n" +
			"  spool topic read orders --from latest --follow        # like tail -f",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			partition := cmd.Flags().Changed("partition")
			switch {
			case partition && rf.partition < 0:
				return usageErrorf(cmd, "--partition: must not be negative")
			case rf.count < 0:
				return usageErrorf(cmd, "--count: must not be negative")
			}
			from, err := positionFlag(cmd, "from", rf.from)
			if err != nil {
				return err
			}
			opts := []client.ReadOption{client.ReadFrom(from), client.ReadCount(rf.count)}
			if partition {
				opts = append(opts, client.ReadPartition(rf.partition))
			}
			if rf.follow {
				opts = append(opts, client.ReadFollow())
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				return readTopic(ctx, cmd, c, args[0], rf, opts)
			})
		},
	}
	f := cmd.Flags()
	f.Int32Var(&rf.partition, "partition", 0, "read only partition `P` (default: every partition)")
	f.StringVar(&rf.from, "from", "earliest", "where to start in each partition: "+positionHelp)
	f.Int64Var(&rf.count, "count", 0, "stop after printing `N` messages (default: no limit)")
	f.BoolVarP(&rf.follow, "follow", "f", false, "at the end, wait for new messages instead of exiting")
	f.VarP(newEnum(&rf.output, "text", "text", "json"), "output", "o", "text: one value per line; json: one object per line with partition, offset, timestamp, key, headers and value")
	f.BoolVarP(&rf.verbose, "verbose", "v", false, "text output: prefix each value with PARTITION/OFFSET key=KEY")
	return cmd
}

// readTopic prints the messages of a read until it ends, fails or is
// interrupted, then the summary.
func readTopic(ctx context.Context, cmd *cobra.Command, c *client.Client, topic string, rf topicReadFlags, opts []client.ReadOption) error {
	sigCtx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	pr := &msgPrinter{w: cmd.OutOrStdout(), json: rf.output == "json", verbose: rf.verbose}
	n := 0
	var err error
	for m, rerr := range c.ReadTopic(sigCtx, topic, opts...) {
		if rerr != nil {
			err = rerr
			break
		}
		if werr := pr.print(m); werr != nil {
			err = fmt.Errorf("writing output: %w", werr)
			break
		}
		n++
	}
	if errors.Is(err, context.Canceled) && sigCtx.Err() != nil && ctx.Err() == nil {
		err = nil // interrupted: a normal end
	}
	if err != nil && n == 0 {
		return err // nothing was read: the error says it all
	}
	where := topic
	if cmd.Flags().Changed("partition") {
		where = fmt.Sprintf("partition %d of %s", rf.partition, topic)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "read %s from %s\n", plural(n, "message"), where)
	return err
}

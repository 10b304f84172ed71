package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

func newSubResetCmd() *cobra.Command {
	var (
		to, output string
		partition  int32
	)
	cmd := &cobra.Command{
		Use:   "reset TOPIC NAME --to POSITION [--partition P]",
		Short: "Move a subscription's position (replay or skip), in every partition or one",
		Long: "Move a subscription's position in every partition (or only --partition) to --to, to\n" +
			"replay messages or skip them, and print the new positions and end offsets (see\n" +
			"`spool sub describe` for lag).\n\n" +
			"Stream subscriptions: the committed offsets move; running consumers continue from\n" +
			"there. Queue subscriptions: the ack floor moves and the queue state of the partition\n" +
			"starts over: leases in flight are dropped (their late acks are ignored), waiting and\n" +
			"delayed messages are forgotten (those at or after the new position are delivered\n" +
			"again, with fresh delivery counts); dead letters stay. A halted stream partition\n" +
			"(--on-failure stop) goes on from the new position.\n\n" +
			"An OFFSET is clamped to what each partition retains when every partition moves; with\n" +
			"--partition it must lie between the partition's start and end offsets.",
		Example: "  spool sub reset orders billing --to earliest\n" +
			"  spool sub reset orders billing --to 2026-01-02T15:04:05Z\n" +
			"  spool sub reset orders billing --to -30m\n" +
			"  spool sub reset orders billing --partition 2 --to 1042    # seek one partition",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("to") {
				return usageErrorf(cmd, "--to is required")
			}
			if cmd.Flags().Changed("partition") && partition < 0 {
				return usageErrorf(cmd, "--partition: must not be negative")
			}
			pos, err := positionFlag(cmd, "to", to)
			if err != nil {
				return err
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				var ps []client.SubscriptionPartition
				if cmd.Flags().Changed("partition") {
					p, err := c.ResetPartition(ctx, args[0], args[1], partition, pos)
					if err != nil {
						return err
					}
					ps = []client.SubscriptionPartition{p}
					fmt.Fprintf(cmd.ErrOrStderr(), "reset partition %d of subscription %s on topic %s to %s\n", partition, args[1], args[0], pos)
				} else {
					if ps, err = c.ResetSubscription(ctx, args[0], args[1], pos); err != nil {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "reset subscription %s on topic %s to %s\n", args[1], args[0], pos)
				}
				return printResetPartitions(cmd, output, ps)
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the new `POSITION` (required): "+positionHelp)
	cmd.Flags().Int32Var(&partition, "partition", 0, "move only partition `P` (default: every partition)")
	addOutputFlag(cmd, &output)
	return cmd
}

func newSubPurgeCmd() *cobra.Command {
	var (
		output    string
		partition int32
	)
	cmd := &cobra.Command{
		Use:   "purge TOPIC NAME [--partition P]",
		Short: "Acknowledge everything published so far (skip the backlog)",
		Long: "Acknowledge every message published so far to the subscription, in every partition\n" +
			"(or only --partition): its position moves to the end, as `spool sub reset --to latest`,\n" +
			"and the number of offsets skipped is reported. Queue subscriptions drop their leases,\n" +
			"waiting and delayed messages as a reset does; dead letters stay. Messages published\n" +
			"while the purge runs may be skipped or delivered.",
		Example: "  spool sub purge orders fulfilment\n" +
			"  spool sub purge orders fulfilment --partition 0 -o json",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("partition") && partition < 0 {
				return usageErrorf(cmd, "--partition: must not be negative")
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				var (
					res client.PurgeResult
					err error
				)
				if cmd.Flags().Changed("partition") {
					res, err = c.PurgePartition(ctx, args[0], args[1], partition)
				} else {
					res, err = c.PurgeSubscription(ctx, args[0], args[1])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "purged subscription %s on topic %s: %d skipped\n", args[1], args[0], res.Skipped)
				if output == "json" {
					return writeJSON(cmd.OutOrStdout(), purgeJSON{Skipped: res.Skipped, Partitions: resetPartitionsJSON(res.Partitions)})
				}
				return printResetPartitions(cmd, output, res.Partitions)
			})
		},
	}
	cmd.Flags().Int32Var(&partition, "partition", 0, "purge only partition `P` (default: every partition)")
	addOutputFlag(cmd, &output)
	return cmd
}

type purgeJSON struct {
	Skipped    int64                `json:"skipped"`
	Partitions []resetPartitionJSON `json:"partitions"`
}

func resetPartitionsJSON(ps []client.SubscriptionPartition) []resetPartitionJSON {
	js := make([]resetPartitionJSON, len(ps))
	for i, p := range ps {
		js[i] = resetPartitionJSON{Partition: p.Partition, CommittedOffset: p.CommittedOffset, EndOffset: p.EndOffset}
	}
	return js
}

// printResetPartitions prints the answer of a reset or purge: the new
// position (committed offset or ack floor) and the end of each partition.
func printResetPartitions(cmd *cobra.Command, output string, ps []client.SubscriptionPartition) error {
	if output == "json" {
		return writeJSON(cmd.OutOrStdout(), resetPartitionsJSON(ps))
	}
	tw := newTable(cmd.OutOrStdout())
	fmt.Fprintln(tw, "PARTITION\tCOMMITTED\tEND")
	for _, p := range ps {
		fmt.Fprintf(tw, "%d\t%d\t%d\n", p.Partition, p.CommittedOffset, p.EndOffset)
	}
	return tw.Flush()
}

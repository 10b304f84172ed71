package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

func newSubCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sub",
		Short: "Create, list, describe, reset and delete subscriptions",
	}
	cmd.AddCommand(newSubCreateCmd(), newSubListCmd(), newSubDescribeCmd(), newSubDeleteCmd(), newSubResetCmd())
	return cmd
}

func newSubCreateCmd() *cobra.Command {
	var mode, filter, start string
	cmd := &cobra.Command{
		Use:   "create TOPIC NAME",
		Short: "Create a subscription on a topic",
		Long: "Create a subscription on a topic. Every subscription receives every message of the\n" +
			"topic that matches its filter, independently of the others; its committed offsets\n" +
			"start at --start, resolved when the subscription is created.\n\n" +
			"Filters match message subjects (spool pub --subject): dot-separated tokens where\n" +
			"\"*\" matches one token and \"#\" zero or more, e.g. orders.*.created or orders.#.",
		Example: "  spool sub create orders billing --filter 'orders.eu.#' --start -1h",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, err := positionFlag(cmd, "start", start)
			if err != nil {
				return err
			}
			cfg := client.SubscriptionConfig{Filter: filter, Start: pos, Mode: client.ModeStream}
			if mode == "queue" {
				cfg.Mode = client.ModeQueue
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				s, err := c.CreateSubscription(ctx, args[0], args[1], cfg)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "created subscription %s on topic %s (%s, start %s)\n",
					s.Name, s.Topic, s.Config.Mode, s.Config.Start)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Var(newEnum(&mode, "stream", "stream", "queue"), "mode", "stream: partitions are assigned to consumers, in order, with committed offsets; queue: per-message leases and acks (not available yet)")
	f.StringVar(&filter, "filter", "", "deliver only messages whose subject matches `PATTERN` (default: every message)")
	f.StringVar(&start, "start", "earliest", "where the subscription starts, a `POSITION`: "+positionHelp)
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
			"and the total lag.",
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
	fmt.Fprintf(tw, "Generation:\t%d\n", info.Generation)
	fmt.Fprintf(tw, "Lag:\t%d\n", info.Lag)
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(info.Members) == 0 {
		fmt.Fprintln(w, "Members: none")
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
	return printSubPartitions(w, info.Partitions)
}

// printSubPartitions prints a subscription's progress per partition.
func printSubPartitions(w io.Writer, ps []client.SubscriptionPartition) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "PARTITION\tCOMMITTED\tEND\tLAG\tOLDEST-UNCONSUMED\tMEMBER")
	for _, p := range ps {
		committed := "-"
		if p.CommittedOffset >= 0 {
			committed = fmt.Sprint(p.CommittedOffset)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", p.Partition, committed, p.EndOffset, p.Lag,
			textAge(p.OldestUnconsumedAge), orDash(p.MemberID))
	}
	return tw.Flush()
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

func newSubResetCmd() *cobra.Command {
	var to, output string
	cmd := &cobra.Command{
		Use:   "reset TOPIC NAME --to POSITION",
		Short: "Move a subscription's committed offsets (replay or skip)",
		Long: "Move every partition's committed offset of a subscription to --to, to replay\n" +
			"messages or skip them. Running consumers continue from there. Prints the new\n" +
			"committed and end offsets (see `spool sub describe` for lag).",
		Example: "  spool sub reset orders billing --to earliest\n" +
			"  spool sub reset orders billing --to 2026-01-02T15:04:05Z\n" +
			"  spool sub reset orders billing --to -30m",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("to") {
				return usageErrorf(cmd, "--to is required")
			}
			pos, err := positionFlag(cmd, "to", to)
			if err != nil {
				return err
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				ps, err := c.ResetSubscription(ctx, args[0], args[1], pos)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "reset subscription %s on topic %s to %s\n", args[1], args[0], pos)
				// The reset's answer carries the new committed offsets and the
				// end offsets, not lag: `spool sub describe` shows that.
				if output == "json" {
					js := make([]resetPartitionJSON, len(ps))
					for i, p := range ps {
						js[i] = resetPartitionJSON{Partition: p.Partition, CommittedOffset: p.CommittedOffset, EndOffset: p.EndOffset}
					}
					return writeJSON(cmd.OutOrStdout(), js)
				}
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "PARTITION\tCOMMITTED\tEND")
				for _, p := range ps {
					fmt.Fprintf(tw, "%d\t%d\t%d\n", p.Partition, p.CommittedOffset, p.EndOffset)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the new `POSITION` (required): "+positionHelp)
	addOutputFlag(cmd, &output)
	return cmd
}

// JSON shapes of `spool sub list/describe/reset --output json`. A committed
// offset of -1 means nothing was committed yet; ages are Go duration
// strings; times RFC 3339 in UTC; start is "earliest", "latest",
// "time:<RFC 3339>" or "offset:<n>".
type (
	subJSON struct {
		Topic   string `json:"topic"`
		Name    string `json:"name"`
		Mode    string `json:"mode"`
		Filter  string `json:"filter"`
		Start   string `json:"start"`
		Created string `json:"created,omitempty"`
	}
	subInfoJSON struct {
		subJSON
		Generation int64              `json:"generation"`
		Lag        int64              `json:"lag"`
		Members    []memberJSON       `json:"members"`
		Partitions []subPartitionJSON `json:"partitions"`
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
		Partition           int32  `json:"partition"`
		CommittedOffset     int64  `json:"committed_offset"`
		EndOffset           int64  `json:"end_offset"`
		Lag                 int64  `json:"lag"`
		OldestUnconsumedAge string `json:"oldest_unconsumed_age"`
		MemberID            string `json:"member_id,omitempty"`
	}
	resetPartitionJSON struct {
		Partition       int32 `json:"partition"`
		CommittedOffset int64 `json:"committed_offset"`
		EndOffset       int64 `json:"end_offset"`
	}
)

func newSubJSON(s client.Subscription) subJSON {
	return subJSON{Topic: s.Topic, Name: s.Name, Mode: s.Config.Mode.String(), Filter: s.Config.Filter,
		Start: s.Config.Start.String(), Created: jsonTime(s.Created)}
}

func newSubInfoJSON(info *client.SubscriptionInfo) subInfoJSON {
	js := subInfoJSON{
		subJSON:    newSubJSON(info.Subscription),
		Generation: info.Generation,
		Lag:        info.Lag,
		Members:    make([]memberJSON, len(info.Members)),
		Partitions: newSubPartitionsJSON(info.Partitions),
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
	}
	return js
}

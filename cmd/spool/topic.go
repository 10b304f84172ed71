package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

func newTopicCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, change, list, describe, read and delete topics",
	}
	cmd.AddCommand(newTopicCreateCmd(), newTopicAlterCmd(), newTopicAddPartitionsCmd(), newTopicListCmd(), newTopicDescribeCmd(), newTopicReadCmd(), newTopicDeleteCmd())
	return cmd
}

func newTopicCreateCmd() *cobra.Command {
	var tf topicFlags
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: "Create a topic. Options left out take the server's defaults (see `spool topic describe`).\n" +
			"Sizes are a number of bytes, optionally with a unit: 1048576, 512KiB, 64MiB, 10GB.\n" +
			"Durations are Go durations or a number of days: 90s, 30m, 168h, 7d, 1d12h.",
		Example: "  spool topic create orders --partitions 3 --retention 7d\n" +
			"  spool topic create jobs --work-queue",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tf.cfg.Partitions < 0 {
				return usageErrorf(cmd, "--partitions: must not be negative")
			}
			cfg, _, err := tf.config(cmd)
			if err != nil {
				return err
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				t, err := c.CreateTopic(ctx, args[0], cfg)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "created topic %s (%s)\n", t.Name, plural(int(t.Config.Partitions), "partition"))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Int32Var(&tf.cfg.Partitions, "partitions", 0, "number of partitions, 1-1024 (server default: 1); can only grow later (spool topic add-partitions)")
	tf.register(f, false)
	return cmd
}

func newTopicListCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				topics, err := c.ListTopics(ctx)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if output == "json" {
					js := make([]topicJSON, len(topics))
					for i, t := range topics {
						js[i] = newTopicJSON(t)
					}
					return writeJSON(out, js)
				}
				tw := newTable(out)
				fmt.Fprintln(tw, "NAME\tPARTITIONS\tRETENTION\tDURABILITY\tCREATED")
				for _, t := range topics {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", t.Name, t.Config.Partitions,
						textDuration(t.Config.Retention, "forever"), t.Config.Durability, textTime(t.Created))
				}
				return tw.Flush()
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func newTopicDescribeCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic: its partitions' offsets and sizes, depth, config and subscriptions",
		Long: "Show a topic: each partition's start offset (oldest retained message), end offset\n" +
			"(the offset the next message gets) and bytes; the topic's depth (messages stored);\n" +
			"its effective configuration; and its subscriptions.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.DescribeTopic(ctx, args[0])
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(cmd.OutOrStdout(), newTopicInfoJSON(info))
				}
				return printTopicInfo(cmd.OutOrStdout(), info)
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printTopicInfo(w io.Writer, info *client.TopicInfo) error {
	t := info.Topic
	subs := "none"
	if len(info.Subscriptions) > 0 {
		subs = strings.Join(info.Subscriptions, ", ")
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "Name:\t%s\n", t.Name)
	fmt.Fprintf(tw, "ID:\t%s\n", orDash(t.ID))
	fmt.Fprintf(tw, "Created:\t%s\n", textTime(t.Created))
	fmt.Fprintf(tw, "Partitions:\t%d\n", len(info.Partitions))
	fmt.Fprintf(tw, "Messages:\t%d\n", info.Messages)
	fmt.Fprintf(tw, "Bytes:\t%d\n", info.Bytes)
	fmt.Fprintf(tw, "Subscriptions:\t%s\n", subs)
	if err := tw.Flush(); err != nil {
		return err
	}

	cfg := t.Config
	fmt.Fprintln(w, "\nConfig:")
	tw = newTable(w)
	fmt.Fprintf(tw, "  retention:\t%s\n", textDuration(cfg.Retention, "forever"))
	fmt.Fprintf(tw, "  retention-bytes:\t%s\n", textLimit(cfg.RetentionBytes))
	fmt.Fprintf(tw, "  max-messages:\t%s\n", textLimit(cfg.MaxMessages))
	fmt.Fprintf(tw, "  max-bytes:\t%s\n", textLimit(cfg.MaxBytes))
	fmt.Fprintf(tw, "  discard:\t%s\n", cfg.Discard)
	fmt.Fprintf(tw, "  dedup-window:\t%s\n", textDuration(cfg.DedupWindow, "default"))
	fmt.Fprintf(tw, "  ttl:\t%s\n", textDuration(cfg.MessageTTL, "never"))
	fmt.Fprintf(tw, "  durability:\t%s\n", cfg.Durability)
	fmt.Fprintf(tw, "  max-message-bytes:\t%s\n", textLimit(int64(cfg.MaxMessageBytes)))
	fmt.Fprintf(tw, "  work-queue:\t%s\n", textYesNo(cfg.WorkQueue))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = newTable(w)
	cluster := slices.ContainsFunc(info.Partitions, func(p client.PartitionInfo) bool { return p.Leader != 0 || p.LeaderAddr != "" })
	if !cluster {
		fmt.Fprintln(tw, "PARTITION\tSTART\tEND\tMESSAGES\tBYTES")
	} else {
		fmt.Fprintln(tw, "PARTITION\tSTART\tEND\tMESSAGES\tBYTES\tLEADER")
	}
	for _, p := range info.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d", p.Partition, p.StartOffset, p.EndOffset, p.EndOffset-p.StartOffset, p.Bytes)
		if cluster {
			fmt.Fprintf(tw, "\t%s", leaderText(p))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// leaderText is a cluster partition's leader: "2 (127.0.0.1:7075)", or
// "none" during an election.
func leaderText(p client.PartitionInfo) string {
	switch {
	case p.Leader == 0:
		return "none"
	case p.LeaderAddr == "":
		return strconv.FormatUint(p.Leader, 10)
	}
	return fmt.Sprintf("%d (%s)", p.Leader, p.LeaderAddr)
}

func newTopicDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a topic with its messages and subscriptions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.DeleteTopic(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "deleted topic %s\n", args[0])
				return nil
			})
		},
	}
}

// JSON shapes of `spool topic list/describe --output json`. Durations are Go
// duration strings ("168h0m0s"), times RFC 3339 in UTC; 0 means "none" or
// "no limit" as in the flags of `spool topic create`.
type (
	topicJSON struct {
		Name    string          `json:"name"`
		ID      string          `json:"id,omitempty"`
		Created string          `json:"created,omitempty"`
		Config  topicConfigJSON `json:"config"`
	}
	topicConfigJSON struct {
		Partitions      int32  `json:"partitions"`
		Retention       string `json:"retention"`
		RetentionBytes  int64  `json:"retention_bytes"`
		MaxMessages     int64  `json:"max_messages"`
		MaxBytes        int64  `json:"max_bytes"`
		Discard         string `json:"discard"`
		DedupWindow     string `json:"dedup_window"`
		TTL             string `json:"ttl"`
		Durability      string `json:"durability"`
		MaxMessageBytes int32  `json:"max_message_bytes"`
		WorkQueue       bool   `json:"work_queue"`
	}
	topicInfoJSON struct {
		topicJSON
		Partitions    []partitionJSON `json:"partitions"`
		Messages      int64           `json:"messages"`
		Bytes         int64           `json:"bytes"`
		Subscriptions []string        `json:"subscriptions"`
	}
	partitionJSON struct {
		Partition   int32  `json:"partition"`
		StartOffset int64  `json:"start_offset"`
		EndOffset   int64  `json:"end_offset"`
		Messages    int64  `json:"messages"`
		Bytes       int64  `json:"bytes"`
		Leader      uint64 `json:"leader,omitempty"`
		LeaderAddr  string `json:"leader_addr,omitempty"`
	}
)

func newTopicJSON(t client.Topic) topicJSON {
	c := t.Config
	return topicJSON{
		Name:    t.Name,
		ID:      t.ID,
		Created: jsonTime(t.Created),
		Config: topicConfigJSON{
			Partitions:      c.Partitions,
			Retention:       c.Retention.String(),
			RetentionBytes:  c.RetentionBytes,
			MaxMessages:     c.MaxMessages,
			MaxBytes:        c.MaxBytes,
			Discard:         c.Discard.String(),
			DedupWindow:     c.DedupWindow.String(),
			TTL:             c.MessageTTL.String(),
			Durability:      c.Durability.String(),
			MaxMessageBytes: c.MaxMessageBytes,
			WorkQueue:       c.WorkQueue,
		},
	}
}

func newTopicInfoJSON(info *client.TopicInfo) topicInfoJSON {
	js := topicInfoJSON{
		topicJSON:     newTopicJSON(info.Topic),
		Partitions:    make([]partitionJSON, len(info.Partitions)),
		Messages:      info.Messages,
		Bytes:         info.Bytes,
		Subscriptions: append([]string{}, info.Subscriptions...),
	}
	for i, p := range info.Partitions {
		js.Partitions[i] = partitionJSON{Partition: p.Partition, StartOffset: p.StartOffset, EndOffset: p.EndOffset,
			Messages: p.EndOffset - p.StartOffset, Bytes: p.Bytes, Leader: p.Leader, LeaderAddr: p.LeaderAddr}
	}
	return js
}

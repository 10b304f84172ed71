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
	cmd.AddCommand(newTopicCreateCmd(), newTopicAlterCmd(), newTopicAddPartitionsCmd(), newTopicReassignCmd(), newTopicListCmd(), newTopicDescribeCmd(), newTopicReadCmd(), newTopicDeleteCmd())
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
			"  spool topic create jobs --work-queue\n" +
			"  spool topic create orders --schema orders-value --owner payments --label tier=1\n" +
			"  spool topic create payments --partitions 6 --replicas 5   # on a cluster of five nodes or more",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tf.cfg.Partitions < 0 {
				return usageErrorf(cmd, "--partitions: must not be negative")
			}
			if r := tf.cfg.Replicas; r != 0 && r != 1 && r != 3 && r != 5 {
				return usageErrorf(cmd, "--replicas: give 1, 3 or 5")
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
	f.Int32Var(&tf.cfg.Replicas, "replicas", 0, "on a cluster: the replication factor, how many nodes' copies of each partition count towards its quorum: 1, 3 or 5, at most the number of nodes (default: 3 with three nodes or more); fixed at creation")
	tf.register(f, false)
	return cmd
}

func newTopicReassignCmd() *cobra.Command {
	var (
		partition int32
		replicas  string
	)
	cmd := &cobra.Command{
		Use:   "reassign TOPIC --partition P --replicas IDS",
		Short: "Move a partition's replicas to other nodes (a cluster)",
		Long: "Move a partition's replicas to other nodes of a cluster: --replicas lists the node ids of its new\n" +
			"replicas, as many as the topic's replication factor, the first its preferred leader. The catalog\n" +
			"records them at once; the partition's leader then makes each new replica a voter once it has\n" +
			"caught up and the others learners. `spool topic describe` shows the replicas reaching the assigned ones.",
		Example: "  spool topic reassign orders --partition 0 --replicas 1,2,4",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if partition < 0 {
				return usageErrorf(cmd, "--partition: must not be negative")
			}
			ids, err := parseNodeIDs(replicas)
			if err != nil {
				return usageErrorf(cmd, "--replicas: %v", err)
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.ReassignPartition(ctx, args[0], partition, ids); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "partition %s/%d assigned to nodes %s\n", args[0], partition, nodeList(ids))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Int32Var(&partition, "partition", 0, "the partition to move")
	f.StringVar(&replicas, "replicas", "", "the node ids of its new replicas, comma-separated (for example 1,2,4)")
	_ = cmd.MarkFlagRequired("replicas")
	return cmd
}

// parseNodeIDs parses a comma-separated list of node ids.
func parseNodeIDs(s string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		id, err := strconv.ParseUint(f, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("%q is not a node id (a number above 0)", f)
		}
		if slices.Contains(out, id) {
			return nil, fmt.Errorf("node %d is listed twice", id)
		}
		out = append(out, id)
	}
	return out, nil
}

// nodeList is node ids as "1,2,4" ("-" for none).
func nodeList(ids []uint64) string {
	if len(ids) == 0 {
		return "-"
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(parts, ",")
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
	fmt.Fprintf(tw, "  schema:\t%s\n", orNone(cfg.SchemaSubject))
	fmt.Fprintf(tw, "  schema-mode:\t%s\n", cfg.SchemaMode)
	fmt.Fprintf(tw, "  owner:\t%s\n", orNone(cfg.Owner))
	fmt.Fprintf(tw, "  description:\t%s\n", textDescription(cfg.Description))
	fmt.Fprintf(tw, "  labels:\t%s\n", textLabels(cfg.Labels))
	cluster := slices.ContainsFunc(info.Partitions, func(p client.PartitionInfo) bool {
		return p.Leader != 0 || p.LeaderAddr != "" || len(p.Replicas) > 0
	})
	if cluster {
		rf := "all the nodes at its creation"
		if cfg.Replicas > 0 {
			rf = strconv.Itoa(int(cfg.Replicas))
		}
		fmt.Fprintf(tw, "  replicas:\t%s\n", rf)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = newTable(w)
	if !cluster {
		fmt.Fprintln(tw, "PARTITION\tSTART\tEND\tMESSAGES\tBYTES")
	} else {
		fmt.Fprintln(tw, "PARTITION\tSTART\tEND\tMESSAGES\tBYTES\tLEADER\tREPLICAS\tIN-SYNC\tLEARNERS")
	}
	for _, p := range info.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d", p.Partition, p.StartOffset, p.EndOffset, p.EndOffset-p.StartOffset, p.Bytes)
		if cluster {
			reps := nodeList(p.Replicas)
			if len(p.Assigned) > 0 && !sameNodes(p.Assigned, p.Replicas) {
				reps += " (moving to " + nodeList(p.Assigned) + ")"
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s", leaderText(p), reps, nodeList(p.InSync), nodeList(p.Learners))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// sameNodes reports whether a and b list the same nodes.
func sameNodes(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
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
		Replicas        int32  `json:"replicas,omitempty"`
		SchemaSubject   string `json:"schema_subject"`
		SchemaMode      string `json:"schema_mode"`
		// The event catalog's fields, left out when empty.
		Owner       string            `json:"owner,omitempty"`
		Description string            `json:"description,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
	}
	topicInfoJSON struct {
		topicJSON
		Partitions    []partitionJSON `json:"partitions"`
		Messages      int64           `json:"messages"`
		Bytes         int64           `json:"bytes"`
		Subscriptions []string        `json:"subscriptions"`
	}
	partitionJSON struct {
		Partition   int32    `json:"partition"`
		StartOffset int64    `json:"start_offset"`
		EndOffset   int64    `json:"end_offset"`
		Messages    int64    `json:"messages"`
		Bytes       int64    `json:"bytes"`
		Leader      uint64   `json:"leader,omitempty"`
		LeaderAddr  string   `json:"leader_addr,omitempty"`
		Replicas    []uint64 `json:"replicas,omitempty"`
		InSync      []uint64 `json:"in_sync,omitempty"`
		Learners    []uint64 `json:"learners,omitempty"`
		Assigned    []uint64 `json:"assigned,omitempty"`
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
			Replicas:        c.Replicas,
			SchemaSubject:   c.SchemaSubject,
			SchemaMode:      c.SchemaMode.String(),
			Owner:           c.Owner,
			Description:     c.Description,
			Labels:          c.Labels,
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
			Messages: p.EndOffset - p.StartOffset, Bytes: p.Bytes, Leader: p.Leader, LeaderAddr: p.LeaderAddr,
			Replicas: p.Replicas, InSync: p.InSync, Learners: p.Learners, Assigned: p.Assigned}
	}
	return js
}

package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, inspect and redrive the dead letters of subscriptions",
		Long: "A queue subscription dead-letters a message after its max deliveries, when a consumer\n" +
			"rejects it, or when its TTL passes; a stream subscription (--on-failure dead-letter)\n" +
			"one whose handler failed max-deliveries times in a consumer. The message is copied,\n" +
			"with headers saying why (spool.dlq.*), to the subscription's dead-letter topic\n" +
			"(default dlq.TOPIC.SUB). These commands read that topic and publish its messages back.",
	}
	cmd.AddCommand(newDLQListCmd(), newDLQPeekCmd(), newDLQRedriveCmd())
	return cmd
}

func newDLQListCmd() *cobra.Command {
	var (
		from   int64
		limit  int
		output string
	)
	cmd := &cobra.Command{
		Use:   "list TOPIC SUB",
		Short: "List a subscription's dead letters",
		Long: "List the dead letters of subscription SUB of TOPIC, oldest first: the offset in\n" +
			"the dead-letter topic, where the message came from (PARTITION/OFFSET of TOPIC), why it\n" +
			"was dead-lettered (max-deliveries, rejected, expired), how many times it had been\n" +
			"delivered, the last error, whether it was redriven, and the start of its value.\n" +
			"When more follow, the next --from is printed on stderr.\n\n" +
			"--output json prints {\"dead_letters\":[…],\"next_offset\":N}, each dead letter shaped\n" +
			"as `spool dlq peek` prints it.",
		Example: "  spool dlq list orders fulfilment\n" +
			"  spool dlq list orders fulfilment --from 100 --limit 50 -o json",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case from < 0:
				return usageErrorf(cmd, "--from: must not be negative")
			case limit < 1 || limit > 1000:
				return usageErrorf(cmd, "--limit: must be 1-1000")
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				dead, next, err := c.ListDeadLetters(ctx, args[0], args[1], from, limit)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if output == "json" {
					js := deadLettersJSON{DeadLetters: make([]deadLetterJSON, len(dead)), NextOffset: next}
					for i := range dead {
						js.DeadLetters[i] = newDeadLetterJSON(&dead[i])
					}
					return writeJSON(out, js)
				}
				if err := printDeadLetters(out, dead); err != nil {
					return err
				}
				if len(dead) == limit || deadLetterBytes(dead) >= maxDeadLetterPage {
					fmt.Fprintf(cmd.ErrOrStderr(), "more may follow: spool dlq list %s %s --from %d\n", args[0], args[1], next)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Int64Var(&from, "from", 0, "start at this `OFFSET` of the dead-letter topic")
	f.IntVar(&limit, "limit", 100, "list at most `N` dead letters, 1-1000")
	addOutputFlag(cmd, &output)
	return cmd
}

// printDeadLetters prints dead letters as a table.
func printDeadLetters(w io.Writer, dead []client.DeadLetter) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "OFFSET\tORIGIN\tREASON\tDELIVERIES\tERROR\tREDRIVEN\tVALUE")
	for _, d := range dead {
		redriven := "no"
		if d.Redriven {
			redriven = "yes"
		}
		fmt.Fprintf(tw, "%d\t%d/%d\t%s\t%d\t%s\t%s\t%s\n", d.Offset, d.OriginPartition, d.OriginOffset, orDash(d.Reason),
			d.DeliveryCount, preview(d.Error), redriven, preview(string(d.Message.Value)))
	}
	return tw.Flush()
}

// previewRunes is how much of a value or error a table shows.
const previewRunes = 40

// preview shortens s for one table cell: its first previewRunes characters
// (then "…"), Go-quoted unless they are printable UTF-8 (tabs and newlines
// are not); "-" for an empty s.
func preview(s string) string {
	if s == "" {
		return "-"
	}
	cut := false
	if utf8.RuneCountInString(s) > previewRunes {
		n := 0
		for i := range s {
			if n == previewRunes {
				s, cut = s[:i], true
				break
			}
			n++
		}
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		s = strconv.Quote(s)
	}
	if cut {
		s += "…"
	}
	return s
}

func newDLQPeekCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "peek TOPIC SUB OFFSET",
		Short: "Print one dead letter in full, as JSON",
		Long: "Print the dead letter at OFFSET of subscription SUB's dead-letter topic as one\n" +
			"JSON object: the fields of `spool consume --output json` (partition and offset are\n" +
			"those in the dead-letter topic; headers include Spool's spool.dlq.*) plus\n" +
			"\"reason\", \"deliveries\", \"error\", \"origin_partition\", \"origin_offset\" (where the\n" +
			"message is stored in TOPIC) and \"redriven\". Exits 3 if there is no dead letter\n" +
			"at OFFSET.",
		Example: "  spool dlq peek orders fulfilment 0 | jq -r .value",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			off, err := strconv.ParseInt(args[2], 10, 64)
			if err != nil || off < 0 {
				return usageErrorf(cmd, "OFFSET %q is not a non-negative integer", args[2])
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				dead, _, err := c.ListDeadLetters(ctx, args[0], args[1], off, 1)
				if err != nil {
					return err
				}
				if len(dead) == 0 || dead[0].Offset != off {
					return &notFoundError{what: fmt.Sprintf("no dead letter at offset %d of subscription %q on topic %q", off, args[1], args[0])}
				}
				return writeJSON(cmd.OutOrStdout(), newDeadLetterJSON(&dead[0]))
			})
		},
	}
}

func newDLQRedriveCmd() *cobra.Command {
	var (
		to, reason, output string
		limit              int64
		rate               float64
		dryRun             bool
	)
	cmd := &cobra.Command{
		Use:   "redrive TOPIC SUB",
		Short: "Publish dead letters back to their topic",
		Long: "Publish the dead letters of subscription SUB back to TOPIC, oldest first: with\n" +
			"--to subscription (the default) only SUB receives them again (the topic's other\n" +
			"subscriptions skip the copies); with --to topic every subscription does. They keep\n" +
			"their key, value and headers (without spool.dlq.*) and start again with a delivery\n" +
			"count of 1. A dead letter is redriven once: running the command again skips it\n" +
			"(counted as already redriven). --dry-run reports what would move.\n\n" +
			"Prints the report (moved, skipped: another reason or origin, already redriven) to\n" +
			"stdout; --output json prints {\"moved\",\"skipped\",\"already\",\"offsets\",\"dry_run\"},\n" +
			"offsets being the dead-letter offsets moved (the first 1000).",
		Example: "  spool dlq redrive orders fulfilment --reason max-deliveries --dry-run\n" +
			"  spool dlq redrive orders fulfilment --limit 100 --rate 10",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case limit < 0:
				return usageErrorf(cmd, "--limit: must not be negative")
			case !(rate >= 0) || rate > 1e9:
				return usageErrorf(cmd, "--rate: must be a non-negative number")
			}
			req := client.RedriveRequest{Topic: args[0], Subscription: args[1], ToTopic: to == "topic",
				Reason: reason, Limit: limit, RateLimit: rate, DryRun: dryRun}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				rep, err := c.Redrive(ctx, req)
				if err != nil {
					return err
				}
				verb := "redrove"
				if dryRun {
					verb = "would redrive"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s %s of subscription %s on topic %s to the %s\n",
					verb, plural(int(rep.Moved), "dead letter"), args[1], args[0], to)
				if output == "json" {
					return writeJSON(cmd.OutOrStdout(), redriveJSON{Moved: rep.Moved, Skipped: rep.Skipped, Already: rep.Already,
						Offsets: append([]int64{}, rep.Offsets...), DryRun: dryRun})
				}
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "MOVED\tSKIPPED\tALREADY")
				fmt.Fprintf(tw, "%d\t%d\t%d\n", rep.Moved, rep.Skipped, rep.Already)
				return tw.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.Var(newEnum(&to, "subscription", "subscription", "topic"), "to", "subscription: only SUB receives the messages again; topic: every subscription of TOPIC does")
	f.Var(newEnum(&reason, "", client.ReasonMaxDeliveries, client.ReasonRejected, client.ReasonExpired), "reason", "only dead letters of this reason (default: any)")
	f.Int64Var(&limit, "limit", 0, "move at most `N` dead letters (default: all)")
	f.Float64Var(&rate, "rate", 0, "move at most `R` dead letters per second (default: unlimited)")
	f.BoolVar(&dryRun, "dry-run", false, "report what would move, move nothing")
	addOutputFlag(cmd, &output)
	return cmd
}

// JSON shapes of `spool dlq list/peek/redrive --output json`.
type (
	deadLettersJSON struct {
		DeadLetters []deadLetterJSON `json:"dead_letters"`
		// NextOffset is the --from of the next page.
		NextOffset int64 `json:"next_offset"`
	}
	deadLetterJSON struct {
		messageJSON
		Reason          string `json:"reason"`
		Deliveries      int32  `json:"deliveries"`
		Error           string `json:"error"`
		OriginPartition int32  `json:"origin_partition"`
		OriginOffset    int64  `json:"origin_offset"`
		Redriven        bool   `json:"redriven"`
	}
	redriveJSON struct {
		Moved   int64   `json:"moved"`
		Skipped int64   `json:"skipped"`
		Already int64   `json:"already"`
		Offsets []int64 `json:"offsets"`
		DryRun  bool    `json:"dry_run"`
	}
)

func newDeadLetterJSON(d *client.DeadLetter) deadLetterJSON {
	return deadLetterJSON{
		messageJSON:     newMessageJSON(&d.Message),
		Reason:          d.Reason,
		Deliveries:      d.DeliveryCount,
		Error:           d.Error,
		OriginPartition: d.OriginPartition,
		OriginOffset:    d.OriginOffset,
		Redriven:        d.Redriven,
	}
}

// maxDeadLetterPage is about the most message bytes the server answers one
// ListDeadLetters with: a page this full may have been cut short.
const maxDeadLetterPage = 4 << 20

// deadLetterBytes sums the keys, values and headers of dead letters.
func deadLetterBytes(dead []client.DeadLetter) int {
	n := 0
	for i := range dead {
		m := &dead[i].Message
		n += len(m.Key) + len(m.Value)
		for _, h := range m.Headers {
			n += len(h.Key) + len(h.Value)
		}
	}
	return n
}

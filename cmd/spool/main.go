// Command spool is the Spool event broker and its command-line tool.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(execute(newRootCmd()))
}

// execute runs root, reports an error on root's stderr as "spool: <message>"
// and returns the process exit code (see exitCode).
func execute(root *cobra.Command) int {
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	w := root.ErrOrStderr()
	fmt.Fprintln(w, "spool:", errorText(err))
	var ue *usageError
	if errors.As(err, &ue) && ue.cmdPath != "" {
		fmt.Fprintf(w, "Run '%s --help' for usage.\n", ue.cmdPath)
	}
	return exitCode(err)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "spool",
		Short: "Spool is a durable event broker",
		Long: "Spool is a durable event broker in one binary.\n\n" +
			"`spool serve` runs the broker. The client commands (topic, pub, sub, consume, dlq)\n" +
			"talk to a running broker at --server (default $SPOOL_SERVER, else " + defaultServer + ").\n" +
			"Data goes to stdout; progress, summaries and errors (\"spool: <message>\") to stderr.\n\n" +
			exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addServerFlag(root)
	root.AddCommand(newVersionCmd(), newServeCmd(), newBenchCmd(),
		newTopicCmd(), newPubCmd(), newSubCmd(), newConsumeCmd(), newDLQCmd(), newClusterCmd(), newSchemaCmd(), newCatalogCmd(), newTopCmd(), newCertCmd(), newUserCmd(), newACLCmd(), newQuotaCmd(), newBackupCmd())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return asUsage(c, err) })
	markUsageErrors(root)
	return root
}

// markUsageErrors makes every argument error of cmd and its subcommands a
// usage error (exit code 2), and makes command groups reject unknown
// subcommands instead of printing their help and succeeding.
func markUsageErrors(cmd *cobra.Command) {
	if !cmd.Runnable() {
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = runGroup
	} else if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error { return asUsage(c, args(c, a)) }
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}

// runGroup runs a command that only groups subcommands: without arguments it
// prints its help; anything else is an unknown subcommand.
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	hint := ""
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf(" (did you mean %q?)", closest(args[0], s))
	}
	return usageErrorf(cmd, "unknown command %q for %q%s", args[0], cmd.CommandPath(), hint)
}

// closest returns the word of words (not empty) nearest to typed, the
// first of those equally near. Nearness is the edit distance with a swap
// of two adjacent letters counting as one edit, so "topci" is nearer to
// "topic" than to "top" (cobra's suggestions, in name order, would put
// "top" first).
func closest(typed string, words []string) string {
	best, bestD := words[0], -1
	for _, w := range words {
		if d := editDistance(typed, w); bestD < 0 || d < bestD {
			best, bestD = w, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b
// (insertions, deletions, substitutions and swaps of adjacent bytes).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

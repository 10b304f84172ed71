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
		newTopicCmd(), newPubCmd(), newSubCmd(), newConsumeCmd(), newDLQCmd(), newClusterCmd(), newSchemaCmd(), newCatalogCmd(), newTopCmd())
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
		hint = fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usageErrorf(cmd, "unknown command %q for %q%s", args[0], cmd.CommandPath(), hint)
}

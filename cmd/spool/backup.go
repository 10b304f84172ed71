package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
)

func newBackupCmd() *cobra.Command {
	var (
		to      string
		timeout time.Duration
		output  string
	)
	cmd := &cobra.Command{
		Use:   "backup --to DIR",
		Short: "Write a consistent copy of a running server's data directory into DIR on the server's machine",
		Long: "Asks the server at --server (POST /spool/admin/backup) to copy its data directory into DIR,\n" +
			"an absolute path on the server's machine that must be absent or empty, while it keeps serving:\n" +
			"a checkpoint of the state store, then every partition log. The copy holds every message\n" +
			"acknowledged before the command started, the catalog, committed offsets and subscriptions.\n" +
			"To restore, start a server on it: spool serve --data DIR (docs/operations.md, \"Backup and\n" +
			"restore\"). A single node only: a cluster node refuses. Needs admin on the cluster when\n" +
			"authorization is on.",
		Example: "  spool backup --to /var/backups/spool/2026-12-07\n" +
			"  spool --server http://10.0.0.5:7070 backup --to /mnt/backup/spool-$(date +%F) -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return usageErrorf(cmd, "--to DIR is required")
			}
			if !filepath.IsAbs(to) {
				return usageErrorf(cmd, "--to %q: give an absolute path (it is a directory on the server's machine)", to)
			}
			var out struct {
				Dir         string `json:"dir"`
				Topics      int    `json:"topics"`
				Partitions  int    `json:"partitions"`
				Segments    int    `json:"segments"`
				Linked      int    `json:"linked_segments"`
				CopiedBytes int64  `json:"copied_bytes"`
				TookMS      int64  `json:"took_ms"`
			}
			if err := adminRequest(cmd, http.MethodPost, "/spool/admin/backup", map[string]string{"dir": to}, &out, timeout); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "backup written to %s: %d topics, %d partitions, %d segments (%d linked), %d bytes copied in %s\n",
				out.Dir, out.Topics, out.Partitions, out.Segments, out.Linked, out.CopiedBytes, time.Duration(out.TookMS)*time.Millisecond)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "`DIR`: absolute path on the server's machine, absent or empty, to write the copy into")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "how long to wait for the server to finish the copy")
	addOutputFlag(cmd, &output)
	return cmd
}

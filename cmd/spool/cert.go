package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/tlsutil"
)

func newCertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Make TLS certificates",
	}
	cmd.AddCommand(newCertDevCmd())
	return cmd
}

func newCertDevCmd() *cobra.Command {
	var (
		dir     string
		hosts   []string
		clients []string
		force   bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Make a local CA, a server certificate and client certificates for trying TLS",
		Long: "Make a local certificate authority (ca.pem, ca-key.pem), a server certificate\n" +
			"for --hosts (server.pem, server-key.pem) and a client certificate for each --client\n" +
			"NAME (client-NAME.pem, client-NAME-key.pem; NAME is its principal), all ECDSA P-256,\n" +
			"the CA valid 10 years and the others one year, keys readable by their owner only.\n" +
			"For development and tests: production certificates come from your own CA.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files, err := tlsutil.GenerateDev(tlsutil.DevOptions{Dir: dir, Hosts: hosts, Clients: clients, Force: force})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "CA:     %s (key %s)\n", files.CA, files.CAKey)
			fmt.Fprintf(out, "server: %s (key %s)\n", files.Server, files.ServerKey)
			names := make([]string, 0, len(files.Clients))
			for n := range files.Clients {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(out, "client %s: %s (key %s)\n", n, files.Clients[n][0], files.Clients[n][1])
			}
			fmt.Fprintf(out, "\nspool serve --tls-cert %s --tls-key %s --tls-client-ca %s\n", files.Server, files.ServerKey, files.CA)
			fmt.Fprintf(out, "spool --server https://127.0.0.1:7070 --tls-ca %s topic list\n", files.CA)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "spool-certs", "directory the files are written to (created if missing)")
	f.StringSliceVar(&hosts, "hosts", []string{"localhost", "127.0.0.1", "::1"}, "names and IP addresses of the server certificate, comma-separated")
	f.StringArrayVar(&clients, "client", nil, "make a client certificate for NAME (repeatable)")
	f.BoolVar(&force, "force", false, "overwrite existing files")
	return cmd
}

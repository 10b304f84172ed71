package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/bytesize"
	"github.com/spoolmq/spool/internal/quota"
)

func newQuotaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quota",
		Short: "Manage client quotas: producer and consumer byte rates and request rates per user",
		Long: "Quotas limit what a principal may produce (producer_byte_rate, bytes/s), consume\n" +
			"(consumer_byte_rate, bytes/s) and ask (request_rate, requests/s) on each node, on Kafka\n" +
			"(throttle_time_ms, the connection muted) and on the native API (resource_exhausted with a\n" +
			"retry-after). A quota is set for a user, or as the default of every user without one of\n" +
			"that key; anonymous clients are the user ANONYMOUS. The commands call the server's\n" +
			"/spool/auth/quotas endpoints at --server (docs/api.md, docs/operations.md).",
	}
	cmd.AddCommand(newQuotaSetCmd(), newQuotaListCmd(), newQuotaDeleteCmd())
	return cmd
}

// quotaEntity reads --user and --default: the path of the entity's
// endpoint and its name.
func quotaEntity(cmd *cobra.Command, user string, def bool) (path, name string, err error) {
	switch {
	case def && user != "":
		return "", "", usageErrorf(cmd, "--user and --default: give one")
	case def:
		return "/spool/auth/quotas/default", "the default user", nil
	case user != "":
		return "/spool/auth/quotas/users/" + url.PathEscape(user), "user " + user, nil
	}
	return "", "", usageErrorf(cmd, "name the quota's entity: --user NAME or --default")
}

func addEntityFlags(cmd *cobra.Command, user *string, def *bool) {
	cmd.Flags().StringVar(user, "user", "", "the user (principal) whose quota this is")
	cmd.Flags().BoolVar(def, "default", false, "the default quota of every user without its own (Kafka's <default> user)")
}

func newQuotaSetCmd() *cobra.Command {
	var (
		user           string
		def            bool
		produce, fetch bytesize.Size
		requests       float64
		remove         []string
	)
	cmd := &cobra.Command{
		Use:   "set (--user NAME | --default)",
		Short: "Set (or remove) quota keys of a user or of the default user",
		Long: "Sets the keys given and leaves the entity's others as they are; --remove removes keys.\n" +
			"Byte rates are sizes per second (1MiB, 512KiB, 1000000).",
		Example: "  spool quota set --default --producer-byte-rate 10MiB --consumer-byte-rate 20MiB\n" +
			"  spool quota set --user batch-loader --request-rate 50 --remove consumer_byte_rate",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, name, err := quotaEntity(cmd, user, def)
			if err != nil {
				return err
			}
			set := map[string]float64{}
			if cmd.Flags().Changed("producer-byte-rate") {
				set[quota.KeyProducerByteRate] = float64(produce)
			}
			if cmd.Flags().Changed("consumer-byte-rate") {
				set[quota.KeyConsumerByteRate] = float64(fetch)
			}
			if cmd.Flags().Changed("request-rate") {
				set[quota.KeyRequestRate] = requests
			}
			if len(set) == 0 && len(remove) == 0 {
				return usageErrorf(cmd, "nothing to set: give --producer-byte-rate, --consumer-byte-rate, --request-rate or --remove")
			}
			var out quota.Quota
			if err := userRequest(cmd, http.MethodPost, path, map[string]any{"set": set, "remove": remove}, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "quota of %s: %s\n", name, quotaValues(out))
			return nil
		},
	}
	addEntityFlags(cmd, &user, &def)
	cmd.Flags().Var(&produce, "producer-byte-rate", "bytes per second the entity may publish (producer_byte_rate)")
	cmd.Flags().Var(&fetch, "consumer-byte-rate", "bytes per second the entity may be delivered (consumer_byte_rate)")
	cmd.Flags().Float64Var(&requests, "request-rate", 0, "requests per second the entity may make (request_rate)")
	cmd.Flags().StringSliceVar(&remove, "remove", nil, "quota keys to remove: producer_byte_rate, consumer_byte_rate, request_rate")
	return cmd
}

// quotaValues formats a quota's keys: key=value, ...; "none" without any.
func quotaValues(q quota.Quota) string {
	var parts []string
	for _, k := range quota.Kinds() {
		if v, ok := q.Values()[k.Key()]; ok {
			parts = append(parts, k.Key()+"="+strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func newQuotaListCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the quotas: the default user's first, then users by name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Quotas []quota.Quota `json:"quotas"`
			}
			if err := userRequest(cmd, http.MethodGet, "/spool/auth/quotas", nil, &out); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), out.Quotas)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "USER\tPRODUCER BYTES/S\tCONSUMER BYTES/S\tREQUESTS/S")
			for _, q := range out.Quotas {
				who := q.User
				if q.Default {
					who = "<default>"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", who, byteRate(q.ProducerByteRate), byteRate(q.ConsumerByteRate), rate(q.RequestRate))
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func byteRate(v float64) string {
	if v <= 0 {
		return "-"
	}
	if v == float64(int64(v)) {
		return bytesize.Size(int64(v)).String()
	}
	return rate(v)
}

func rate(v float64) string {
	if v <= 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func newQuotaDeleteCmd() *cobra.Command {
	var (
		user string
		def  bool
	)
	cmd := &cobra.Command{
		Use:   "delete (--user NAME | --default)",
		Short: "Delete every quota key of a user or of the default user",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, name, err := quotaEntity(cmd, user, def)
			if err != nil {
				return err
			}
			if err := userRequest(cmd, http.MethodDelete, path, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "deleted the quota of %s\n", name)
			return nil
		},
	}
	addEntityFlags(cmd, &user, &def)
	return cmd
}

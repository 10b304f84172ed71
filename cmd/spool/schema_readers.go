package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// readsFlag reads `spool sub create --reads`: SUBJECT:VERSION, or SUBJECT
// with --reads-file (version "" then: looked up from the file).
func readsFlag(cmd *cobra.Command, reads, file string) (subject, version string, err error) {
	if reads == "" {
		if file != "" {
			return "", "", usageErrorf(cmd, "--reads-file needs --reads SUBJECT")
		}
		return "", "", nil
	}
	if file != "" {
		if strings.Contains(reads, ":") {
			return "", "", usageErrorf(cmd, "--reads: give SUBJECT alone with --reads-file (the file says the version)")
		}
		return reads, "", nil
	}
	subject, version, ok := cutLast(reads, ":")
	if !ok || subject == "" {
		return "", "", usageErrorf(cmd, "--reads: %q is not SUBJECT:VERSION (or SUBJECT with --reads-file)", reads)
	}
	if version != "latest" {
		if n, err := strconv.Atoi(version); err != nil || n < 1 {
			return "", "", usageErrorf(cmd, "--reads: %q: the version must be a number from 1 or latest", reads)
		}
	}
	return subject, version, nil
}

// declareReader declares a subscription's reader schema in the registry:
// a subject's version, or the version of the subject that holds the
// schema of sf's file.
func declareReader(ctx context.Context, cmd *cobra.Command, topic, sub, subject, version string, sf *schemaInputFlags) error {
	rc, err := newRegistryClient(cmd)
	if err != nil {
		return err
	}
	var v any = version
	if version == "" {
		in, err := sf.input(ctx, cmd, rc)
		if err != nil {
			return err
		}
		var found subjectVersion
		if err := rc.do(ctx, "POST", subjectPath(subject), nil, in, &found); err != nil {
			return fmt.Errorf("looking the reader schema up in %s: %w", subject, err)
		}
		v = found.Version
	} else if n, err := strconv.Atoi(version); err == nil {
		v = n
	}
	var out struct {
		Version int `json:"version"`
	}
	path := "/spool/readers/" + url.PathEscape(topic) + "/" + url.PathEscape(sub)
	if err := rc.do(ctx, "PUT", path, nil, map[string]any{"subject": subject, "version": v}, &out); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "subscription %s reads %s version %d\n", sub, subject, out.Version)
	return nil
}

// usageAnswer is GET /spool/usage/{subject}.
type usageAnswer struct {
	Subject  string `json:"subject"`
	Versions []struct {
		Version  int        `json:"version"`
		ID       int        `json:"id"`
		Deleted  bool       `json:"deleted"`
		Produced int64      `json:"produced"`
		Last     *time.Time `json:"last_produced"`
		Readers  []struct {
			Topic        string `json:"topic"`
			Subscription string `json:"subscription"`
			Live         bool   `json:"live"`
		} `json:"readers"`
	} `json:"versions"`
}

func newSchemaUsageCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "usage SUBJECT",
		Short: "Show which versions of a subject are produced and which subscriptions read them",
		Long: "Show each version of a subject: its id, how many messages published to topics bound\n" +
			"to the subject were validated with it on the node asked (since that node started) and\n" +
			"when the last was, and the subscriptions that declare it as their reader schema\n" +
			"(spool sub create --reads). Use it to roll a new version out and retire an old one\n" +
			"with evidence: no producer left on it, no reader declaring it.",
		Example: "  spool schema usage orders-value",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRegistry(cmd, func(ctx context.Context, rc *registryClient) error {
				var u usageAnswer
				if err := rc.do(ctx, "GET", "/spool/usage/"+url.PathEscape(args[0]), nil, nil, &u); err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(cmd.OutOrStdout(), u)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tID\tPRODUCED\tLAST PRODUCED\tREAD BY")
				for _, v := range u.Versions {
					last := "-"
					if v.Last != nil {
						last = v.Last.Local().Format(time.DateTime)
					}
					var readers []string
					for _, r := range v.Readers {
						s := r.Topic + "/" + r.Subscription
						if !r.Live {
							s += " (deleted)"
						}
						readers = append(readers, s)
					}
					ver := strconv.Itoa(v.Version)
					if v.Deleted {
						ver += " (deleted)"
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", ver, v.ID, v.Produced, last, orDash(strings.Join(readers, ", ")))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().VarP(newEnum(&output, "text", "text", "json"), "output", "o", "output format: text or json")
	return cmd
}

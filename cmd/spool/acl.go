package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/auth/acl"
)

func newACLCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Manage access control rules (who may publish, consume, describe or administer what)",
		Long: "With auth.authorization on, every request is denied unless a rule allows it and none denies\n" +
			"it (super users, auth.super-users, may do everything). A rule names a principal (a user,\n" +
			"or * for everyone), a resource — a topic, a group (a subscription; Kafka's consumer and\n" +
			"share groups), a schema subject or the cluster — by name or name prefix, an operation\n" +
			"(publish, consume, describe, admin or all; the first three and admin imply describe) and\n" +
			"allow or deny. Rules are kept in the catalog (replicated on a cluster); Kafka's\n" +
			"CreateAcls, DescribeAcls and DeleteAcls manage the same rules (docs/security.md).\n" +
			"The commands call the server's /spool/auth/acls endpoint at --server (docs/api.md).",
	}
	cmd.AddCommand(newACLAddCmd(), newACLListCmd(), newACLDeleteCmd())
	return cmd
}

// aclFlags are the flags naming rules or filters.
type aclFlags struct {
	principal, host                                   string
	topic, group, subject, operation, permissionValue string
	cluster, prefixed, deny                           bool
}

func (f *aclFlags) add(cmd *cobra.Command, filter bool) {
	fl := cmd.Flags()
	what := "the rule's"
	if filter {
		what = "only rules of this"
	}
	fl.StringVar(&f.principal, "principal", "", what+" principal: a user name (or User:NAME), * for everyone")
	fl.StringVar(&f.host, "host", "", what+" client IP address (default * for any)")
	fl.StringVar(&f.topic, "topic", "", what+" topic (name, or prefix with --prefixed; * for every topic)")
	fl.StringVar(&f.group, "group", "", what+" group: a subscription, a Kafka consumer or share group")
	fl.StringVar(&f.subject, "subject", "", what+" schema subject")
	fl.BoolVar(&f.cluster, "cluster", false, what+" resource: the cluster (topic creation, cluster status, users and rules)")
	fl.BoolVar(&f.prefixed, "prefixed", false, "the name is a prefix: every resource whose name starts with it")
	fl.StringVar(&f.operation, "operation", "", what+" operation: publish, consume, describe, admin or all")
	if filter {
		fl.StringVar(&f.permissionValue, "permission", "", "only rules that allow or deny")
	} else {
		fl.BoolVar(&f.deny, "deny", false, "deny instead of allow (a deny that applies beats every allow)")
	}
}

// resource returns the resource the flags name ("" for none), and its
// name.
func (f *aclFlags) resource(cmd *cobra.Command) (acl.Resource, string, error) {
	var res acl.Resource
	var name string
	n := 0
	for _, c := range []struct {
		set  bool
		r    acl.Resource
		name string
	}{{f.topic != "", acl.Topic, f.topic}, {f.group != "", acl.Group, f.group}, {f.subject != "", acl.Subject, f.subject}, {f.cluster, acl.Cluster, acl.ClusterName}} {
		if c.set {
			n++
			res, name = c.r, c.name
		}
	}
	if n > 1 {
		return "", "", usageErrorf(cmd, "name one resource: --topic, --group, --subject or --cluster")
	}
	return res, name, nil
}

func (f *aclFlags) principalValue() string {
	switch f.principal {
	case "", acl.AnyPrincipal:
		return f.principal
	case "*":
		return acl.AnyPrincipal
	}
	return f.principal
}

func newACLAddCmd() *cobra.Command {
	var f aclFlags
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add a rule",
		Example: "  spool acl add --principal alice --topic orders --operation publish\n" +
			"  spool acl add --principal billing --topic orders. --prefixed --operation consume\n" +
			"  spool acl add --principal billing --group billing --operation consume\n" +
			"  spool acl add --principal '*' --topic orders.secret --operation all --deny",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, name, err := f.resource(cmd)
			if err != nil {
				return err
			}
			if res == "" || f.principal == "" || f.operation == "" {
				return usageErrorf(cmd, "a rule needs --principal, a resource (--topic, --group, --subject or --cluster) and --operation")
			}
			r := acl.Rule{Principal: f.principalValue(), Host: f.host, Resource: res, Name: name, Pattern: acl.Literal,
				Operation: acl.Operation(f.operation), Permission: acl.Allow}
			if f.prefixed {
				r.Pattern = acl.Prefixed
			}
			if f.deny {
				r.Permission = acl.Deny
			}
			if _, err := r.Normalize(); err != nil {
				return usageErrorf(cmd, "%v", err)
			}
			var out struct {
				Rules []acl.Rule `json:"rules"`
			}
			if err := userRequest(cmd, http.MethodPost, "/spool/auth/acls", map[string]any{"rules": []acl.Rule{r}}, &out); err != nil {
				return err
			}
			for _, r := range out.Rules {
				fmt.Fprintf(cmd.ErrOrStderr(), "added: %s\n", describeRule(r))
			}
			return nil
		},
	}
	f.add(cmd, false)
	return cmd
}

// describeRule is a rule in a sentence.
func describeRule(r acl.Rule) string {
	name := fmt.Sprintf("%s %q", r.Resource, r.Name)
	switch {
	case r.Resource == acl.Cluster:
		name = "the cluster"
	case r.Pattern == acl.Prefixed:
		name = fmt.Sprintf("%ss starting with %q", r.Resource, r.Name)
	case r.Name == acl.AnyName:
		name = fmt.Sprintf("every %s", r.Resource)
	}
	from := ""
	if r.Host != acl.AnyHost {
		from = " from " + r.Host
	}
	return fmt.Sprintf("%s %s %s: %s%s", r.Permission, r.Principal, r.Operation, name, from)
}

func (f *aclFlags) query(cmd *cobra.Command) (url.Values, error) {
	res, name, err := f.resource(cmd)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("principal", f.principalValue())
	set("host", f.host)
	set("resource", string(res))
	set("name", name)
	if f.prefixed {
		set("pattern", string(acl.Prefixed))
	}
	set("operation", f.operation)
	set("permission", f.permissionValue)
	return q, nil
}

func newACLListCmd() *cobra.Command {
	var f aclFlags
	var output string
	var matching string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List rules (all, or those the flags select)",
		Example: "  spool acl list\n  spool acl list --principal alice\n" +
			"  spool acl list --matching orders.eu --topic x   # every rule that applies to topic orders.eu",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.query(cmd)
			if err != nil {
				return err
			}
			if matching != "" {
				if q.Get("resource") == "" {
					return usageErrorf(cmd, "--matching needs the resource kind (--topic, --group or --subject, with any name)")
				}
				q.Set("pattern", "match")
				q.Set("name", matching)
			}
			var out struct {
				Rules []acl.Rule `json:"rules"`
			}
			path := "/spool/auth/acls"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			if err := userRequest(cmd, http.MethodGet, path, nil, &out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(out.Rules)
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "PRINCIPAL\tHOST\tRESOURCE\tPATTERN\tNAME\tOPERATION\tPERMISSION")
			for _, r := range out.Rules {
				op := string(r.Operation)
				if r.KafkaOperation != "" {
					op += " (Kafka " + r.KafkaOperation + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Principal, r.Host, r.Resource, r.Pattern, r.Name, op, r.Permission)
			}
			return tw.Flush()
		},
	}
	f.add(cmd, true)
	cmd.Flags().StringVar(&matching, "matching", "", "list the rules that apply to this resource name (literal, prefixes, *)")
	addOutputFlag(cmd, &output)
	return cmd
}

func newACLDeleteCmd() *cobra.Command {
	var f aclFlags
	var all bool
	cmd := &cobra.Command{
		Use:     "delete",
		Short:   "Delete the rules the flags select",
		Example: "  spool acl delete --principal alice --topic orders\n  spool acl delete --all",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.query(cmd)
			if err != nil {
				return err
			}
			switch {
			case len(q) == 0 && !all:
				return usageErrorf(cmd, "select the rules to delete with flags, or give --all")
			case len(q) > 0 && all:
				return usageErrorf(cmd, "--all deletes every rule: give it alone")
			case all:
				q.Set("all", "true")
			}
			var out struct {
				Deleted []acl.Rule `json:"deleted"`
			}
			if err := userRequest(cmd, http.MethodDelete, "/spool/auth/acls?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			for _, r := range out.Deleted {
				fmt.Fprintf(cmd.ErrOrStderr(), "deleted: %s\n", describeRule(r))
			}
			if len(out.Deleted) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no rule matched")
			}
			return nil
		},
	}
	f.add(cmd, true)
	cmd.Flags().BoolVar(&all, "all", false, "delete every rule")
	return cmd
}

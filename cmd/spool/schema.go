package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/schema"
)

func newSchemaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Register, read, check and compare schemas in the schema registry",
		Long: "Work with the schema registry that `spool serve` runs (a Confluent-compatible REST API,\n" +
			"default " + defaultRegistry + "): register schemas (Avro, JSON Schema, Protobuf) under\n" +
			"subjects, read them back, list subjects, check a new schema's compatibility before\n" +
			"registering it (in CI), compare two versions, delete, and set compatibility levels.\n" +
			"The registry is reached at --registry (default $SPOOL_SCHEMA_REGISTRY, else " + defaultRegistry + ").",
	}
	addRegistryFlag(cmd)
	cmd.AddCommand(newSchemaRegisterCmd(), newSchemaGetCmd(), newSchemaListCmd(), newSchemaCheckCmd(),
		newSchemaDiffCmd(), newSchemaDeleteCmd(), newSchemaConfigCmd(), newSchemaUsageCmd())
	return cmd
}

// withRegistry runs f with a registry client for cmd's --registry.
func withRegistry(cmd *cobra.Command, f func(ctx context.Context, rc *registryClient) error) error {
	rc, err := newRegistryClient(cmd)
	if err != nil {
		return err
	}
	return f(cmd.Context(), rc)
}

// schemaInputFlags are the flags that give a schema: its file, type and
// references.
type schemaInputFlags struct {
	file string
	typ  string
	refs []string
}

func (sf *schemaInputFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&sf.file, "file", "f", "", "the schema's `FILE` (- for stdin); required")
	f.StringVar(&sf.typ, "type", "", "schema type: avro, json or protobuf (default: from the file's extension, .avsc avro, .json json, .proto protobuf; else avro)")
	f.StringArrayVar(&sf.refs, "ref", nil, "a reference to another subject's version, `NAME=SUBJECT:VERSION` (VERSION a number or latest); repeat for several")
}

// check reports a missing --file as a usage error.
func (sf *schemaInputFlags) check(cmd *cobra.Command) error {
	if sf.file == "" {
		return usageErrorf(cmd, "--file is required: the schema's file, or - for stdin")
	}
	return nil
}

// schemaTypes are the schema types by the names --type takes.
var schemaTypes = map[string]string{"avro": "AVRO", "json": "JSON", "protobuf": "PROTOBUF"}

// schemaTypeOf is the type a schema file's name implies: .avsc AVRO,
// .json JSON, .proto PROTOBUF, else AVRO.
func schemaTypeOf(file string) string {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".json":
		return "JSON"
	case ".proto":
		return "PROTOBUF"
	}
	return "AVRO"
}

// input reads the schema the flags give, resolving references to latest
// versions through rc.
func (sf *schemaInputFlags) input(ctx context.Context, cmd *cobra.Command, rc *registryClient) (schemaRequest, error) {
	typ := schemaTypeOf(sf.file)
	if sf.typ != "" {
		t, ok := schemaTypes[strings.ToLower(sf.typ)]
		if !ok {
			return schemaRequest{}, usageErrorf(cmd, "--type: must be avro, json or protobuf")
		}
		typ = t
	}
	refs := make([]schemaRef, 0, len(sf.refs))
	latest := map[int]string{} // index in refs → subject to resolve
	for i, s := range sf.refs {
		name, sv, ok := strings.Cut(s, "=")
		subj, ver, ok2 := cutLast(sv, ":")
		if !ok || !ok2 || name == "" || subj == "" {
			return schemaRequest{}, usageErrorf(cmd, "--ref: %q is not NAME=SUBJECT:VERSION", s)
		}
		r := schemaRef{Name: name, Subject: subj}
		if ver == "latest" {
			latest[i] = subj
		} else if n, err := strconv.Atoi(ver); err == nil && n > 0 {
			r.Version = n
		} else {
			return schemaRequest{}, usageErrorf(cmd, "--ref: %q: the version must be a number from 1 or latest", s)
		}
		refs = append(refs, r)
	}
	var text []byte
	var err error
	if sf.file == "-" {
		text, err = io.ReadAll(cmd.InOrStdin())
	} else {
		text, err = os.ReadFile(sf.file)
	}
	if err != nil {
		return schemaRequest{}, fmt.Errorf("reading the schema: %w", err)
	}
	if len(strings.TrimSpace(string(text))) == 0 {
		return schemaRequest{}, fmt.Errorf("reading the schema: %s is empty", orStdin(sf.file))
	}
	for i, subj := range latest {
		v, err := rc.version(ctx, subj, "latest", false)
		if err != nil {
			return schemaRequest{}, fmt.Errorf("--ref %s: %w", sf.refs[i], err)
		}
		refs[i].Version = v.Version
	}
	return schemaRequest{Schema: string(text), SchemaType: typ, References: refs}, nil
}

// orStdin names a --file value in messages.
func orStdin(file string) string {
	if file == "-" {
		return "stdin"
	}
	return file
}

// cutLast slices s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// parseVersion checks a version argument: a number from 1, or latest.
func parseVersion(cmd *cobra.Command, what, s string) (string, error) {
	if s == "latest" {
		return s, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return strconv.Itoa(n), nil
	}
	return "", usageErrorf(cmd, "%s: %q is not a version (a number from 1, or latest)", what, s)
}

// refsText formats references as "NAME=SUBJECT:VERSION, …".
func refsText(refs []schemaRef) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = fmt.Sprintf("%s=%s:%d", r.Name, r.Subject, r.Version)
	}
	return strings.Join(s, ", ")
}

// versionsText formats version numbers as ranges: "1-3,5"; "-" for none.
func versionsText(vs []int) string {
	if len(vs) == 0 {
		return "-"
	}
	var parts []string
	for i := 0; i < len(vs); {
		j := i
		for j+1 < len(vs) && vs[j+1] == vs[j]+1 {
			j++
		}
		switch {
		case j == i:
			parts = append(parts, strconv.Itoa(vs[i]))
		case j == i+1:
			parts = append(parts, strconv.Itoa(vs[i]), strconv.Itoa(vs[j]))
		default:
			parts = append(parts, fmt.Sprintf("%d-%d", vs[i], vs[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func newSchemaRegisterCmd() *cobra.Command {
	var (
		sf     schemaInputFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "register SUBJECT --file FILE",
		Short: "Register a schema under a subject",
		Long: "Register the schema in FILE under SUBJECT and print its version and id. A schema the\n" +
			"subject already has keeps its version and id. The registry checks the schema against the\n" +
			"subject's compatibility level first, and refuses an incompatible one (exit 6).",
		Example: "  spool schema register orders-value --file order.avsc\n" +
			"  spool schema register orders-value --file order.proto --ref common.proto=common:latest\n" +
			"  cat order.json | spool schema register orders-value --file - --type json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := args[0]
			if err := sf.check(cmd); err != nil {
				return err
			}
			return withRegistry(cmd, func(ctx context.Context, rc *registryClient) error {
				in, err := sf.input(ctx, cmd, rc)
				if err != nil {
					return err
				}
				var before subjectVersion
				err = rc.do(ctx, http.MethodPost, subjectPath(subject), nil, in, &before)
				existed := err == nil
				if err != nil && !isCode(err, regSubjectNotFound) && !isCode(err, 40403) {
					return err
				}
				var reg struct {
					ID int `json:"id"`
				}
				if err := rc.do(ctx, http.MethodPost, subjectPath(subject)+"/versions", nil, in, &reg); err != nil {
					return err
				}
				var got subjectVersion
				if err := rc.do(ctx, http.MethodPost, subjectPath(subject), nil, in, &got); err != nil {
					return err
				}
				isNew := !existed || before.Version != got.Version
				if output == "json" {
					return writeJSON(cmd.OutOrStdout(), map[string]any{
						"subject": subject, "version": got.Version, "id": reg.ID, "new": isNew})
				}
				if isNew {
					fmt.Fprintf(cmd.OutOrStdout(), "registered %s version %d, id %d\n", subject, got.Version, reg.ID)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s already has this schema: version %d, id %d\n", subject, got.Version, reg.ID)
				}
				return nil
			})
		},
	}
	sf.register(cmd)
	addOutputFlag(cmd, &output)
	return cmd
}

func newSchemaGetCmd() *cobra.Command {
	var (
		version string
		id      int
		raw     bool
		output  string
	)
	cmd := &cobra.Command{
		Use:   "get SUBJECT [--version N|latest] | get --id ID",
		Short: "Print a subject's version of a schema, or a schema by id",
		Long: "Print a subject's version (default the latest), or with --id the schema of that id: a\n" +
			"header (subject, version, id, type, references) and the schema's text as registered (a\n" +
			"JSON schema sent on one line is indented). --raw prints only the text as registered.",
		Example: "  spool schema get orders-value\n" +
			"  spool schema get orders-value --version 2 --raw > order-v2.avsc\n" +
			"  spool schema get --id 7",
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			byID := cmd.Flags().Changed("id")
			switch {
			case byID && len(args) > 0:
				return usageErrorf(cmd, "give SUBJECT or --id, not both")
			case byID && cmd.Flags().Changed("version"):
				return usageErrorf(cmd, "--version goes with SUBJECT, not --id")
			case byID && id < 1:
				return usageErrorf(cmd, "--id: must be a number from 1")
			case !byID && len(args) == 0:
				return usageErrorf(cmd, "give SUBJECT or --id")
			case raw && output == "json":
				return usageErrorf(cmd, "--raw and --output json do not go together")
			}
			v, err := parseVersion(cmd, "--version", version)
			if err != nil {
				return err
			}
			return withRegistry(cmd, func(ctx context.Context, rc *registryClient) error {
				var sv *subjectVersion
				var usedBy []subjectVersion
				if byID {
					sv = &subjectVersion{}
					if err := rc.do(ctx, http.MethodGet, "/schemas/ids/"+strconv.Itoa(id), nil, nil, sv); err != nil {
						return err
					}
					sv.ID = id
					sv.Subject, sv.Version = "", 0
					if !raw {
						if err := rc.do(ctx, http.MethodGet, "/schemas/ids/"+strconv.Itoa(id)+"/versions", nil, nil, &usedBy); err != nil {
							return err
						}
					}
				} else if sv, err = rc.version(ctx, args[0], v, false); err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if raw {
					fmt.Fprint(out, sv.Schema)
					if !strings.HasSuffix(sv.Schema, "\n") {
						fmt.Fprintln(out)
					}
					return nil
				}
				if output == "json" {
					js := *sv
					js.SchemaType = sv.schemaType()
					if byID {
						return writeJSON(out, struct {
							subjectVersion
							UsedBy []subjectVersion `json:"used_by"`
						}{js, usedBy})
					}
					return writeJSON(out, js)
				}
				tw := newTable(out)
				if !byID {
					fmt.Fprintf(tw, "Subject:\t%s\n", sv.Subject)
					fmt.Fprintf(tw, "Version:\t%d\n", sv.Version)
				}
				fmt.Fprintf(tw, "ID:\t%d\n", sv.ID)
				fmt.Fprintf(tw, "Type:\t%s\n", sv.schemaType())
				if len(sv.References) > 0 {
					fmt.Fprintf(tw, "References:\t%s\n", refsText(sv.References))
				}
				if byID {
					uses := make([]string, len(usedBy))
					for i, u := range usedBy {
						uses[i] = fmt.Sprintf("%s version %d", u.Subject, u.Version)
					}
					fmt.Fprintf(tw, "Used by:\t%s\n", orDash(strings.Join(uses, ", ")))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				text := sv.Schema
				if !strings.Contains(strings.TrimSpace(text), "\n") {
					if p, ok := schema.PrettyJSON(text); ok {
						text = p
					}
				}
				fmt.Fprintf(out, "\n%s", text)
				if !strings.HasSuffix(text, "\n") {
					fmt.Fprintln(out)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&version, "version", "latest", "the subject's version: a number, or latest")
	f.IntVar(&id, "id", 0, "print the schema with this id instead of a subject's version")
	f.BoolVar(&raw, "raw", false, "print only the schema's text, as registered")
	addOutputFlag(cmd, &output)
	return cmd
}

// subjectJSON is a subject as `schema list --output json` prints it.
type subjectJSON struct {
	Subject             string `json:"subject"`
	Versions            []int  `json:"versions"`
	DeletedVersions     []int  `json:"deleted_versions,omitempty"`
	LatestVersion       int    `json:"latest_version"`
	LatestID            int    `json:"latest_id"`
	Type                string `json:"type"`
	Compatibility       string `json:"compatibility"`
	CompatibilityGlobal bool   `json:"compatibility_global"`
}

func newSchemaListCmd() *cobra.Command {
	var (
		prefix  string
		deleted bool
		output  string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List subjects: their versions, latest id and type, compatibility level",
		Long: "List the subjects, each with its versions, the id and type of its latest version, and its\n" +
			"compatibility level (\"(global)\" when the subject has none of its own and follows the\n" +
			"registry's). --deleted includes the soft-deleted subjects and versions.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withRegistry(cmd, func(ctx context.Context, rc *registryClient) error {
				q := url.Values{}
				if prefix != "" {
					q.Set("subjectPrefix", prefix)
				}
				if deleted {
					q.Set("deleted", "true")
				}
				var subjects []string
				if err := rc.do(ctx, http.MethodGet, "/subjects", q, nil, &subjects); err != nil {
					return err
				}
				global := ""
				list := make([]subjectJSON, 0, len(subjects))
				for _, s := range subjects {
					js := subjectJSON{Subject: s, Versions: []int{}}
					all, err := rc.versions(ctx, s, deleted)
					if err != nil {
						return err
					}
					live, err := rc.versions(ctx, s, false)
					if err != nil && !isCode(err, regSubjectNotFound) {
						return err
					}
					for _, v := range all {
						if slices.Contains(live, v) {
							js.Versions = append(js.Versions, v)
						} else {
							js.DeletedVersions = append(js.DeletedVersions, v)
						}
					}
					latest, err := rc.version(ctx, s, "latest", deleted)
					if err != nil {
						return err
					}
					js.LatestVersion, js.LatestID, js.Type = latest.Version, latest.ID, latest.schemaType()
					var own struct {
						Level string `json:"compatibilityLevel"`
					}
					err = rc.do(ctx, http.MethodGet, "/config/"+url.PathEscape(s), nil, nil, &own)
					switch {
					case err == nil:
						js.Compatibility = own.Level
					case isCode(err, regSubjectLevelCompatNotSet):
						if global == "" {
							if global, _, err = rc.level(ctx, ""); err != nil {
								return err
							}
						}
						js.Compatibility, js.CompatibilityGlobal = global, true
					default:
						return err
					}
					list = append(list, js)
				}
				out := cmd.OutOrStdout()
				if output == "json" {
					return writeJSON(out, list)
				}
				tw := newTable(out)
				fmt.Fprint(tw, "SUBJECT\tVERSIONS\tLATEST\tID\tTYPE\tCOMPATIBILITY")
				if deleted {
					fmt.Fprint(tw, "\tDELETED")
				}
				fmt.Fprintln(tw)
				for _, js := range list {
					level := js.Compatibility
					if js.CompatibilityGlobal {
						level += " (global)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s", js.Subject, versionsText(js.Versions), js.LatestVersion, js.LatestID, js.Type, level)
					if deleted {
						fmt.Fprintf(tw, "\t%s", versionsText(js.DeletedVersions))
					}
					fmt.Fprintln(tw)
				}
				return tw.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&prefix, "prefix", "", "only the subjects whose names start with `P`")
	f.BoolVar(&deleted, "deleted", false, "include soft-deleted subjects and versions")
	addOutputFlag(cmd, &output)
	return cmd
}

// incompatibleError: schema check found the schema incompatible.
type incompatibleError struct {
	subject string
	rules   int
}

func (e *incompatibleError) Error() string {
	if e.rules == 0 {
		return fmt.Sprintf("the schema is incompatible with subject '%s'", e.subject)
	}
	return fmt.Sprintf("the schema is incompatible with subject '%s' (%s broken)", e.subject, plural(e.rules, "rule"))
}

func (e *incompatibleError) exitCode() int { return exitIncompatible }

// levelChecks says what a compatibility level checks a new schema
// against, given the subject's live versions (only: just that one).
func levelChecks(level string, live []int, only string) string {
	if level == "NONE" {
		return "level NONE: nothing is checked"
	}
	if only != "" {
		return fmt.Sprintf("level %s, checked against version %s", level, only)
	}
	if strings.HasSuffix(level, "_TRANSITIVE") && len(live) > 1 {
		return fmt.Sprintf("level %s, checked against versions %s", level, versionsText(live))
	}
	if len(live) == 0 {
		return "level " + level
	}
	return fmt.Sprintf("level %s, checked against version %d", level, live[len(live)-1])
}

// checkJSON is what `schema check --output json` prints.
type checkJSON struct {
	Subject       string   `json:"subject"`
	Compatible    bool     `json:"compatible"`
	SubjectExists bool     `json:"subject_exists"`
	Level         string   `json:"level"`
	Checked       []int    `json:"checked_versions"`
	Messages      []string `json:"messages"`
}

func newSchemaCheckCmd() *cobra.Command {
	var (
		sf      schemaInputFlags
		version string
		output  string
	)
	cmd := &cobra.Command{
		Use:   "check SUBJECT --file FILE",
		Short: "Check whether a schema could be registered under a subject (for CI)",
		Long: "Check the schema in FILE against SUBJECT's versions as the subject's compatibility level\n" +
			"requires (the check registering it would make), or with --version against that one version.\n" +
			"Exit 0 when compatible; when not, print each rule it breaks and exit 6. A subject without\n" +
			"versions yet is compatible (any valid schema can be its first); the schema must still parse.",
		Example: "  spool schema check orders-value --file order.avsc\n" +
			"  spool schema check orders-value --file order.avsc --version 3",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := args[0]
			if err := sf.check(cmd); err != nil {
				return err
			}
			only := ""
			if version != "all" {
				v, err := parseVersion(cmd, "--version", version)
				if err != nil {
					return err
				}
				only = v
			}
			return withRegistry(cmd, func(ctx context.Context, rc *registryClient) error {
				in, err := sf.input(ctx, cmd, rc)
				if err != nil {
					return err
				}
				res := checkJSON{Subject: subject, SubjectExists: true, Checked: []int{}, Messages: []string{}}
				live, err := rc.versions(ctx, subject, false)
				if isCode(err, regSubjectNotFound) {
					res.SubjectExists, err = false, nil
				}
				if err != nil {
					return err
				}
				if res.Level, _, err = rc.level(ctx, subject); err != nil {
					return err
				}
				var ans *compatAnswer
				if res.SubjectExists {
					if only == "latest" {
						only = strconv.Itoa(live[len(live)-1])
					}
					ans, err = rc.compatible(ctx, subject, only, in)
				} else {
					// Nothing to check against, but the schema must parse.
					ans, err = rc.compatible(ctx, subject, "", in)
				}
				if err != nil {
					return err
				}
				res.Compatible = ans.IsCompatible
				if ans.Messages != nil {
					res.Messages = ans.Messages
				}
				switch {
				case !res.SubjectExists || res.Level == "NONE":
				case only != "":
					n, _ := strconv.Atoi(only)
					res.Checked = []int{n}
				case strings.HasSuffix(res.Level, "_TRANSITIVE"):
					res.Checked = live
				default:
					res.Checked = live[len(live)-1:]
				}
				out := cmd.OutOrStdout()
				if output == "json" {
					if err := writeJSON(out, res); err != nil {
						return err
					}
				} else {
					switch {
					case !res.SubjectExists:
						fmt.Fprintf(out, "compatible: subject %s has no versions yet, so this schema can be its first\n", subject)
					case res.Compatible:
						fmt.Fprintf(out, "compatible with %s (%s)\n", subject, levelChecks(res.Level, live, only))
					default:
						fmt.Fprintf(out, "incompatible with %s (%s):\n", subject, levelChecks(res.Level, live, only))
						for _, m := range res.Messages {
							fmt.Fprintf(out, "  - %s\n", m)
						}
						if len(res.Messages) == 0 {
							fmt.Fprintln(out, "  (the registry gave no details)")
						}
					}
				}
				if !res.Compatible {
					return &incompatibleError{subject: subject, rules: len(res.Messages)}
				}
				return nil
			})
		},
	}
	sf.register(cmd)
	cmd.Flags().StringVar(&version, "version", "all", "check against this version only (a number, or latest); all: against the versions the subject's level names")
	addOutputFlag(cmd, &output)
	return cmd
}

// issuePrefix is the "version N (…): " the registry puts before each
// compatibility message.
var issuePrefix = regexp.MustCompile(`^version \d+ \([^)]*\): `)

func newSchemaDiffCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff SUBJECT V1 V2",
		Short: "Show what changed between two versions of a subject, and their compatibility",
		Long: "Show a unified diff from version V1 to version V2 of SUBJECT (each a number or latest),\n" +
			"after pretty-printing both: Avro and JSON schemas re-indented with their keys sorted,\n" +
			"Protobuf as registered. Then, for information, the registry's verdict on the two versions\n" +
			"at the subject's compatibility level, V2 taken as the newer: backward (V2 reads data\n" +
			"written with V1) and forward (V1 reads data written with V2). A BACKWARD or FORWARD\n" +
			"level checks one direction at a time, so the registry is asked twice, V2 against V1 and\n" +
			"V1 against V2; a FULL level checks both at once; NONE checks nothing.",
		Example: "  spool schema diff orders-value 1 latest",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := args[0]
			v1, err := parseVersion(cmd, "V1", args[1])
			if err != nil {
				return err
			}
			v2, err := parseVersion(cmd, "V2", args[2])
			if err != nil {
				return err
			}
			return withRegistry(cmd, func(ctx context.Context, rc *registryClient) error {
				a, err := rc.version(ctx, subject, v1, true)
				if err != nil {
					return err
				}
				b, err := rc.version(ctx, subject, v2, true)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				name := func(v *subjectVersion) string {
					return fmt.Sprintf("%s version %d (id %d, %s)", subject, v.Version, v.ID, v.schemaType())
				}
				if !schema.WriteUnifiedDiff(out, name(a), name(b),
					schema.SplitLines(schema.DiffText(a.schemaType(), a.Schema)), schema.SplitLines(schema.DiffText(b.schemaType(), b.Schema)), 3) {
					fmt.Fprintf(out, "versions %d and %d of %s are the same (after pretty-printing)\n", a.Version, b.Version, subject)
				}
				if !slices.Equal(a.References, b.References) {
					fmt.Fprintf(out, "references: version %d: %s; version %d: %s\n",
						a.Version, orDash(refsText(a.References)), b.Version, orDash(refsText(b.References)))
				}
				return printDiffCompat(ctx, out, rc, subject, a, b)
			})
		},
	}
	return cmd
}

// printDiffCompat prints the registry's verdict on versions a and b (b
// taken as the newer) at the subject's level.
func printDiffCompat(ctx context.Context, out io.Writer, rc *registryClient, subject string, a, b *subjectVersion) error {
	level, own, err := rc.level(ctx, subject)
	if err != nil {
		return err
	}
	whose := "the subject's"
	if !own {
		whose = "the global"
	}
	fmt.Fprintf(out, "\nCompatibility at %s level, %s:\n", whose, level)
	// ask checks newer's text against older's version, at the level.
	ask := func(newer, older *subjectVersion) (*compatAnswer, error) {
		return rc.compatible(ctx, subject, strconv.Itoa(older.Version), schemaRequest{
			Schema: newer.Schema, SchemaType: newer.schemaType(), References: newer.References})
	}
	show := func(what string, ans *compatAnswer, err error) {
		switch {
		case err != nil:
			fmt.Fprintf(out, "  %s: not known: %s\n", what, errorText(err))
		case ans.IsCompatible:
			fmt.Fprintf(out, "  %s: compatible\n", what)
		default:
			fmt.Fprintf(out, "  %s: incompatible\n", what)
			for _, m := range ans.Messages {
				fmt.Fprintf(out, "    - %s\n", issuePrefix.ReplaceAllString(m, ""))
			}
		}
	}
	backward := fmt.Sprintf("backward (version %d reads data written with version %d)", b.Version, a.Version)
	forward := fmt.Sprintf("forward (version %d reads data written with version %d)", a.Version, b.Version)
	switch {
	case level == "NONE":
		fmt.Fprintln(out, "  not checked: level NONE checks neither direction")
	case strings.HasPrefix(level, "FULL"):
		ans, err := ask(b, a)
		show(backward+" and "+forward, ans, err)
	case strings.HasPrefix(level, "BACKWARD"):
		ans, err := ask(b, a)
		show(backward, ans, err)
		ans, err = ask(a, b)
		show(forward, ans, err)
	case strings.HasPrefix(level, "FORWARD"):
		ans, err := ask(a, b)
		show(backward, ans, err)
		ans, err = ask(b, a)
		show(forward, ans, err)
	default:
		fmt.Fprintf(out, "  not checked: unknown level %s\n", level)
	}
	return nil
}

func newSchemaDeleteCmd() *cobra.Command {
	var (
		version   string
		permanent bool
	)
	cmd := &cobra.Command{
		Use:   "delete SUBJECT [--version N|latest] [--permanent]",
		Short: "Delete a subject, or one version of it",
		Long: "Delete SUBJECT (all its versions), or with --version one version. A delete is soft: the\n" +
			"versions are hidden but their schemas stay readable by id, and `spool schema list --deleted`\n" +
			"shows them. --permanent removes them for good (soft-deleting them first if they are not yet).\n" +
			"The registry refuses to delete a version that another schema references.",
		Example: "  spool schema delete orders-value --version 3\n" +
			"  spool schema delete orders-value --permanent",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := args[0]
			if cmd.Flags().Changed("version") {
				v, err := parseVersion(cmd, "--version", version)
				if err != nil {
					return err
				}
				version = v
			}
			return withRegistry(cmd, func(ctx context.Context, rc *registryClient) error {
				path := subjectPath(subject)
				notSoftDeleted := regSubjectNotSoftDeleted
				if version != "" {
					path += "/versions/" + url.PathEscape(version)
					notSoftDeleted = regVersionNotSoftDeleted
				}
				del := func(perm bool, out any) error {
					var q url.Values
					if perm {
						q = url.Values{"permanent": {"true"}}
					}
					return rc.do(ctx, http.MethodDelete, path, q, nil, out)
				}
				var answer any // the versions deleted (subject) or the version (one)
				err := del(permanent, &answer)
				if permanent && isCode(err, notSoftDeleted) {
					var soft any
					if err = del(false, &soft); err == nil {
						if version == "latest" {
							// The version just soft-deleted, not the next latest.
							version = fmt.Sprint(soft)
							path = subjectPath(subject) + "/versions/" + version
						}
						err = del(true, &answer)
					}
				}
				if err != nil {
					return err
				}
				how := "soft-deleted"
				if permanent {
					how = "permanently deleted"
				}
				w := cmd.ErrOrStderr()
				switch a := answer.(type) {
				case []any:
					vs := make([]int, 0, len(a))
					for _, v := range a {
						if f, ok := v.(float64); ok {
							vs = append(vs, int(f))
						}
					}
					word := "versions"
					if len(vs) == 1 {
						word = "version"
					}
					fmt.Fprintf(w, "%s subject %s: %s %s\n", how, subject, word, versionsText(vs))
				default:
					fmt.Fprintf(w, "%s %s version %v\n", how, subject, a)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&version, "version", "", "delete only this version (a number, or latest)")
	f.BoolVar(&permanent, "permanent", false, "delete for good (what a soft delete leaves can no longer be read or restored)")
	return cmd
}

// compatibilityLevels are the levels `schema config --set` takes.
var compatibilityLevels = []string{"NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"}

func newSchemaConfigCmd() *cobra.Command {
	var (
		set    string
		output string
	)
	cmd := &cobra.Command{
		Use:   "config [SUBJECT] [--set LEVEL]",
		Short: "Show or set a compatibility level (a subject's, or the global one)",
		Long: "Show the compatibility level of SUBJECT (the global level if it has none of its own), or\n" +
			"without SUBJECT the registry's global level. --set LEVEL sets it: " + strings.Join(compatibilityLevels, ", ") + "\n" +
			"(in any case).",
		Example: "  spool schema config\n" +
			"  spool schema config orders-value --set full_transitive",
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := ""
			if len(args) == 1 {
				subject = args[0]
			}
			if cmd.Flags().Changed("set") {
				level := strings.ToUpper(set)
				if !slices.Contains(compatibilityLevels, level) {
					return usageErrorf(cmd, "--set: %q is not a compatibility level (%s)", set, orList(compatibilityLevels))
				}
				return withRegistry(cmd, func(ctx context.Context, rc *registryClient) error {
					path := "/config"
					if subject != "" {
						path += "/" + url.PathEscape(subject)
					}
					if err := rc.do(ctx, http.MethodPut, path, nil, map[string]string{"compatibility": level}, nil); err != nil {
						return err
					}
					if subject == "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "global compatibility level set to %s\n", level)
					} else {
						fmt.Fprintf(cmd.ErrOrStderr(), "compatibility level of %s set to %s\n", subject, level)
					}
					return nil
				})
			}
			return withRegistry(cmd, func(ctx context.Context, rc *registryClient) error {
				level, own, err := rc.level(ctx, subject)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if output == "json" {
					return writeJSON(out, map[string]any{"subject": subject, "compatibility": level, "global": !own || subject == ""})
				}
				switch {
				case subject == "":
					fmt.Fprintf(out, "global: %s\n", level)
				case own:
					fmt.Fprintf(out, "%s: %s\n", subject, level)
				default:
					fmt.Fprintf(out, "%s: %s (the global level; the subject has none of its own)\n", subject, level)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&set, "set", "", "set the level to `LEVEL`: "+strings.ToLower(strings.Join(compatibilityLevels, ", ")))
	addOutputFlag(cmd, &output)
	return cmd
}

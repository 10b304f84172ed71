package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/schema"
	"github.com/spoolmq/spool/internal/schema/sreg"
)

// catalogTimeout bounds one request for the catalog.
const catalogTimeout = 30 * time.Second

func newCatalogCmd() *cobra.Command {
	var output, topic string
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "List the event types: each topic's owner, schema, producing rate and subscriptions",
		Long: "Lists every topic as an event type: its owner, the schema subject it is bound to with\n" +
			"the subject's latest version, how many messages per second are produced to it (over the\n" +
			"last minute, as the node asked measures it), the messages it stores and its subscriptions.\n" +
			"Dead-letter topics are marked (dead letter). The server's GET /catalog answers the same,\n" +
			"in full, as JSON (-o json prints it). `spool catalog export` writes a document to publish.",
		Example: "  spool catalog\n  spool catalog --topic orders -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := getCatalog(cmd, topic, false)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				var buf bytes.Buffer
				if err := json.Indent(&buf, data, "", "  "); err != nil {
					return fmt.Errorf("catalog: unexpected answer: %w", err)
				}
				buf.WriteByte('\n')
				_, err := w.Write(buf.Bytes())
				return err
			}
			ets, err := decodeCatalog(data)
			if err != nil {
				return err
			}
			tw := newTable(w)
			fmt.Fprintln(tw, "TOPIC\tOWNER\tSCHEMA\tRATE\tMESSAGES\tSUBS")
			for _, et := range ets {
				name := et.Topic
				if et.DeadLetter {
					name += " (dead letter)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", name, orDash(et.Owner), textSchema(et.Schema),
					textRate(et), et.Messages, len(et.Subscriptions))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic")
	addOutputFlag(cmd, &output)
	cmd.AddCommand(newCatalogExportCmd())
	return cmd
}

func newCatalogExportCmd() *cobra.Command {
	var format, file, topic string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the event catalog as a Markdown document or JSON",
		Long: "Writes the event catalog for a team to publish: per event type its owner, description,\n" +
			"labels, schema subject with its versions and the latest schema's text, producing rate and\n" +
			"the subscriptions reading it, with their declared reader schemas. Markdown (the default)\n" +
			"is a document with a heading per event type; json is GET /catalog?schemas=true.",
		Example: "  spool catalog export --output CATALOG.md\n  spool catalog export --format json > catalog.json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := getCatalog(cmd, topic, true)
			if err != nil {
				return err
			}
			ets, err := decodeCatalog(data)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if format == "json" {
				if err := json.Indent(&buf, data, "", "  "); err != nil {
					return fmt.Errorf("catalog: unexpected answer: %w", err)
				}
				buf.WriteByte('\n')
			} else {
				writeCatalogMarkdown(&buf, ets)
			}
			if file == "" || file == "-" {
				_, err := cmd.OutOrStdout().Write(buf.Bytes())
				return err
			}
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%s)\n", file, plural(len(ets), "topic"))
			return nil
		},
	}
	cmd.Flags().Var(newEnum(&format, "markdown", "markdown", "json"), "format", "the document's format: markdown or json")
	cmd.Flags().StringVar(&file, "output", "", "write to `FILE` instead of stdout")
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic")
	return cmd
}

// getCatalog fetches GET /catalog from the first node of --server that can
// be reached (with schemas, the latest schemas' text too).
func getCatalog(cmd *cobra.Command, topic string, schemas bool) ([]byte, error) {
	list, err := cmd.Flags().GetString("server")
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if topic != "" {
		q.Set("topic", topic)
	}
	if schemas {
		q.Set("schemas", "true")
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), catalogTimeout)
	defer cancel()
	var lastErr error
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		base := strings.TrimSuffix(a, "/")
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/catalog?"+q.Encode(), nil)
		if err != nil {
			return nil, usageErrorf(cmd, "--server: %q: %v", a, err)
		}
		if key := apiKey(cmd); key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if isConnectError(err) && ctx.Err() == nil {
				lastErr = err
				continue
			}
			return nil, &serverUnreachableError{err}
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
		if err != nil {
			return nil, fmt.Errorf("catalog from %s: %w", base, err)
		}
		if resp.StatusCode != http.StatusOK {
			var e struct{ Code, Message string }
			if json.Unmarshal(data, &e) != nil || e.Code == "" {
				return nil, fmt.Errorf("catalog from %s: HTTP %s", base, resp.Status)
			}
			if e.Code == "not_found" {
				return nil, &notFoundError{e.Message + " (" + e.Code + ")"}
			}
			return nil, fmt.Errorf("%s (%s)", e.Message, e.Code)
		}
		return data, nil
	}
	if lastErr == nil {
		return nil, usageErrorf(cmd, "--server: no URL given")
	}
	return nil, &serverUnreachableError{lastErr}
}

// serverUnreachableError: no node of --server could be reached.
type serverUnreachableError struct{ err error }

func (e *serverUnreachableError) Error() string { return e.err.Error() + " (unavailable)" }
func (e *serverUnreachableError) Unwrap() error { return e.err }
func (e *serverUnreachableError) exitCode() int { return exitUnavailable }

func decodeCatalog(data []byte) ([]sreg.EventType, error) {
	var ets []sreg.EventType
	if err := json.Unmarshal(data, &ets); err != nil {
		return nil, fmt.Errorf("catalog: unexpected answer: %w", err)
	}
	return ets, nil
}

// textSchema formats a topic's binding as subject@latest version: "-"
// unbound, subject@- when the subject has no live version.
func textSchema(s *sreg.EventSchema) string {
	if s == nil {
		return "-"
	}
	if s.LatestVersion == 0 {
		return s.Subject + "@-"
	}
	return s.Subject + "@" + strconv.Itoa(s.LatestVersion)
}

// textRate formats a producing rate, messages per second: "-" before it
// is measured.
func textRate(et sreg.EventType) string {
	if et.RateWindowSeconds == 0 {
		return "-"
	}
	return strconv.FormatFloat(et.RatePerSecond, 'f', rateDecimals(et.RatePerSecond), 64) + "/s"
}

func rateDecimals(r float64) int {
	switch {
	case r == 0 || r >= 100:
		return 0
	case r >= 1:
		return 1
	}
	return 2
}

// writeCatalogMarkdown writes the event catalog as a Markdown document.
func writeCatalogMarkdown(w *bytes.Buffer, ets []sreg.EventType) {
	w.WriteString("# Event catalog\n\n")
	var events, dead []sreg.EventType
	for _, et := range ets {
		if et.DeadLetter {
			dead = append(dead, et)
		} else {
			events = append(events, et)
		}
	}
	fmt.Fprintf(w, "%s, and %s.\n\n", plural(len(events), "event type"), plural(len(dead), "dead-letter topic"))
	if len(events) > 0 {
		w.WriteString("| Event type | Owner | Schema | Rate | Subscriptions |\n|---|---|---|---:|---:|\n")
		for _, et := range events {
			fmt.Fprintf(w, "| [%s](#%s) | %s | %s | %s | %d |\n", mdCell(et.Topic), mdAnchor(et.Topic), mdCell(orDash(et.Owner)),
				mdCell(textSchema(et.Schema)), textRate(et), len(et.Subscriptions))
		}
		w.WriteString("\n")
	}
	for _, et := range events {
		writeEventMarkdown(w, et)
	}
	if len(dead) > 0 {
		w.WriteString("## Dead-letter topics\n\n| Topic | Dead letters of | Messages |\n|---|---|---:|\n")
		for _, et := range dead {
			of := "-"
			if o := et.DeadLetterOf; o != nil {
				of = "topic `" + o.Topic + "` (schema validation)"
				if o.Subscription != "" {
					of = "subscription `" + o.Subscription + "` of `" + o.Topic + "`"
				}
			}
			fmt.Fprintf(w, "| `%s` | %s | %d |\n", et.Topic, of, et.Messages)
		}
	}
}

func writeEventMarkdown(w *bytes.Buffer, et sreg.EventType) {
	fmt.Fprintf(w, "## %s\n\n", et.Topic)
	if et.Description != "" {
		w.WriteString(strings.TrimSpace(et.Description) + "\n\n")
	}
	fmt.Fprintf(w, "- **Owner:** %s\n", orDash(et.Owner))
	if len(et.Labels) > 0 {
		keys := make([]string, 0, len(et.Labels))
		for k := range et.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			keys[i] = "`" + k + "=" + et.Labels[k] + "`"
		}
		fmt.Fprintf(w, "- **Labels:** %s\n", strings.Join(keys, ", "))
	}
	fmt.Fprintf(w, "- **Partitions:** %d\n", et.Partitions)
	rate := textRate(et)
	if rate == "-" {
		rate = "not measured yet"
	} else {
		rate += fmt.Sprintf(" (over the last %.0f s)", et.RateWindowSeconds)
	}
	fmt.Fprintf(w, "- **Producing rate:** %s; %s stored\n", rate, plural(int(et.Messages), "message"))
	s := et.Schema
	if s == nil {
		w.WriteString("- **Schema:** none (not validated)\n\n")
	} else {
		fmt.Fprintf(w, "- **Schema:** subject `%s`, invalid messages: %s\n\n", s.Subject, s.Mode)
		if len(s.Versions) == 0 {
			w.WriteString("The subject has no version registered yet.\n\n")
		} else {
			w.WriteString("| Version | Id | Type | Produced | Last produced |\n|---:|---:|---|---:|---|\n")
			for _, v := range s.Versions {
				ver := strconv.Itoa(v.Version)
				if v.Deleted {
					ver += " (deleted)"
				} else if v.Version == s.LatestVersion {
					ver += " (latest)"
				}
				last := "-"
				if v.LastProduced != nil {
					last = v.LastProduced.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "| %s | %d | %s | %d | %s |\n", ver, v.ID, v.Type, v.Produced, last)
			}
			w.WriteString("\nProduced: the messages validated with the version by the node asked, since it started.\n\n")
		}
		if s.LatestSchema != "" {
			fmt.Fprintf(w, "Latest schema (version %d, %s):\n\n", s.LatestVersion, s.Type)
			for _, r := range s.LatestReferences {
				fmt.Fprintf(w, "- references `%s`: subject `%s` version %d\n", r.Name, r.Subject, r.Version)
			}
			if len(s.LatestReferences) > 0 {
				w.WriteString("\n")
			}
			fence := "```"
			for strings.Contains(s.LatestSchema, fence) {
				fence += "`"
			}
			fmt.Fprintf(w, "%s%s\n%s\n%s\n\n", fence, fenceLang(s.Type), strings.TrimRight(indentSchema(s.LatestSchema), "\n"), fence)
		}
	}
	if len(et.Subscriptions) == 0 {
		w.WriteString("No subscription reads it.\n\n")
		return
	}
	w.WriteString("| Subscription | Mode | Reader schema |\n|---|---|---|\n")
	for _, sub := range et.Subscriptions {
		reader := "-"
		if sub.Reader != nil {
			reader = fmt.Sprintf("`%s` version %d", sub.Reader.Subject, sub.Reader.Version)
		}
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", sub.Name, sub.Mode, reader)
	}
	w.WriteString("\n")
}

// fenceLang is a fenced code block's language for a schema type.
func fenceLang(t schema.Type) string {
	if t == "PROTOBUF" {
		return "protobuf"
	}
	return "json" // Avro and JSON Schema
}

// indentSchema indents a JSON schema written on one line; others are
// returned as they are.
func indentSchema(text string) string {
	if !strings.Contains(strings.TrimSpace(text), "\n") {
		if p, ok := schema.PrettyJSON(text); ok {
			return p
		}
	}
	return text
}

// mdCell escapes a table cell's pipes and puts it on one line.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\r\n", " ", "\n", " ").Replace(s)
}

// mdAnchor is the anchor GitHub gives a heading: lower case, spaces as
// hyphens, punctuation other than hyphens and underscores dropped.
func mdAnchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

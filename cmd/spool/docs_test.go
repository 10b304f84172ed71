package main

// Tests that keep docs/cli.md and docs/config.md in step with the commands,
// flags and configuration keys the code has. Each reports every gap at once,
// with where to document it.

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/spoolmq/spool/internal/config"
	"github.com/spoolmq/spool/server"
)

// mdSection is a heading of a Markdown file and the text under it, up to
// the next heading of the same or a higher level (so a section includes its
// subsections).
type mdSection struct {
	heading string // the heading line, "### `spool topic create NAME`"
	text    string // the heading line and everything under it
}

// mdSections splits a Markdown document into its sections, skipping fenced
// code blocks when looking for headings.
func mdSections(doc string) []mdSection {
	type head struct{ line, level int }
	lines := strings.Split(doc, "\n")
	var heads []head
	fence := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			fence = !fence
			continue
		}
		if fence || !strings.HasPrefix(l, "#") {
			continue
		}
		level := len(l) - len(strings.TrimLeft(l, "#"))
		if level < len(l) && l[level] == ' ' {
			heads = append(heads, head{i, level})
		}
	}
	var out []mdSection
	for k, h := range heads {
		end := len(lines)
		for _, next := range heads[k+1:] {
			if next.level <= h.level {
				end = next.line
				break
			}
		}
		out = append(out, mdSection{heading: lines[h.line], text: strings.Join(lines[h.line:end], "\n")})
	}
	return out
}

// mentionsFlag reports whether text names the long flag --name (not a
// longer flag that starts with it).
func mentionsFlag(text, name string) bool {
	return regexp.MustCompile(`(^|[^A-Za-z0-9-])--` + regexp.QuoteMeta(name) + `($|[^A-Za-z0-9-])`).MatchString(text)
}

// documentedFlags lists the flags of cmd that its documentation must name:
// those defined on cmd itself (inherited ones are documented with the
// command that defines them), without cobra's --help and hidden flags.
func documentedFlags(cmd *cobra.Command) []string {
	var names []string
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && !f.Hidden {
			names = append(names, f.Name)
		}
	})
	return names
}

// walkCommands calls fn for cmd and every command below it, except hidden
// ones and cobra's generated help and completion commands.
func walkCommands(cmd *cobra.Command, fn func(*cobra.Command)) {
	if cmd.Hidden || cmd.Name() == "help" || cmd.Name() == "completion" || cmd.IsAdditionalHelpTopicCommand() {
		return
	}
	fn(cmd)
	for _, sub := range cmd.Commands() {
		walkCommands(sub, fn)
	}
}

// readDoc returns the file at path, relative to the repository's root.
func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// reportGaps fails t with every gap, one per line.
func reportGaps(t *testing.T, what string, gaps []string) {
	t.Helper()
	if len(gaps) > 0 {
		t.Errorf("%d %s:\n  %s", len(gaps), what, strings.Join(gaps, "\n  "))
	}
}

// TestDocsCLI checks that docs/cli.md documents every command of the spool
// command tree (a heading naming the command path in backticks, such as
// "### `spool sub reset TOPIC NAME --to POSITION`") and every flag of each
// command within the section under such a heading.
func TestDocsCLI(t *testing.T) {
	const doc = "docs/cli.md"
	sections := mdSections(readDoc(t, doc))
	var gaps []string
	walkCommands(newRootCmd(), func(cmd *cobra.Command) {
		path := cmd.CommandPath()
		named := regexp.MustCompile("`" + regexp.QuoteMeta(path) + "[` ]")
		var own []mdSection
		for _, s := range sections {
			if named.MatchString(s.heading) {
				own = append(own, s)
			}
		}
		if len(own) == 0 {
			gaps = append(gaps, "command `"+path+"`: no heading names it; add a section \"### `"+path+" …`\" under \"## Commands\" in "+doc)
			return
		}
		for _, name := range documentedFlags(cmd) {
			found := false
			for _, s := range own {
				found = found || mentionsFlag(s.text, name)
			}
			if !found {
				gaps = append(gaps, "flag --"+name+" of `"+path+"`: not mentioned in the section "+strings.TrimLeft(own[0].heading, "# ")+" of "+doc)
			}
		}
	})
	reportGaps(t, "commands or flags missing from "+doc, gaps)
}

// TestDocsServeFlags checks that docs/config.md names every flag of
// `spool serve`.
func TestDocsServeFlags(t *testing.T) {
	const doc = "docs/config.md"
	text := readDoc(t, doc)
	var gaps []string
	for _, name := range documentedFlags(newServeCmd()) {
		if !mentionsFlag(text, name) {
			gaps = append(gaps, "flag --"+name+" of `spool serve`: add it to the command-line flags in the precedence list of "+doc)
		}
	}
	reportGaps(t, "`spool serve` flags missing from "+doc, gaps)
}

// TestDocsConfigKeys checks the YAML block under "## Keys and defaults" in
// docs/config.md: it names every configuration key, and the values it gives
// are the defaults (loaded as strictly as a configuration file).
func TestDocsConfigKeys(t *testing.T) {
	const doc = "docs/config.md"
	var block string
	for _, s := range mdSections(readDoc(t, doc)) {
		if s.heading == "## Keys and defaults" {
			_, rest, _ := strings.Cut(s.text, "```yaml\n")
			block, _, _ = strings.Cut(rest, "```")
		}
	}
	if block == "" {
		t.Fatalf("%s: no ```yaml block under \"## Keys and defaults\"", doc)
	}
	inBlock := yamlLeaves(block)
	var gaps []string
	for _, k := range config.Keys(server.FileConfig{}) {
		path, _, _ := strings.Cut(k, " ")
		if _, ok := inBlock[path]; !ok {
			gaps = append(gaps, "key "+path+": add it, with its default, to the YAML block under \"## Keys and defaults\" in "+doc)
		}
	}
	reportGaps(t, "configuration keys missing from "+doc, gaps)

	var got server.FileConfig
	if err := config.Load(doc, []byte(block), &got); err != nil {
		t.Fatalf("the YAML block under \"## Keys and defaults\" in %s does not load: %v", doc, err)
	}
	if want := server.DefaultFileConfig(); !reflect.DeepEqual(got, want) {
		g, err := config.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		w, err := config.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		gv, wv := yamlLeaves(string(g)), yamlLeaves(string(w))
		var diffs []string
		for _, k := range config.Keys(server.FileConfig{}) {
			path, _, _ := strings.Cut(k, " ")
			if gv[path] != wv[path] {
				diffs = append(diffs, path+": "+gv[path]+" in "+doc+", default "+wv[path])
			}
		}
		reportGaps(t, "values in the YAML block under \"## Keys and defaults\" that are not the defaults (spool serve --print-config)", diffs)
	}
}

// yamlLeaves returns the dotted path of every key of a YAML block of
// nested mappings, from its indentation, with its value (comments cut; ""
// for a section).
func yamlLeaves(block string) map[string]string {
	type level struct {
		indent int
		key    string
	}
	out := map[string]string{}
	var stack []level
	for _, l := range strings.Split(block, "\n") {
		body := strings.TrimLeft(l, " ")
		if body == "" || strings.HasPrefix(body, "#") {
			continue
		}
		key, value, ok := strings.Cut(body, ":")
		if !ok {
			continue
		}
		indent := len(l) - len(body)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, level{indent, key})
		var path []string
		for _, s := range stack {
			path = append(path, s.key)
		}
		value, _, _ = strings.Cut(value, " #")
		out[strings.Join(path, ".")] = strings.TrimSpace(value)
	}
	return out
}

package console

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/spoolmq/spool/internal/schema"
	"github.com/spoolmq/spool/internal/schema/sreg"
)

type subjectRow struct {
	Name     string
	Versions int
	Latest   sreg.Registered
	Topics   []string
}

// boundTopics maps each subject to the topics bound to it.
func (c *Console) boundTopics() map[string][]string {
	out := map[string][]string{}
	for _, t := range c.cfg.Broker.Topics() {
		if s := t.Config.SchemaSubject; s != "" {
			out[s] = append(out[s], t.Name)
		}
	}
	for _, ts := range out {
		slices.Sort(ts)
	}
	return out
}

func (c *Console) noRegistry(w http.ResponseWriter, r *http.Request) bool {
	if c.cfg.Registry == nil {
		c.fail(w, r, http.StatusNotFound, "This server has no schema registry.")
		return true
	}
	return false
}

// subjects lists the registry's subjects: GET /schemas.
func (c *Console) subjects(w http.ResponseWriter, r *http.Request) {
	if c.noRegistry(w, r) {
		return
	}
	reg := c.cfg.Registry
	bound := c.boundTopics()
	var rows []subjectRow
	for _, s := range reg.Subjects("", false) {
		vs, err := reg.Versions(s, false)
		if err != nil {
			continue
		}
		latest, err := reg.Version(s, -1, false)
		if err != nil {
			continue
		}
		rows = append(rows, subjectRow{Name: s, Versions: len(vs), Latest: latest, Topics: bound[s]})
	}
	c.render(w, r, http.StatusOK, "subjects", page{Title: "Schemas", Nav: "schemas", Data: rows})
}

type versionRow struct {
	sreg.Registered
	Deleted bool
}

// diffLine is one line of a unified diff: Kind '+', '-', ' ', '@' (a hunk
// header) or 'h' (a file header).
type diffLine struct {
	Kind string
	Text string
}

type subjectData struct {
	Subject  string
	Versions []versionRow
	Shown    sreg.Registered
	Text     string
	Topics   []string
	From, To int
	Diff     []diffLine
	Same     bool // the versions compared are the same after pretty-printing
	RefsDiff bool
}

// subject shows a subject: GET /schemas/{subject}?version=N shows a
// version's text (default the latest), &from=A&to=B the diff of two.
func (c *Console) subject(w http.ResponseWriter, r *http.Request) {
	if c.noRegistry(w, r) {
		return
	}
	reg := c.cfg.Registry
	subj := r.PathValue("subject")
	q := r.URL.Query()
	all, err := reg.Versions(subj, true)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	live, _ := reg.Versions(subj, false)
	d := subjectData{Subject: subj, Topics: c.boundTopics()[subj]}
	for _, v := range all {
		rv, err := reg.Version(subj, v, true)
		if err != nil {
			continue
		}
		d.Versions = append(d.Versions, versionRow{Registered: rv, Deleted: !slices.Contains(live, v)})
	}
	version := func(param string, def int) (int, bool) {
		s := q.Get(param)
		if s == "" {
			return def, true
		}
		v, err := strconv.Atoi(s)
		if err != nil || (v < 1 && v != -1) {
			c.fail(w, r, http.StatusBadRequest, "Version "+strconv.Quote(s)+" is not a version number.")
			return 0, false
		}
		return v, true
	}
	v, ok := version("version", -1)
	if !ok {
		return
	}
	if d.Shown, err = reg.Version(subj, v, true); err != nil {
		c.failErr(w, r, err)
		return
	}
	d.Text = d.Shown.Text
	if !strings.Contains(strings.TrimSpace(d.Text), "\n") {
		if p, ok := schema.PrettyJSON(d.Text); ok {
			d.Text = p
		}
	}
	d.Text, _ = cut(d.Text, 1<<20)
	first, last := all[0], all[len(all)-1]
	if len(all) > 1 {
		first = all[len(all)-2]
	}
	if d.From, ok = version("from", first); !ok {
		return
	}
	if d.To, ok = version("to", last); !ok {
		return
	}
	if q.Has("from") || q.Has("to") {
		a, err := reg.Version(subj, d.From, true)
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		b, err := reg.Version(subj, d.To, true)
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		d.Diff, d.Same = unifiedDiff(subj, a, b)
		d.RefsDiff = !slices.Equal(a.Refs, b.Refs)
	}
	c.render(w, r, http.StatusOK, "subject", page{Title: "Subject " + subj, Nav: "schemas",
		Crumbs: []crumb{{"Schemas", "/schemas"}}, Data: d})
}

// unifiedDiff is schema.WriteUnifiedDiff of two versions, as lines.
func unifiedDiff(subj string, a, b sreg.Registered) ([]diffLine, bool) {
	name := func(v sreg.Registered) string {
		return subj + " version " + strconv.Itoa(v.Version) + " (id " + strconv.Itoa(v.ID) + ", " + string(v.Type) + ")"
	}
	var sb strings.Builder
	if !schema.WriteUnifiedDiff(&sb, name(a), name(b),
		schema.SplitLines(schema.DiffText(string(a.Type), a.Text)), schema.SplitLines(schema.DiffText(string(b.Type), b.Text)), 3) {
		return nil, true
	}
	var out []diffLine
	for i, l := range schema.SplitLines(sb.String()) {
		k := " "
		switch {
		case i < 2:
			k = "h"
		case strings.HasPrefix(l, "@@"):
			k = "@"
		case l != "":
			k = l[:1]
		}
		out = append(out, diffLine{Kind: k, Text: l})
	}
	return out, false
}

// catalogPage is the event catalog as a page: GET /console/catalog (GET
// /catalog is the same catalog as JSON).
func (c *Console) catalogPage(w http.ResponseWriter, r *http.Request) {
	if c.noRegistry(w, r) {
		return
	}
	cat := c.cfg.Registry.Catalog(c.cfg.Broker)
	c.render(w, r, http.StatusOK, "catalog", page{Title: "Event catalog", Nav: "catalog", Data: cat})
}

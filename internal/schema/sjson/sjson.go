package sjson

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/spoolmq/spool/internal/schema"
)

// Format parses JSON Schemas. The zero value is ready to use.
type Format struct{}

var _ schema.Format = Format{}

// rootURL is the base URL a schema without "$id" is compiled under. Its
// host is reserved (RFC 2606), so no reference can resolve to a real site;
// relative references such as "address.json" resolve against it and are
// then matched to the deps by name.
const rootURL = "https://schemas.spool.invalid/root.json"

// textDepth bounds the raw nesting of a schema's JSON. Each level of
// subschema takes two levels of JSON ("properties" then the name), and
// enum and const values nest on their own; schema.MaxDepth itself is
// enforced on subschemas by the normalization walk.
const textDepth = 4 * schema.MaxDepth

// maxSubschemas bounds the subschemas of a schema and its references:
// the library's compile time grows with their square.
const maxSubschemas = 5000

// countSubschemas counts the objects and booleans in a normalized schema
// that are subschemas, or could be; counting every object is an upper
// bound that needs no knowledge of keywords.
func countSubschemas(v any) int {
	switch v := v.(type) {
	case map[string]any:
		n := 1
		for _, e := range v {
			n += countSubschemas(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range v {
			n += countSubschemas(e)
		}
		return n
	}
	return 0
}

// document is one schema text: the one parsed or one of its deps.
type document struct {
	name  string // the dep's name; "" for the schema parsed
	url   string // absolute URL its relative references resolve against
	v     any    // decoded JSON, as the library compiles it
	norm  any    // v normalized, as Check reads it
	draft int    // 4, 6, 7, 2019 or 2020
	set   *docSet
}

// docSet is a schema with its deps: what $ref may point into.
type docSet struct {
	docs []*document // docs[0] is the schema itself
}

// jsonSchema is a parsed JSON Schema. It is immutable, so it may be used
// by many goroutines at once.
type jsonSchema struct {
	canonical string
	compiled  *jsonschema.Schema
	set       *docSet
}

var _ schema.Schema = (*jsonSchema)(nil)

// Parse parses a JSON Schema. deps are the schemas it references: each
// dep's Name is the URL (absolute, or relative to the schema's "$id") that
// "$ref" uses for it.
func (Format) Parse(text string, deps []schema.Dep) (schema.Schema, error) {
	if len(deps) > schema.MaxDeps {
		return nil, fmt.Errorf("%d references, more than the %d allowed", len(deps), schema.MaxDeps)
	}
	set := &docSet{}
	root, err := newDocument(set, "", text)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, d := range deps {
		if d.Name == "" {
			return nil, errors.New("a reference has no name")
		}
		if seen[d.Name] {
			return nil, fmt.Errorf("reference %q given twice", d.Name)
		}
		seen[d.Name] = true
		if _, err := newDocument(set, d.Name, d.Text); err != nil {
			return nil, fmt.Errorf("reference %q: %w", d.Name, err)
		}
	}
	total := 0
	for _, d := range set.docs {
		total += countSubschemas(d.norm)
	}
	if total > maxSubschemas {
		return nil, fmt.Errorf("schema and references hold %d subschemas, more than the %d allowed", total, maxSubschemas)
	}
	compiled, err := compile(set)
	if err != nil {
		return nil, err
	}
	return &jsonSchema{canonical: canonical(root.norm), compiled: compiled, set: set}, nil
}

// newDocument decodes a schema text, checks its bounds and draft, and adds
// it to set.
func newDocument(set *docSet, name, text string) (*document, error) {
	v, err := decodeJSON(text, textDepth)
	if err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	m, isObj := v.(map[string]any)
	if _, isBool := v.(bool); !isObj && !isBool {
		return nil, errors.New("schema is neither an object nor a boolean")
	}
	draft, err := draftOf(m)
	if err != nil {
		return nil, err
	}
	norm, err := normalize(v, draft, 0, "#")
	if err != nil {
		return nil, err
	}
	d := &document{name: name, v: v, norm: norm, draft: draft, set: set}
	d.url, err = docURL(d, m)
	if err != nil {
		return nil, err
	}
	set.docs = append(set.docs, d)
	return d, nil
}

// docURL is the URL a document's relative references resolve against: its
// "$id" when it has one, else its name resolved against rootURL.
func docURL(d *document, m map[string]any) (string, error) {
	base, _ := url.Parse(rootURL)
	if d.name != "" {
		u, err := url.Parse(d.name)
		if err != nil {
			return "", fmt.Errorf("reference name %q is not a URL: %v", d.name, err)
		}
		base = base.ResolveReference(u)
	}
	id, _ := m["$id"].(string)
	if d.draft == 4 {
		id, _ = m["id"].(string)
	}
	if id != "" {
		u, err := url.Parse(id)
		if err != nil {
			return "", fmt.Errorf("$id %q is not a URL: %v", id, err)
		}
		base = base.ResolveReference(u)
	}
	base.Fragment = ""
	return base.String(), nil
}

// The drafts by their meta-schema URLs, without scheme and trailing "#".
var drafts = map[string]int{
	"json-schema.org/draft-04/schema":      4,
	"json-schema.org/draft-06/schema":      6,
	"json-schema.org/draft-07/schema":      7,
	"json-schema.org/draft/2019-09/schema": 2019,
	"json-schema.org/draft/2020-12/schema": 2020,
}

// draftOf reads "$schema"; without it a schema is draft 7, as in Confluent.
func draftOf(m map[string]any) (int, error) {
	v, ok := m["$schema"]
	if !ok {
		return 7, nil
	}
	s, _ := v.(string)
	key := strings.TrimSuffix(s, "#")
	if k, ok := strings.CutPrefix(key, "https://"); ok {
		key = k
	} else {
		key = strings.TrimPrefix(key, "http://")
	}
	if d, ok := drafts[key]; ok {
		return d, nil
	}
	return 0, fmt.Errorf("$schema %q is not a supported draft (4, 6, 7, 2019-09 or 2020-12)", v)
}

// draftURLs are the meta-schema URLs the canonical form spells.
var draftURLs = map[int]string{
	4:    "http://json-schema.org/draft-04/schema#",
	6:    "http://json-schema.org/draft-06/schema#",
	7:    "http://json-schema.org/draft-07/schema#",
	2019: "https://json-schema.org/draft/2019-09/schema",
	2020: "https://json-schema.org/draft/2020-12/schema",
}

// lookup finds the document a reference's absolute URL (without fragment)
// names: one whose URL or name it is, else one whose name it ends with
// after a "/" (a relative name resolved against some base), the longest
// such name winning.
func (s *docSet) lookup(abs string) *document {
	var best *document
	for _, d := range s.docs {
		if abs == d.url || (d.name != "" && abs == d.name) {
			return d
		}
		if d.name != "" && strings.HasSuffix(abs, "/"+strings.TrimPrefix(d.name, "./")) {
			if best == nil || len(d.name) > len(best.name) {
				best = d
			}
		}
	}
	return best
}

// loader gives the library the deps and refuses everything else, so that
// no reference is ever fetched.
type loader struct{ set *docSet }

func (l loader) Load(u string) (any, error) {
	if d := l.set.lookup(u); d != nil {
		return d.v, nil
	}
	return nil, fmt.Errorf("no reference named %q was given with the schema (%d given); references are never fetched", u, len(l.set.docs)-1)
}

func compile(set *docSet) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	// Formats are asserted whatever the draft, so that a payload is
	// validated the same way under every draft and "format" is a
	// constraint Check can reason about.
	c.AssertFormat()
	c.UseLoader(loader{set})
	root := set.docs[0]
	if err := c.AddResource(root.url, root.v); err != nil {
		return nil, fmt.Errorf("schema: %v", err)
	}
	sch, err := c.Compile(root.url)
	if err != nil {
		return nil, fmt.Errorf("schema does not compile: %v", err)
	}
	return sch, nil
}

// Canonical returns the schema's canonical JSON.
func (s *jsonSchema) Canonical() string { return s.canonical }

// Validate checks a JSON payload against the schema. indexes are ignored.
func (s *jsonSchema) Validate(payload []byte, _ []int) error {
	if len(payload) == 0 {
		return errors.New("payload is empty, not a JSON value")
	}
	// One copy of the payload; the decoder's strings and numbers are
	// substrings of it, so they cost no further allocation.
	v, err := decodeJSON(string(payload), schema.MaxDepth)
	if err != nil {
		return fmt.Errorf("payload is not valid JSON: %w", err)
	}
	if err := s.compiled.Validate(v); err != nil {
		return validationError(err)
	}
	return nil
}

// maxReported bounds how many failures one validation error lists.
const maxReported = 5

// validationError flattens the library's error tree into its leaves, each
// with the instance location and the failing keyword.
func validationError(err error) error {
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("payload does not match the schema: %v", err)
	}
	var leaves []*jsonschema.ValidationError
	collectLeaves(verr, &leaves)
	var b strings.Builder
	b.WriteString("payload does not match the schema: ")
	for i, l := range leaves {
		if i == maxReported {
			fmt.Fprintf(&b, "; and %d more", len(leaves)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		msg := l.Error()
		if kw := l.ErrorKind.KeywordPath(); len(kw) > 0 {
			msg += " (keyword " + strings.Join(kw, "/") + ")"
		}
		b.WriteString(msg)
	}
	return errors.New(b.String())
}

func collectLeaves(e *jsonschema.ValidationError, out *[]*jsonschema.ValidationError) {
	if len(e.Causes) == 0 {
		*out = append(*out, e)
		return
	}
	for _, c := range e.Causes {
		collectLeaves(c, out)
	}
}

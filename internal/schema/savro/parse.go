package savro

import (
	"errors"
	"fmt"

	"github.com/spoolmq/spool/internal/schema"
	"github.com/twmb/avro"
)

// Format parses Avro schemas. The zero value is ready to use.
type Format struct{}

var _ schema.Format = Format{}

const (
	maxDepth = schema.MaxDepth
	// maxTextBytes bounds one schema's text (a reference's or the
	// referencing schema's).
	maxTextBytes = 1 << 20
	// maxJSONDepth bounds the JSON nesting of schema text before the
	// library parses it: a type level takes at most four JSON levels (a
	// record's object, its fields array, a field object, the type), and
	// defaults and properties nest on top, so this admits every schema
	// within maxDepth and stops absurd nesting before it is parsed.
	maxJSONDepth = 4*maxDepth + 64
)

// Schema is a parsed Avro schema. It is immutable and safe for concurrent
// use.
type Schema struct {
	lib  *avro.Schema
	root *node
	// canonical is computed at Parse: it is asked for on every register
	// and lookup.
	canonical string
}

var _ schema.Schema = (*Schema)(nil)

// Parse parses an Avro schema in its JSON form. deps are the schemas it
// references, dependencies first, each under the full name of a named type
// it defines; the schema may use those names as types.
func (Format) Parse(text string, deps []schema.Dep) (schema.Schema, error) {
	s, err := parse(text, deps)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func parse(text string, deps []schema.Dep) (*Schema, error) {
	if len(deps) > schema.MaxDeps {
		return nil, fmt.Errorf("avro schema: %d references, more than the %d allowed", len(deps), schema.MaxDeps)
	}
	var cache avro.SchemaCache
	b := &builder{named: map[string]*node{}, depNames: map[string]bool{}}
	for i, d := range deps {
		if err := parseDep(&cache, b, d); err != nil {
			return nil, fmt.Errorf("avro schema: reference %d (%q): %w", i, truncate(d.Name), err)
		}
	}
	lib, err := parseText(&cache, text)
	if err != nil {
		return nil, fmt.Errorf("avro schema: %w", err)
	}
	b.named = map[string]*node{}
	root, err := b.build(lib.Root(), "", "", 1)
	if err != nil {
		return nil, fmt.Errorf("avro schema: %w", err)
	}
	if err := checkFinite(root); err != nil {
		return nil, fmt.Errorf("avro schema: %w", err)
	}
	s := &Schema{lib: lib, root: root}
	s.canonical = canonical(root)
	return s, nil
}

// parseDep parses one reference into the cache and records the names of
// the types it defines, checking that it defines the name it is
// referenced by.
func parseDep(cache *avro.SchemaCache, b *builder, d schema.Dep) error {
	if d.Name == "" {
		return errors.New("no name")
	}
	lib, err := parseText(cache, d.Text)
	if err != nil {
		return err
	}
	db := &builder{named: map[string]*node{}}
	if _, err := db.build(lib.Root(), "", "", 1); err != nil {
		return err
	}
	if _, ok := db.named[d.Name]; !ok {
		return fmt.Errorf("the schema defines no type named %q", truncate(d.Name))
	}
	for name := range db.named {
		b.depNames[name] = true
	}
	return nil
}

func parseText(cache *avro.SchemaCache, text string) (*avro.Schema, error) {
	if len(text) > maxTextBytes {
		return nil, fmt.Errorf("schema text is %d bytes, more than the %d allowed", len(text), maxTextBytes)
	}
	if err := checkJSONDepth(text); err != nil {
		return nil, err
	}
	return cache.Parse(text)
}

// checkJSONDepth rejects text nested deeper than maxJSONDepth, before a
// recursive parser sees it.
func checkJSONDepth(text string) error {
	depth, inString, escaped := 0, false, false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > maxJSONDepth {
				return fmt.Errorf("JSON nests deeper than %d levels at offset %d", maxJSONDepth, i)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// checkFinite rejects a record that contains itself through record
// fields alone: no value of it can be written, since each would hold
// another. A union, array or map on the way ends the chain (a union can
// pick another branch, an array or map can be empty).
func checkFinite(root *node) error {
	var records []*node
	walkNodes(root, func(n *node) {
		if n.kind == kRecord {
			records = append(records, n)
		}
	})
	state := make(map[*node]uint8, len(records)) // 1: on the path, 2: done
	var visit func(n *node) error
	visit = func(n *node) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("record %q contains itself through record fields only, so no value of it can be written", truncate(n.name))
		case 2:
			return nil
		}
		state[n] = 1
		for _, f := range n.fields {
			if f.typ.kind == kRecord {
				if err := visit(f.typ); err != nil {
					return err
				}
			}
		}
		state[n] = 2
		return nil
	}
	for _, r := range records {
		if err := visit(r); err != nil {
			return err
		}
	}
	return nil
}

// walkNodes calls fn once on every node reachable from root.
func walkNodes(root *node, fn func(*node)) {
	seen := map[*node]bool{}
	var walk func(n *node)
	walk = func(n *node) {
		if seen[n] {
			return
		}
		seen[n] = true
		fn(n)
		for _, f := range n.fields {
			walk(f.typ)
		}
		for _, b := range n.branches {
			walk(b)
		}
		if n.items != nil {
			walk(n.items)
		}
		if n.values != nil {
			walk(n.values)
		}
	}
	walk(root)
}

// truncate shortens names and symbols taken from input for messages.
func truncate(s string) string {
	const limit = 100
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}

package savro

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spoolmq/spool/internal/schema"
	"github.com/twmb/avro"
)

// The compatibility rules. The names are Confluent's Avro incompatibility
// types where one exists.
const (
	// RuleTypeMismatch: the writer's type cannot be read as the reader's
	// (neither the same kind nor a promotion).
	RuleTypeMismatch = "TYPE_MISMATCH"
	// RuleNameMismatch: a record, enum or fixed has another name than the
	// writer's, and none of its aliases is the writer's name.
	RuleNameMismatch = "NAME_MISMATCH"
	// RuleFixedSizeMismatch: a fixed's size differs from the writer's.
	RuleFixedSizeMismatch = "FIXED_SIZE_MISMATCH"
	// RuleMissingEnumSymbols: the writer's enum has symbols the reader's
	// lacks, and the reader's has no default symbol.
	RuleMissingEnumSymbols = "MISSING_ENUM_SYMBOLS"
	// RuleReaderFieldMissingDefault: a reader field that the writer does
	// not have (by name or alias) has no default.
	RuleReaderFieldMissingDefault = "READER_FIELD_MISSING_DEFAULT_VALUE"
	// RuleMissingUnionBranch: the reader is a union and no branch of it
	// can read a type (or a union branch) the writer has.
	RuleMissingUnionBranch = "MISSING_UNION_BRANCH"
	// RuleDecimalMismatch: both are decimals with different precision or
	// scale, which would read the digits as another number.
	RuleDecimalMismatch = "DECIMAL_MISMATCH"
	// RuleAmbiguousField: two writer fields map to one reader field, one by
	// name and one by alias or both by alias.
	RuleAmbiguousField = "AMBIGUOUS_FIELD"
)

// Check returns the ways in which data written with writer cannot be read
// with s, following Avro schema resolution. Issues come in the reader's
// field order, and a writer union's in its branch order.
//
// Whether the pair is compatible is the library's verdict
// (avro.CheckCompatibility); it stops at the first problem, so the issues
// themselves come from a walk of both schemas that goes on after one.
func (s *Schema) Check(writer schema.Schema) []schema.Issue {
	w, ok := writer.(*Schema)
	if !ok {
		return []schema.Issue{{Rule: RuleTypeMismatch, Path: "/",
			Message: fmt.Sprintf("the writer schema is not an Avro schema (%T)", writer)}}
	}
	err := avro.CheckCompatibility(w.lib, s.lib)
	if err == nil {
		return nil
	}
	issues := walkCompat(s.root, w.root)
	if len(issues) == 0 {
		// The walk and the library disagree; the library decides, and its
		// own report is better than none.
		issues = []schema.Issue{libIssue(err)}
	}
	return issues
}

// walkCompat lists the issues reading data of w with r: the resolution
// rules of the Avro specification, gone through completely.
func walkCompat(r, w *node) []schema.Issue {
	c := &checker{seen: map[[2]*node]bool{}}
	c.pair(r, w, "")
	return c.issues
}

type checker struct {
	issues []schema.Issue
	// seen holds the named pairs already compared, which ends the walk of
	// recursive types and reports a shared type's issues once.
	seen map[[2]*node]bool
}

func (c *checker) add(rule, path, format string, args ...any) {
	c.issues = append(c.issues, schema.Issue{Rule: rule, Path: pathOrRoot(path), Message: fmt.Sprintf(format, args...)})
}

func (c *checker) pair(r, w *node, path string) {
	switch {
	case w.kind == kUnion:
		for i, wb := range w.branches {
			if r.kind != kUnion {
				c.pair(r, wb, path)
				continue
			}
			if rb := selectBranch(r, wb); rb != nil {
				c.pair(rb, wb, path)
			} else {
				c.add(RuleMissingUnionBranch, path, "the writer's union branch %d (%s) matches no branch of the reader's union", i, describe(wb))
			}
		}
	case r.kind == kUnion:
		if rb := selectBranch(r, w); rb != nil {
			c.pair(rb, w, path)
		} else {
			c.add(RuleMissingUnionBranch, path, "the writer's %s matches no branch of the reader's union", describe(w))
		}
	case r.kind == w.kind:
		c.sameKind(r, w, path)
	case !promotes(w.kind, r.kind):
		c.add(RuleTypeMismatch, path, "the writer's %s cannot be read as the reader's %s", describe(w), describe(r))
	}
}

func (c *checker) sameKind(r, w *node, path string) {
	switch r.kind {
	case kRecord, kEnum, kFixed:
		key := [2]*node{r, w}
		if c.seen[key] {
			return
		}
		c.seen[key] = true
		if !namesMatch(r, w) {
			c.add(RuleNameMismatch, path, "the reader's %s %s does not have the writer's name %s, nor an alias for it", r.kind, truncate(r.name), truncate(w.name))
			return
		}
	}
	switch r.kind {
	case kRecord:
		c.record(r, w, path)
	case kEnum:
		c.enum(r, w, path)
	case kArray:
		c.pair(r.items, w.items, path+"/items")
	case kMap:
		c.pair(r.values, w.values, path+"/values")
	case kFixed:
		if r.size != w.size {
			c.add(RuleFixedSizeMismatch, path, "the reader's fixed %s has size %d, the writer's %d", truncate(r.name), r.size, w.size)
			return
		}
	}
	if r.logical == "decimal" && w.logical == "decimal" && (r.precision != w.precision || r.scale != w.scale) {
		c.add(RuleDecimalMismatch, path, "the reader's decimal(%d,%d) differs from the writer's decimal(%d,%d)", r.precision, r.scale, w.precision, w.scale)
	}
}

func (c *checker) record(r, w *node, path string) {
	byName := make(map[string]*field, len(w.fields))
	for i := range w.fields {
		byName[w.fields[i].name] = &w.fields[i]
	}
	for i := range r.fields {
		rf := &r.fields[i]
		fpath := path + "/fields/" + rf.name
		wf := writerField(rf, byName)
		switch {
		case wf != nil:
			c.pair(rf.typ, wf.typ, fpath)
		case !rf.hasDef:
			c.add(RuleReaderFieldMissingDefault, fpath, "the reader's field %s is not in the writer's record %s and has no default", truncate(rf.name), truncate(w.name))
		}
	}
	c.claims(r, w, path)
}

// claims reports writer fields that two of them resolve to one reader
// field, one by name and one by alias, or both by alias.
func (c *checker) claims(r, w *node, path string) {
	claimedBy := map[int]string{}
	for _, wf := range w.fields {
		ri := readerFieldFor(r, wf.name)
		if ri < 0 {
			continue
		}
		if other, ok := claimedBy[ri]; ok {
			c.add(RuleAmbiguousField, path+"/fields/"+r.fields[ri].name,
				"the writer's fields %s and %s both resolve to the reader's field %s", truncate(other), truncate(wf.name), truncate(r.fields[ri].name))
			continue
		}
		claimedBy[ri] = wf.name
	}
}

// readerFieldFor is the reader field a writer field's name resolves to:
// the one with that name, else the first with it as an alias.
func readerFieldFor(r *node, name string) int {
	for i := range r.fields {
		if r.fields[i].name == name {
			return i
		}
	}
	for i := range r.fields {
		if slices.Contains(r.fields[i].aliases, name) {
			return i
		}
	}
	return -1
}

func writerField(rf *field, byName map[string]*field) *field {
	if wf, ok := byName[rf.name]; ok {
		return wf
	}
	for _, a := range rf.aliases {
		if wf, ok := byName[a]; ok {
			return wf
		}
	}
	return nil
}

func (c *checker) enum(r, w *node, path string) {
	if r.hasDef {
		return
	}
	var missing []string
	for _, sym := range w.symbols {
		if !slices.Contains(r.symbols, sym) {
			missing = append(missing, sym)
		}
	}
	if len(missing) > 0 {
		c.add(RuleMissingEnumSymbols, path, "the reader's enum %s lacks the writer's symbols %s and has no default", truncate(r.name), symbolList(missing))
	}
}

func symbolList(syms []string) string {
	const shown = 10
	list := make([]string, 0, shown)
	for _, s := range syms[:min(len(syms), shown)] {
		list = append(list, truncate(s))
	}
	out := strings.Join(list, ", ")
	if len(syms) > shown {
		out += fmt.Sprintf(" and %d more", len(syms)-shown)
	}
	return out
}

// namesMatch: named types match by full name, by unqualified name (the
// specification's rule across namespaces), or by a reader alias: a
// qualified alias matches the full name, one written without a namespace
// also the unqualified name.
func namesMatch(r, w *node) bool {
	return r.name == w.name || shortName(r.name) == shortName(w.name) ||
		slices.Contains(r.aliases, w.name) || slices.Contains(r.bareAliases, shortName(w.name))
}

// selectBranch picks the reader union's branch for a writer type: the
// first of the same kind and full name (or alias), else the first of the
// same kind and unqualified name, else the first the writer's type
// promotes to. Fixed types match only with the same size.
func selectBranch(u, w *node) *node {
	named := w.kind == kRecord || w.kind == kEnum || w.kind == kFixed
	sameKind := func(rb *node) bool {
		return rb.kind == w.kind && (w.kind != kFixed || rb.size == w.size)
	}
	for _, rb := range u.branches {
		if sameKind(rb) && (!named || rb.name == w.name || slices.Contains(rb.aliases, w.name)) {
			return rb
		}
	}
	if named {
		for _, rb := range u.branches {
			if sameKind(rb) && (shortName(rb.name) == shortName(w.name) || slices.Contains(rb.bareAliases, shortName(w.name))) {
				return rb
			}
		}
	}
	for _, rb := range u.branches {
		if rb.kind != w.kind && promotes(w.kind, rb.kind) {
			return rb
		}
	}
	return nil
}

// promotes reports whether the specification lets a writer's w be read as
// a reader's r of another kind.
func promotes(w, r kind) bool {
	switch w {
	case kInt:
		return r == kLong || r == kFloat || r == kDouble
	case kLong:
		return r == kFloat || r == kDouble
	case kFloat:
		return r == kDouble
	case kString:
		return r == kBytes
	case kBytes:
		return r == kString
	}
	return false
}

// describe names a type for messages.
func describe(n *node) string {
	switch n.kind {
	case kRecord, kEnum, kFixed:
		return n.kind.String() + " " + truncate(n.name)
	case kArray:
		return "array of " + describe(n.items)
	case kMap:
		return "map of " + describe(n.values)
	case kUnion:
		return "union"
	}
	return n.kind.String()
}

// libIssue turns the library's report into an issue.
func libIssue(err error) schema.Issue {
	var ce *avro.CompatibilityError
	if !errors.As(err, &ce) {
		return schema.Issue{Rule: RuleTypeMismatch, Path: "/", Message: err.Error()}
	}
	rule := RuleTypeMismatch
	switch d := ce.Detail; {
	case strings.Contains(d, "names do not match"):
		rule = RuleNameMismatch
	case strings.Contains(d, "fixed sizes"):
		rule = RuleFixedSizeMismatch
	case strings.Contains(d, "enum symbol"):
		rule = RuleMissingEnumSymbols
	case strings.Contains(d, "no default"):
		rule = RuleReaderFieldMissingDefault
	case strings.Contains(d, "union branch"):
		rule = RuleMissingUnionBranch
	case strings.Contains(d, "decimal"):
		rule = RuleDecimalMismatch
	case strings.Contains(d, "both resolve"):
		rule = RuleAmbiguousField
	}
	return schema.Issue{Rule: rule, Path: ce.Path, Message: ce.Error()}
}

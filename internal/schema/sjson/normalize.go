package sjson

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/spoolmq/spool/internal/schema"
)

// Keywords by what they hold, for the walks over subschemas.
var (
	// oneSchema keywords hold a subschema.
	oneSchema = map[string]bool{
		"additionalProperties": true, "additionalItems": true, "items": true,
		"not": true, "if": true, "then": true, "else": true, "contains": true,
		"propertyNames": true, "unevaluatedProperties": true,
		"unevaluatedItems": true, "contentSchema": true,
	}
	// schemaMap keywords hold an object of subschemas.
	schemaMap = map[string]bool{
		"properties": true, "patternProperties": true, "definitions": true,
		"$defs": true, "dependentSchemas": true, "dependencies": true,
	}
	// schemaList keywords hold an array of subschemas ("items" may too).
	schemaList = map[string]bool{
		"allOf": true, "anyOf": true, "oneOf": true, "prefixItems": true, "items": true,
	}
	// openWhenTrue keywords mean nothing when true or {}.
	openWhenTrue = map[string]bool{
		"additionalProperties": true, "additionalItems": true, "items": true,
		"unevaluatedProperties": true, "unevaluatedItems": true, "propertyNames": true,
	}
	// zeroDefault keywords mean nothing when 0 or false.
	zeroDefault = map[string]bool{
		"minLength": true, "minItems": true, "minProperties": true, "uniqueItems": true,
	}
)

// normalize returns a copy of the schema v with redundant spellings made
// uniform: "type" as a sorted set (a lone type as a string), "required"
// and "enum" as sorted sets, "$schema" in one spelling (and omitted for
// draft 7, the default), and keywords at their default value (true, {},
// 0, false) dropped. It fails on subschemas nested deeper than
// schema.MaxDepth; at is the JSON pointer the error names.
func normalize(v any, draft, depth int, at string) (any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return v, nil
	}
	if depth > schema.MaxDepth {
		return nil, fmt.Errorf("schema nests subschemas deeper than %d, at %s", schema.MaxDepth, at)
	}
	out := make(map[string]any, len(m))
	for k, val := range m {
		n, keep, err := normalizeKeyword(k, val, draft, depth, at+"/"+escapePointer(k))
		if err != nil {
			return nil, err
		}
		if keep {
			out[k] = n
		}
	}
	if depth == 0 && draft == 7 {
		delete(out, "$schema")
	}
	return out, nil
}

func normalizeKeyword(k string, val any, draft, depth int, at string) (any, bool, error) {
	switch {
	case openWhenTrue[k] && isTrueSchema(val):
		return nil, false, nil
	case zeroDefault[k] && (val == false || isNumber(val, "0")):
		return nil, false, nil
	case draft == 4 && (k == "exclusiveMaximum" || k == "exclusiveMinimum") && val == false:
		return nil, false, nil
	case k == "$schema":
		if m, ok := val.(string); ok {
			if d, err := draftOf(map[string]any{"$schema": m}); err == nil {
				return draftURLs[d], true, nil
			}
		}
		return val, true, nil
	case k == "type":
		return normalizeType(val), true, nil
	case k == "required":
		set, ok := stringSet(val)
		if !ok {
			return val, true, nil
		}
		return set, len(set) > 0, nil
	case k == "enum":
		return canonicalSet(val), true, nil
	case oneSchema[k]:
		if _, isList := val.([]any); !isList {
			n, err := normalize(val, draft, depth+1, at)
			return n, true, err
		}
	}
	if schemaList[k] {
		if list, ok := val.([]any); ok {
			out := make([]any, len(list))
			for i, e := range list {
				n, err := normalize(e, draft, depth+1, fmt.Sprintf("%s/%d", at, i))
				if err != nil {
					return nil, false, err
				}
				out[i] = n
			}
			return out, true, nil
		}
	}
	if schemaMap[k] {
		if sm, ok := val.(map[string]any); ok {
			out := make(map[string]any, len(sm))
			for name, e := range sm {
				n, err := normalize(e, draft, depth+1, at+"/"+escapePointer(name))
				if err != nil {
					return nil, false, err
				}
				out[name] = n
			}
			return out, true, nil
		}
	}
	return val, true, nil
}

// isTrueSchema reports whether v accepts everything by its spelling: true
// or an empty object.
func isTrueSchema(v any) bool {
	if b, ok := v.(bool); ok {
		return b
	}
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}

func isNumber(v any, norm string) bool {
	n, ok := v.(json.Number)
	return ok && normNumber(string(n)) == norm
}

// normalizeType spells "type" as a sorted set of names, or the one name.
func normalizeType(v any) any {
	switch t := v.(type) {
	case []any:
		set, ok := stringSet(t)
		if !ok {
			return v
		}
		if len(set) == 1 {
			return set[0]
		}
		return set
	default:
		return v
	}
}

// stringSet reads an array of strings as a sorted set.
func stringSet(v any) ([]any, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	ss := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, false
		}
		ss = append(ss, s)
	}
	slices.Sort(ss)
	ss = slices.Compact(ss)
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out, true
}

// canonicalSet orders an array's values by their canonical text and drops
// repeats, so that an enum's order and spelling do not matter.
func canonicalSet(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	type keyed struct {
		key string
		v   any
	}
	ks := make([]keyed, len(list))
	for i, e := range list {
		ks[i] = keyed{canonical(e), e}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	ks = slices.CompactFunc(ks, func(a, b keyed) bool { return a.key == b.key })
	out := make([]any, len(ks))
	for i, k := range ks {
		out[i] = k.v
	}
	return out
}

// escapePointer escapes a JSON pointer token.
func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

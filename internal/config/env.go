package config

import (
	"fmt"
	"reflect"
	"strings"
)

// ApplyEnv sets fields of dst, a non-nil pointer to a config struct, from
// environment variables. environ is in the form of os.Environ: "NAME=value"
// entries.
//
// A key's variable is prefix, an underscore and the key's dotted path upper
// cased with dots and dashes turned to underscores: with prefix "SPOOL",
// SPOOL_HTTP_ADDR sets http.addr and SPOOL_LOG_SEGMENT_SIZE sets
// log.segment-size. A trailing underscore on prefix is optional; names are
// case-sensitive, so spool_http_addr is not matched.
//
// Values are read as the field's type, with no quoting: durations and
// sizes as in YAML, booleans as strconv.ParseBool reads them (1, t, true,
// 0, f, false, ...), and a list as comma-separated strings with spaces
// around each trimmed ("" gives an empty list, so no item can contain a
// comma). A set but empty variable is a value like any other: an empty
// string, or an error for a number.
//
// Every variable that begins with the prefix and underscore must name a
// key: unknown ones, ones that name a section, and bad values are all
// reported, as an *Errors, and on any error dst is left unchanged. A
// caller that uses such a variable for something else, such as one that
// names the config file, must remove it from environ first.
//
// ApplyEnv returns a plain error beginning "config: " when dst is not a
// pointer to a struct, has a field of an unsupported type, or has two keys
// with the same variable name (such as "a-b" and "a_b"), or when prefix is
// empty.
func ApplyEnv(prefix string, environ []string, dst any) error {
	v, si, err := structTarget("ApplyEnv", dst)
	if err != nil {
		return err
	}
	prefix = strings.TrimSuffix(prefix, "_")
	if prefix == "" {
		return fmt.Errorf("config: ApplyEnv needs a prefix")
	}
	prefix += "_"

	type target struct {
		path  string
		field *field
		index []int // from the top struct
	}
	vars := make(map[string]target)
	var names []string // for suggestions, in field order
	var collision error
	var walk func(si *structInfo, path string, index []int)
	walk = func(si *structInfo, path string, index []int) {
		for _, f := range si.fields {
			p := joinPath(path, f.name)
			ix := append(index[:len(index):len(index)], f.index)
			name := prefix + envName(p)
			if prev, dup := vars[name]; dup && collision == nil {
				collision = fmt.Errorf("config: keys %s and %s both map to variable %s", prev.path, p, name)
			}
			vars[name] = target{p, f, ix}
			if f.kind == kindStruct {
				walk(f.sub, p, ix)
			} else {
				names = append(names, name)
			}
		}
	}
	walk(si, "", nil)
	if collision != nil {
		return collision
	}

	tmp := reflect.New(v.Type()).Elem()
	tmp.Set(v)
	var errs []*Error
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		t, known := vars[name]
		switch {
		case !known:
			msg := "unknown environment variable " + name
			if s := suggest(name, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			errs = append(errs, &Error{Msg: msg})
			continue
		case t.field.kind == kindStruct:
			errs = append(errs, &Error{Path: t.path, Msg: name + ": names a section; set its keys one by one"})
			continue
		}
		fv := tmp.FieldByIndex(t.index)
		if t.field.kind == kindStrings {
			setList(fv, t.field.typ, val)
			continue
		}
		if err := setText(fv, t.field.kind, val, ""); err != nil {
			errs = append(errs, &Error{Path: t.path, Msg: name + ": " + err.Error()})
		}
	}
	if len(errs) > 0 {
		return &Errors{List: errs}
	}
	v.Set(tmp)
	return nil
}

// envName is the variable name of a key path, without the prefix.
func envName(path string) string {
	return strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

// setList sets a list field from comma-separated text.
func setList(v reflect.Value, typ reflect.Type, text string) {
	if strings.TrimSpace(text) == "" {
		v.Set(reflect.Zero(typ))
		return
	}
	parts := strings.Split(text, ",")
	list := reflect.MakeSlice(typ, len(parts), len(parts))
	for i, p := range parts {
		list.Index(i).SetString(strings.TrimSpace(p))
	}
	v.Set(list)
}

package config

import (
	"bytes"
	"encoding"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spoolmq/spool/bytesize"
)

// Marshal prints the config struct src (a struct or a pointer to one) as
// YAML, every key included, in field order, such as for
// "spool serve --print-config". Durations and sizes print in their string
// forms ("1h30m0s", "64MiB"), strings are quoted where YAML would read
// them as something else, and an empty list prints as []. A field whose
// type implements encoding.TextUnmarshaler prints with its MarshalText
// method or else its String method; it is an error if it has neither.
//
// Loading the output into a zero value of the same struct gives back an
// equal struct, but for two cases: a non-nil empty list comes back nil,
// and a negative bytesize.Size, which Load refuses, does not come back at all.
// A NaN float comes back as NaN, which is not equal to itself.
func Marshal(src any) ([]byte, error) {
	v, si, err := structSource("Marshal", src)
	if err != nil {
		return nil, err
	}
	root, err := encodeStruct(v, si, "")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return buf.Bytes(), nil
}

func encodeStruct(v reflect.Value, si *structInfo, path string) (*yaml.Node, error) {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if len(si.fields) == 0 {
		n.Style = yaml.FlowStyle
	}
	for _, f := range si.fields {
		p := joinPath(path, f.name)
		val, err := encodeValue(v.Field(f.index), f, p)
		if err != nil {
			return nil, err
		}
		n.Content = append(n.Content, scalar(tagStr, f.name), val)
	}
	return n, nil
}

func scalar(tag, text string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: text}
	if text == "<<" {
		// The YAML library would print it plain, and read that back as
		// a merge key.
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

func encodeValue(v reflect.Value, f *field, path string) (*yaml.Node, error) {
	switch f.kind {
	case kindStruct:
		return encodeStruct(v, f.sub, path)
	case kindStrings:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			n.Content = append(n.Content, scalar(tagStr, v.Index(i).String()))
		}
		return n, nil
	case kindString:
		return scalar(tagStr, v.String()), nil
	case kindBool:
		return scalar(tagBool, strconv.FormatBool(v.Bool())), nil
	case kindInt:
		return scalar(tagInt, strconv.FormatInt(v.Int(), 10)), nil
	case kindUint:
		return scalar(tagInt, strconv.FormatUint(v.Uint(), 10)), nil
	case kindFloat:
		return scalar(tagFloat, formatFloat(v.Float(), v.Type().Bits())), nil
	case kindDuration:
		return scalar(tagStr, time.Duration(v.Int()).String()), nil
	case kindSize:
		if v.Int() == 0 {
			return scalar(tagInt, "0"), nil // plain, where the string "0" is quoted
		}
		return scalar(tagStr, bytesize.Size(v.Int()).String()), nil
	case kindText:
		// Marshalers may have pointer receivers: call them on a copy.
		p := reflect.New(v.Type())
		p.Elem().Set(v)
		switch m := p.Interface().(type) {
		case encoding.TextMarshaler:
			text, err := m.MarshalText()
			if err != nil {
				return nil, fmt.Errorf("config: %s: %w", path, err)
			}
			return scalar(tagStr, string(text)), nil
		case fmt.Stringer:
			return scalar(tagStr, m.String()), nil
		}
		return nil, fmt.Errorf("config: %s: type %s has UnmarshalText but neither MarshalText nor String to print it", path, v.Type())
	}
	panic("config: encodeValue: unknown kind")
}

// formatFloat writes f so that YAML reads it back as a float: with a point
// or exponent, or as .inf, -.inf or .nan.
func formatFloat(f float64, bits int) string {
	switch {
	case math.IsInf(f, 1):
		return ".inf"
	case math.IsInf(f, -1):
		return "-.inf"
	case math.IsNaN(f):
		return ".nan"
	}
	s := strconv.FormatFloat(f, 'g', -1, bits)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

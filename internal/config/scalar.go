package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spoolmq/spool/bytesize"
)

// YAML tags of the values that setText handles.
const (
	tagStr       = "!!str"
	tagInt       = "!!int"
	tagFloat     = "!!float"
	tagBool      = "!!bool"
	tagNull      = "!!null"
	tagTimestamp = "!!timestamp"
	tagMerge     = "!!merge"
)

// setText stores the scalar text in v, a field of kind k. tag is the text's
// YAML tag, such as "!!int" for 8080 or "!!str" for "8080", and is checked
// against the field's type; it is "" for text from the environment, which
// is read as whatever the field holds.
func setText(v reflect.Value, k kind, text, tag string) error {
	env := tag == ""
	switch k {
	case kindString:
		if !env && tag != tagStr {
			return fmt.Errorf("expected a string, got %s (quote it to use it as a string)", describeScalar(tag, text))
		}
		v.SetString(text)
	case kindBool:
		b, err := parseBool(text, tag)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case kindInt:
		if !env && tag != tagInt && !(tag == tagFloat && looksInteger(text)) {
			return fmt.Errorf("expected an integer, got %s", describeScalar(tag, text))
		}
		n, err := parseInt(text, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case kindUint:
		if !env && tag != tagInt && !(tag == tagFloat && looksInteger(text)) {
			return fmt.Errorf("expected a non-negative integer, got %s", describeScalar(tag, text))
		}
		n, err := parseUint(text, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case kindFloat:
		if !env && tag != tagFloat && tag != tagInt {
			return fmt.Errorf("expected a number, got %s", describeScalar(tag, text))
		}
		f, err := parseFloat(text, tag, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case kindDuration:
		if !env && tag != tagStr && tag != tagInt && tag != tagFloat {
			return fmt.Errorf("expected a duration such as \"30s\", got %s", describeScalar(tag, text))
		}
		d, err := parseDuration(text, tag)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case kindSize:
		var (
			b   bytesize.Size
			err error
		)
		switch tag {
		case "":
			b, err = bytesize.Parse(text)
		case tagStr, tagFloat, tagInt:
			err = b.UnmarshalYAML(&yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: text})
		default:
			err = fmt.Errorf("expected a size such as \"64MiB\", got %s", describeScalar(tag, text))
		}
		if err != nil {
			return err
		}
		v.SetInt(int64(b))
	case kindText:
		switch tag {
		case "", tagStr, tagInt, tagFloat, tagBool, tagTimestamp:
		default:
			return fmt.Errorf("unexpected %s", describeScalar(tag, text))
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(text)); err != nil {
			return fmt.Errorf("invalid value %s: %v", quoteShort(text), err)
		}
	default:
		panic("config: setText on a field that is not a scalar")
	}
	return nil
}

func parseBool(text, tag string) (bool, error) {
	if tag == "" {
		// The environment's usual spellings: 1, t, true, 0, f, false...
		b, err := strconv.ParseBool(text)
		if err != nil {
			return false, fmt.Errorf("invalid boolean %s (want true or false)", quoteShort(text))
		}
		return b, nil
	}
	if tag != tagBool {
		return false, fmt.Errorf("expected true or false, got %s", describeScalar(tag, text))
	}
	return strings.EqualFold(text, "true"), nil
}

var integerRE = regexp.MustCompile(`^[-+]?[0-9_]+$`)

// looksInteger reports whether text is written as an integer even though
// YAML read it as a float, as it does for integers too large for 64 bits
// and for decimals with a leading zero such as 09.
func looksInteger(text string) bool { return integerRE.MatchString(text) }

// parseInt reads an integer as YAML writes it (decimal, or with a 0x, 0o or
// 0b prefix, or a leading 0 for octal; underscores allowed) into bits bits.
func parseInt(text string, bits int) (int64, error) {
	n, err := strconv.ParseInt(strings.ReplaceAll(text, "_", ""), 0, bits)
	if errors.Is(err, strconv.ErrRange) {
		lo, hi := -int64(1)<<(bits-1), int64(1)<<(bits-1)-1
		return 0, fmt.Errorf("%s is out of range (want %d to %d)", plainShort(text), lo, hi)
	}
	if err != nil {
		return 0, fmt.Errorf("invalid integer %s", quoteShort(text))
	}
	return n, nil
}

// parseUint is parseInt for unsigned fields.
func parseUint(text string, bits int) (uint64, error) {
	clean := strings.ReplaceAll(text, "_", "")
	if strings.HasPrefix(clean, "-") {
		if _, err := strconv.ParseInt(clean, 0, 64); err == nil || errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s is out of range (want 0 to %d)", plainShort(text), uint64(math.MaxUint64)>>(64-bits))
		}
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(clean, "+"), 0, bits)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%s is out of range (want 0 to %d)", plainShort(text), uint64(math.MaxUint64)>>(64-bits))
	}
	if err != nil {
		return 0, fmt.Errorf("invalid integer %s", quoteShort(text))
	}
	return n, nil
}

// yamlSpecialFloats are YAML's spellings of infinity and not-a-number.
var yamlSpecialFloats = map[string]float64{
	".inf": math.Inf(1), "+.inf": math.Inf(1), "-.inf": math.Inf(-1), ".nan": math.NaN(),
}

// parseFloat reads a number into bits bits. tag is as for setText.
func parseFloat(text, tag string, bits int) (float64, error) {
	if f, ok := yamlSpecialFloats[strings.ToLower(text)]; ok {
		return f, nil
	}
	if tag == tagInt {
		// YAML integers may have prefixes that ParseFloat does not read.
		if n, err := parseInt(text, 64); err == nil {
			return float64(n), nil
		}
		if n, err := parseUint(text, 64); err == nil {
			return float64(n), nil
		}
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(text, "_", ""), bits)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%s is out of range for a %d-bit float", plainShort(text), bits)
	}
	if err != nil {
		return 0, fmt.Errorf("invalid number %s", quoteShort(text))
	}
	return f, nil
}

// parseDuration reads a duration such as "30s" or "1h30m". Bare numbers
// are refused, 0 included, so that no one has to guess their unit; tag is
// as for setText.
func parseDuration(text, tag string) (time.Duration, error) {
	t := strings.TrimSpace(text)
	if tag == tagInt || tag == tagFloat || numberRE.MatchString(t) {
		example := "30s"
		if looksInteger(t) {
			example = strings.ReplaceAll(t, "_", "") + "s"
		}
		return 0, fmt.Errorf("bare number %s is not a duration: add a unit, such as %q", plainShort(t), example)
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %s (want a number and a unit of ns, us, ms, s, m or h, such as \"1h30m\")", quoteShort(text))
	}
	return d, nil
}

var numberRE = regexp.MustCompile(`^[-+]?([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9][0-9_]*)([eE][-+]?[0-9]+)?$`)

// describeScalar names a scalar for a message: `integer 8080`,
// `string "abc"`, `null`.
func describeScalar(tag, text string) string {
	switch tag {
	case tagStr, "":
		return "string " + quoteShort(text)
	case tagInt:
		return "integer " + plainShort(text)
	case tagFloat:
		return "number " + plainShort(text)
	case tagBool:
		return "boolean " + plainShort(text)
	case tagNull:
		return "null"
	case tagTimestamp:
		return "timestamp " + plainShort(text)
	}
	return fmt.Sprintf("value %s tagged %s", quoteShort(text), plainShort(tag))
}

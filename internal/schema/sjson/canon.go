package sjson

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// appendCanonical appends v's canonical JSON: object keys sorted by their
// bytes, no whitespace, numbers in one spelling per value, strings escaped
// only where JSON requires it.
func appendCanonical(b []byte, v any) []byte {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendCanonical(b, v[k])
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, e)
		}
		return append(b, ']')
	case string:
		return appendString(b, v)
	case json.Number:
		return append(b, normNumber(string(v))...)
	case bool:
		return strconv.AppendBool(b, v)
	default:
		return append(b, "null"...)
	}
}

// canonical returns v's canonical JSON as a string.
func canonical(v any) string {
	return string(appendCanonical(nil, v))
}

// appendString escapes '"', '\\' and control characters, the only ones JSON
// requires, and writes everything else as UTF-8, so that "\u00e9", "\xe9"
// spelled raw, and "\/" versus "/" all come out the same.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			_, n := utf8.DecodeRuneInString(s[i:])
			b = append(b, s[i:i+n]...)
			i += n
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}

// normNumber rewrites a JSON number (already checked by scanNumber) in one
// spelling per value: 1, 1.0, 10e-1 and 0.1e1 all become "1"; -0 becomes
// "0". The value is split into its significant digits and a power of ten,
// then written plainly when that is short and in exponent form otherwise,
// so that the text never grows far beyond the input's.
func normNumber(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		exp, _ = strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digs := intPart + frac
	exp -= len(frac)
	// value = digs × 10^exp; strip the zeros that do not change it.
	trimmed := strings.TrimLeft(digs, "0")
	if trimmed == "" {
		return "0"
	}
	t := strings.TrimRight(trimmed, "0")
	exp += len(trimmed) - len(t)
	var out string
	switch {
	case exp >= 0 && len(t)+exp <= 21:
		out = t + strings.Repeat("0", exp)
	case exp < 0 && -exp < len(t):
		out = t[:len(t)+exp] + "." + t[len(t)+exp:]
	case exp < 0 && -exp-len(t) <= 6:
		out = "0." + strings.Repeat("0", -exp-len(t)) + t
	default:
		out = t + "e" + strconv.Itoa(exp)
	}
	if neg {
		return "-" + out
	}
	return out
}

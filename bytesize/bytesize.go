// Package bytesize is the size in bytes that Spool's command-line flags,
// configuration files, environment variables and server.Config share, so
// that "64MiB" means the same everywhere.
//
// A size is written as a non-negative integer count of bytes ("1048576")
// or as a number and a unit: "512KiB", "64MiB", "10GB". Units are binary
// (KiB, MiB, GiB, TiB, PiB, EiB: powers of 1024) or decimal (KB, MB, GB,
// TB, PB, EB: powers of 1000), in any case; B or no unit means bytes, and
// a space may stand between number and unit. A decimal fraction is
// accepted when the result is a whole number of bytes ("1.5KiB" is 1536,
// "1.5B" is an error). Negative sizes and sizes above math.MaxInt64 bytes
// are errors. Bare letters such as "k" or "M" are rejected as ambiguous.
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Size is a size in bytes, such as a segment size or a request limit. It
// is a command-line flag (pflag.Value), reads itself from YAML and from
// text (encoding.TextUnmarshaler), and prints in the largest binary unit
// that holds it exactly.
type Size int64

// Binary size units, for sizes in code: 64 * bytesize.MiB.
const (
	KiB Size = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
	EiB
)

var units = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15, "eb": 1e18,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50, "eib": 1 << 60,
}

const unitList = "B, KB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB or EiB"

// Parse parses a size written as the package documentation describes,
// such as "64MiB" or "1048576". Its errors begin "invalid size" and quote
// s.
func Parse(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.' || i == 0 && (t[i] == '+' || t[i] == '-')) {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("invalid size %s: sizes cannot be negative", quoteShort(s))
	}
	num = strings.TrimPrefix(num, "+")
	whole, frac, _ := strings.Cut(num, ".")
	if whole+frac == "" || strings.Contains(frac, ".") {
		return 0, fmt.Errorf("invalid size %s: want a number and a unit, such as \"64MiB\"", quoteShort(s))
	}
	mult, ok := units[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("invalid size %s: unknown unit %s (want %s)", quoteShort(s), quoteShort(unit), unitList)
	}
	// Exact arithmetic: whole.frac*mult must be a whole number of bytes
	// that fits in an int64. Bounding the digits first keeps it cheap: a
	// whole part of over 19 digits is too large for any unit, and a
	// fraction whose last non-zero digit is past the 60th place cannot
	// give whole bytes, as no unit has more than 60 factors of 2 or 18
	// of 5.
	whole = strings.TrimLeft(whole, "0")
	frac = strings.TrimRight(frac, "0")
	if len(whole) > 19 {
		return 0, fmt.Errorf("invalid size %s: too large (at most %d bytes)", quoteShort(s), int64(math.MaxInt64))
	}
	if len(frac) > 60 {
		return 0, fmt.Errorf("invalid size %s: not a whole number of bytes", quoteShort(s))
	}
	n, _ := new(big.Int).SetString("0"+whole+frac, 10)
	n.Mul(n, big.NewInt(mult))
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	q, r := new(big.Int).QuoRem(n, scale, new(big.Int))
	if r.Sign() != 0 {
		return 0, fmt.Errorf("invalid size %s: not a whole number of bytes", quoteShort(s))
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("invalid size %s: too large (at most %d bytes)", quoteShort(s), int64(math.MaxInt64))
	}
	return Size(q.Int64()), nil
}

// parseInt reads a YAML integer, such as 1048576, 1_048_576 or 0x100000,
// as a count of bytes.
func parseInt(text string) (Size, error) {
	n, err := strconv.ParseInt(strings.ReplaceAll(text, "_", ""), 0, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) && strings.HasPrefix(text, "-"):
		return 0, fmt.Errorf("invalid size %s: sizes cannot be negative", plainShort(text))
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("invalid size %s: too large (at most %d bytes)", plainShort(text), int64(math.MaxInt64))
	case err != nil:
		return 0, fmt.Errorf("invalid size %s", plainShort(text))
	case n < 0:
		return 0, fmt.Errorf("invalid size %s: sizes cannot be negative", plainShort(text))
	}
	return Size(n), nil
}

// String returns the size in the largest binary unit that holds it
// exactly: "64MiB", "1GiB", "1536B"; zero is "0". Parse reads it back.
func (s Size) String() string {
	if s == 0 {
		// Not "0B": a flag whose default prints as "0" shows no default.
		return "0"
	}
	sign, u := "", uint64(s)
	if s < 0 {
		sign, u = "-", -u
	}
	names := [...]string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for i < len(names)-1 && u%1024 == 0 {
		u /= 1024
		i++
	}
	return sign + strconv.FormatUint(u, 10) + names[i]
}

// MarshalText returns s.String(), so that sizes print well in any text
// format.
func (s Size) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

// MarshalYAML returns s.String(), but zero as the integer 0 (which YAML
// would otherwise quote).
func (s Size) MarshalYAML() (any, error) {
	if s == 0 {
		return 0, nil
	}
	return s.String(), nil
}

// UnmarshalText parses text with Parse.
func (s *Size) UnmarshalText(text []byte) error {
	v, err := Parse(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Set parses v with Parse, as a command-line flag (pflag.Value).
func (s *Size) Set(v string) error { return s.UnmarshalText([]byte(v)) }

// Type names the flag's value in command-line help (pflag.Value).
func (s *Size) Type() string { return "size" }

// UnmarshalYAML reads a size from a YAML scalar: an integer count of
// bytes (1048576, 0x100000, 1_048_576) or a string Parse reads ("64MiB",
// "1.5KiB").
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	var (
		v   Size
		err error
	)
	switch tag := n.ShortTag(); {
	case n.Kind != yaml.ScalarNode:
		err = errors.New("expected a size such as \"64MiB\", got a list or mapping")
	case tag == "!!int":
		v, err = parseInt(n.Value)
	case tag == "!!str" || tag == "!!float":
		v, err = Parse(n.Value)
	default:
		err = fmt.Errorf("expected a size such as \"64MiB\", got %s %s", strings.TrimPrefix(tag, "!!"), quoteShort(n.Value))
	}
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// quoteShort quotes s for a message, cut after 40 characters.
func quoteShort(s string) string {
	const limit = 40
	r := []rune(s)
	if len(r) > limit {
		return fmt.Sprintf("%q...", string(r[:limit]))
	}
	return fmt.Sprintf("%q", s)
}

// plainShort is quoteShort for text shown unquoted, such as a number;
// text that is not printable is quoted after all.
func plainShort(s string) string {
	for _, c := range s {
		if !unicode.IsPrint(c) || c == ' ' {
			return quoteShort(s)
		}
	}
	if len([]rune(s)) > 40 {
		return quoteShort(s)
	}
	return s
}

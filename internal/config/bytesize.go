package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes, such as a segment size or a request limit.
//
// In a config file it is written either as a non-negative integer count of
// bytes or as a string of a number and a unit: "100B", "512KiB", "64MiB",
// "1GiB", "10MB". Units are binary (KiB, MiB, GiB, TiB, PiB, EiB: powers
// of 1024) or decimal (KB, MB, GB, TB, PB, EB: powers of 1000), in any
// case; B or no unit means bytes, and a space may stand between number
// and unit. A decimal fraction is accepted when the result is a whole
// number of bytes ("1.5KiB" is 1536, "1.5B" is an error). Negative sizes
// and sizes above math.MaxInt64 bytes are errors. Bare letters such as "k"
// or "M" are rejected as ambiguous.
type ByteSize int64

// Binary size units, for defaults in code: 64 * config.MiB.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
	PiB
	EiB
)

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15, "eb": 1e18,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50, "eib": 1 << 60,
}

const unitList = "B, KB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB or EiB"

// ParseByteSize parses a size as it is written in a config file (see
// ByteSize), such as "64MiB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	b, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("config: %w", err)
	}
	return b, nil
}

// parseSize is ParseByteSize with an error that does not begin "config: ",
// for use in positional errors.
func parseSize(s string) (ByteSize, error) {
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
	mult, ok := sizeUnits[strings.ToLower(unit)]
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
	return ByteSize(q.Int64()), nil
}

// sizeFromInt converts a YAML integer, such as 1048576 or 0x100000, to a
// size.
func sizeFromInt(text string) (ByteSize, error) {
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
	return ByteSize(n), nil
}

// String returns the size in the largest binary unit that holds it
// exactly: "64MiB", "1GiB", "1536B", "0B". ParseByteSize reads it back.
func (b ByteSize) String() string {
	if b == 0 {
		return "0B"
	}
	sign, u := "", uint64(b)
	if b < 0 {
		sign, u = "-", -u
	}
	units := [...]string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for i < len(units)-1 && u%1024 == 0 {
		u /= 1024
		i++
	}
	return sign + strconv.FormatUint(u, 10) + units[i]
}

// MarshalText returns b.String(), so that sizes print well in any text
// format.
func (b ByteSize) MarshalText() ([]byte, error) {
	return []byte(b.String()), nil
}

// UnmarshalText parses text with ParseByteSize, so that a ByteSize can
// serve as a command-line flag.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

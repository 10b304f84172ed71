package config

import (
	"math"
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		err  string // a part of the error, or "" for none
	}{
		{"0", 0, ""},
		{"100", 100, ""},
		{"100B", 100, ""},
		{"100b", 100, ""},
		{"512KiB", 512 * KiB, ""},
		{"64MiB", 64 * MiB, ""},
		{"64mib", 64 * MiB, ""},
		{"64MIB", 64 * MiB, ""},
		{"1GiB", GiB, ""},
		{"2TiB", 2 * TiB, ""},
		{"3PiB", 3 * PiB, ""},
		{"7EiB", 7 * EiB, ""},
		{"10MB", 10_000_000, ""},
		{"10mb", 10_000_000, ""},
		{"1KB", 1000, ""},
		{"1GB", 1_000_000_000, ""},
		{"1TB", 1e12, ""},
		{"1PB", 1e15, ""},
		{"9EB", 9e18, ""},
		{"64 MiB", 64 * MiB, ""},
		{"  64MiB  ", 64 * MiB, ""},
		{"+5KiB", 5 * KiB, ""},
		{"007KiB", 7 * KiB, ""},
		{"1.5KiB", 1536, ""},
		{"1.5GiB", 1536 * MiB, ""},
		{".5KiB", 512, ""},
		{"2.KiB", 2 * KiB, ""},
		{"1.000B", 1, ""},
		{"0.001KB", 1, ""},
		{"9223372036854775807", math.MaxInt64, ""},
		{"9223372036854775807B", math.MaxInt64, ""},
		{"8388607.9990234375TiB", 8388607*TiB + 1023*GiB, ""},

		{"", 0, "want a number and a unit"},
		{"   ", 0, "want a number and a unit"},
		{"MiB", 0, "want a number and a unit"},
		{".", 0, "want a number and a unit"},
		{"1.2.3MiB", 0, "want a number and a unit"},
		{"-1", 0, "cannot be negative"},
		{"-64MiB", 0, "cannot be negative"},
		{"-0", 0, "cannot be negative"},
		{"64M", 0, `unknown unit "M"`},
		{"64k", 0, `unknown unit "k"`},
		{"64 mebibytes", 0, "unknown unit"},
		{"64MiBs", 0, "unknown unit"},
		{"0x10", 0, `unknown unit "x10"`},
		{"1e3", 0, "unknown unit"},
		{"1_000", 0, "unknown unit"},
		{"64 Mi B", 0, "unknown unit"},
		{"1.5B", 0, "not a whole number of bytes"},
		{"0.1KiB", 0, "not a whole number of bytes"},
		{"1.0000000000000000000000000000000000000000000000000000000000000001EiB", 0, "not a whole number"},
		{"9223372036854775808", 0, "too large"},
		{"8EiB", 0, "too large"},
		{"9.3EB", 0, "too large"},
		{"100000000000000000000000000000KiB", 0, "too large"},
		{"99999999999999999999999999999999999999999999999999999999999", 0, "too large"},
	} {
		got, err := ParseByteSize(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseByteSize(%q): %v", tc.in, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("ParseByteSize(%q) = %d, want %d", tc.in, got, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseByteSize(%q) = %d, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err != "" && !strings.HasPrefix(err.Error(), "config: invalid size "):
			t.Errorf("ParseByteSize(%q) error %q lacks the prefix", tc.in, err)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1023, "1023B"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{512 * KiB, "512KiB"},
		{64 * MiB, "64MiB"},
		{1025 * MiB, "1025MiB"},
		{GiB, "1GiB"},
		{1024 * GiB, "1TiB"},
		{PiB, "1PiB"},
		{7 * EiB, "7EiB"},
		{10_000_000, "10000000B"},
		{math.MaxInt64, "9223372036854775807B"},
		{-64 * MiB, "-64MiB"},
		{math.MinInt64, "-8EiB"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
	}
}

// TestByteSizeRoundTrip checks that String's output parses back to the
// same size, across units and awkward values.
func TestByteSizeRoundTrip(t *testing.T) {
	var sizes []ByteSize
	for shift := range 63 {
		b := ByteSize(1) << shift
		sizes = append(sizes, b, b-1, b+1, 3*b, b*1000)
	}
	sizes = append(sizes, math.MaxInt64, math.MaxInt64-1023, 1e18)
	for _, b := range sizes {
		if b < 0 {
			continue
		}
		got, err := ParseByteSize(b.String())
		if err != nil || got != b {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", b.String(), got, err, int64(b))
		}
	}
}

func TestByteSizeText(t *testing.T) {
	var b ByteSize
	if err := b.UnmarshalText([]byte("2GiB")); err != nil || b != 2*GiB {
		t.Errorf("UnmarshalText: %d, %v", b, err)
	}
	if err := b.UnmarshalText([]byte("2G")); err == nil || b != 2*GiB {
		t.Errorf("UnmarshalText of a bad size: %d, %v", b, err)
	}
	if text, err := (3 * MiB).MarshalText(); err != nil || string(text) != "3MiB" {
		t.Errorf("MarshalText = %q, %v", text, err)
	}
}

// TestByteSizeYAML checks the forms a size can take in a file, integers
// included.
func TestByteSizeYAML(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		err  string
	}{
		{"65536", 64 * KiB, ""},
		{"0x400", KiB, ""},
		{"1_024", KiB, ""},
		{"0", 0, ""},
		{`"64MiB"`, 64 * MiB, ""},
		{"64MiB", 64 * MiB, ""},
		{"64 mib", 64 * MiB, ""},
		{"'1024'", KiB, ""},
		{"1.5KiB", 1536, ""},
		{"-1", 0, "cannot be negative"},
		{"-9223372036854775809", 0, "cannot be negative"},
		{"9223372036854775808", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
		{"1.5", 0, "not a whole number"},
		{"true", 0, "expected a size"},
		{"[1]", 0, "expected a size"},
	} {
		var c testConfig
		err := Load("x.yml", []byte("log: {segment-size: "+tc.in+"}"), &c)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.err == "" && c.Log.SegmentSize != tc.want:
			t.Errorf("%s gave %d, want %d", tc.in, c.Log.SegmentSize, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: got %v, want an error with %q", tc.in, err, tc.err)
		}
	}
}

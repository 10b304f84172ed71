package bytesize

import (
	"math"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		err  string // a part of the error, or "" for none
	}{
		{"0", 0, ""},
		{"100", 100, ""},
		{"1048576", MiB, ""},
		{"100B", 100, ""},
		{"100b", 100, ""},
		{"512KiB", 512 * KiB, ""},
		{"64MiB", 64 * MiB, ""},
		{"64mib", 64 * MiB, ""},
		{"64MIB", 64 * MiB, ""},
		{"1GiB", GiB, ""},
		{"1gib", GiB, ""},
		{"2TiB", 2 * TiB, ""},
		{"3PiB", 3 * PiB, ""},
		{"7EiB", 7 * EiB, ""},
		{"10MB", 10_000_000, ""},
		{"10mb", 10_000_000, ""},
		{"10GB", 10_000_000_000, ""},
		{"1KB", 1000, ""},
		{"5 KB", 5000, ""},
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
		{"M", 0, "want a number and a unit"},
		{".", 0, "want a number and a unit"},
		{"1.2.3MiB", 0, "want a number and a unit"},
		{"-1", 0, "cannot be negative"},
		{"-64MiB", 0, "cannot be negative"},
		{"-0", 0, "cannot be negative"},
		{"64M", 0, `unknown unit "M"`},
		{"64k", 0, `unknown unit "k"`},
		{"10XB", 0, `unknown unit "XB"`},
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
		{"99999999999TiB", 0, "too large"},
		{"100000000000000000000000000000KiB", 0, "too large"},
		{"99999999999999999999999999999999999999999999999999999999999", 0, "too large"},
	} {
		got, err := Parse(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Parse(%q): %v", tc.in, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("Parse(%q) = %d, want %d", tc.in, got, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Parse(%q) = %d, %v; want an error with %q", tc.in, got, err, tc.err)
		case tc.err != "" && !strings.HasPrefix(err.Error(), "invalid size "):
			t.Errorf("Parse(%q) error %q does not begin \"invalid size\"", tc.in, err)
		}
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   Size
		want string
	}{
		{0, "0"},
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
			t.Errorf("Size(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
	}
}

// TestRoundTrip checks that String's output parses back to the same
// size, across units and awkward values.
func TestRoundTrip(t *testing.T) {
	var sizes []Size
	for shift := range 63 {
		b := Size(1) << shift
		sizes = append(sizes, b, b-1, b+1, 3*b, b*1000)
	}
	sizes = append(sizes, 0, math.MaxInt64, math.MaxInt64-1023, 1e18)
	for _, b := range sizes {
		if b < 0 {
			continue
		}
		got, err := Parse(b.String())
		if err != nil || got != b {
			t.Errorf("Parse(%q) = %d, %v; want %d", b.String(), got, err, int64(b))
		}
	}
}

func TestText(t *testing.T) {
	var b Size
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

// TestFlag uses a Size as a command-line flag, as the spool command does.
func TestFlag(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	var max, seg Size
	seg = 128 * MiB
	fs.Var(&max, "max-bytes", "bound")
	fs.Var(&seg, "segment-bytes", "segment size")
	if err := fs.Parse([]string{"--max-bytes", "10GB"}); err != nil {
		t.Fatal(err)
	}
	if max != 10_000_000_000 || seg != 128*MiB {
		t.Errorf("max %d, seg %d", max, seg)
	}
	if f := fs.Lookup("max-bytes"); f.Value.Type() != "size" || f.Value.String() != "9765625KiB" || f.DefValue != "0" {
		t.Errorf("flag %q %q default %q", f.Value.Type(), f.Value.String(), f.DefValue)
	}
	// A zero default is shown as no default; another one in its unit.
	usage := fs.FlagUsages()
	if strings.Contains(usage, "bound (default") || !strings.Contains(usage, "segment size (default 128MiB)") {
		t.Errorf("usage:\n%s", usage)
	}
	err := fs.Parse([]string{"--segment-bytes", "64M"})
	if err == nil || !strings.Contains(err.Error(), `invalid size "64M": unknown unit "M"`) || seg != 128*MiB {
		t.Errorf("bad size: %v (seg %d)", err, seg)
	}
}

// TestYAML decodes sizes with the YAML library directly, in every form a
// YAML file can give them.
func TestYAML(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		err  string
	}{
		{"65536", 64 * KiB, ""},
		{"0x400", KiB, ""},
		{"0o2000", KiB, ""},
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
		{"64M", 0, `unknown unit "M"`},
		{"true", 0, `expected a size such as "64MiB", got bool "true"`},
		{"[1]", 0, "got a list or mapping"},
		{"{a: 1}", 0, "got a list or mapping"},
	} {
		var c struct {
			Size Size `yaml:"size"`
		}
		c.Size = 7
		err := yaml.Unmarshal([]byte("size: "+tc.in), &c)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.err == "" && c.Size != tc.want:
			t.Errorf("%s gave %d, want %d", tc.in, c.Size, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: got %v, want an error with %q", tc.in, err, tc.err)
		case tc.err != "" && c.Size != 7:
			t.Errorf("%s: a bad size changed the value to %d", tc.in, c.Size)
		}
	}
	out, err := yaml.Marshal(struct {
		A Size `yaml:"a"`
		B Size `yaml:"b"`
	}{64 * MiB, 0})
	if err != nil || string(out) != "a: 64MiB\nb: 0\n" {
		t.Errorf("Marshal = %q, %v", out, err)
	}
}

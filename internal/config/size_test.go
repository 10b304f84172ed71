package config

import (
	"strings"
	"testing"

	"github.com/spoolmq/spool/bytesize"
)

// TestSizeYAML checks the forms a size can take in a file, integers
// included.
func TestSizeYAML(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bytesize.Size
		err  string
	}{
		{"65536", 64 * bytesize.KiB, ""},
		{"0x400", bytesize.KiB, ""},
		{"1_024", bytesize.KiB, ""},
		{"0", 0, ""},
		{`"64MiB"`, 64 * bytesize.MiB, ""},
		{"64MiB", 64 * bytesize.MiB, ""},
		{"64 mib", 64 * bytesize.MiB, ""},
		{"'1024'", bytesize.KiB, ""},
		{"1.5KiB", 1536, ""},
		{"-1", 0, "cannot be negative"},
		{"-9223372036854775809", 0, "cannot be negative"},
		{"9223372036854775808", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
		{"1.5", 0, "not a whole number"},
		{"true", 0, "expected a size"},
		{"2001-02-03", 0, "expected a size"},
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

package kgroup

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	goldenfile "github.com/spoolmq/spool/internal/golden"
)

// Golden files of the Kafka front end's records (internal/kafka/testdata/
// format, docs/format/state.md). -update writes the golden files that do
// not exist yet and never rewrites one: the bytes of a record version
// never change. A test failing here means the encoding changed; stored
// data would then be misread, so add a version instead.
func golden(t *testing.T, name string, want []byte) []byte {
	return goldenfile.Read(t, filepath.Join("..", "testdata", "format"), name, want)
}

// The commit metadata record is version 1 in this release and in 7e44b4f
// (whose encoder was the same): the golden files are also what that
// release wrote.
var commitMetaCases = []struct {
	name string
	want commitMeta
}{
	{"commit-meta", commitMeta{created: 1764108280123456789, offset: 4242, epoch: 7, meta: "consumer-1 {\"k\":é}"}},
	{"commit-meta-unset", commitMeta{created: 1764108280123456789, offset: 12, epoch: -1, flags: metaUnset}},
}

func TestFormatCommitMetaGolden(t *testing.T) {
	for _, c := range commitMetaCases {
		enc := c.want.encode()
		v1 := golden(t, c.name+".v1.bin", enc)
		if !bytes.Equal(enc, v1) {
			t.Errorf("%s: encoded\n%x\nwant (golden)\n%x", c.name, enc, v1)
		}
		got, err := decodeCommitMeta(v1)
		if err != nil || got != c.want {
			t.Errorf("%s: decoded %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestFormatCommitMetaRefused(t *testing.T) {
	good := commitMetaCases[0].want.encode()
	for _, c := range []struct {
		name string
		v    []byte
		want string
	}{
		{"empty", nil, "empty record"},
		{"future", append([]byte{2}, good[1:]...), "unknown future version 2; this server reads up to version 1"},
		{"zero", append([]byte{0}, good[1:]...), "unknown version byte 0x00"},
		{"json", []byte(`{"offset":1}`), "unknown version byte 0x7b"},
		{"truncated", good[:21], "truncated: 20 bytes where at least 21 are needed"},
		{"flags", func() []byte { b := bytes.Clone(good); b[21] = 0x82; return b }(), "unknown flags 0x82"},
	} {
		if _, err := decodeCommitMeta(c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := metaPartition([]byte{0, 0, 1}); err == nil {
		t.Error("a 3-byte key decoded")
	}
	if p, err := metaPartition(metaKey(7)); p != 7 || err != nil {
		t.Errorf("key of partition 7: %d %v", p, err)
	}
}

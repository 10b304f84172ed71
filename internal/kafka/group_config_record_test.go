package kafka

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"

	goldenfile "github.com/spoolmq/spool/internal/golden"
)

// Golden files of the front end's records (testdata/format,
// docs/format/state.md): NAME.v1.bin the current encoding, NAME.v0.json the
// same value as releases up to 7e44b4f stored it (json.Marshal of the
// config map). -update writes the golden files that do not exist yet and
// never rewrites one.
func golden(t *testing.T, name string, want []byte) []byte {
	return goldenfile.Read(t, filepath.Join("testdata", "format"), name, want)
}

var groupConfigCase = map[string]string{
	"share.auto.offset.reset":       "by_duration:PT1H",
	"share.record.lock.duration.ms": "60000",
	"share.session.timeout.ms":      "30000",
}

func TestFormatGroupConfigsGolden(t *testing.T) {
	enc, err := encodeGroupConfigs(groupConfigCase)
	if err != nil {
		t.Fatal(err)
	}
	v1 := golden(t, "group-configs.v1.bin", enc)
	if !bytes.Equal(enc, v1) {
		t.Errorf("encoded\n%q\nwant (golden)\n%q", enc, v1)
	}
	v0 := golden(t, "group-configs.v0.json", enc[1:])
	for name, b := range map[string][]byte{"v1": v1, "v0": v0} {
		if got, err := decodeGroupConfigs(b); err != nil || !reflect.DeepEqual(got, groupConfigCase) {
			t.Errorf("%s: decoded %v, %v", name, got, err)
		}
	}
	for _, c := range []struct {
		v    []byte
		want string
	}{
		{append([]byte{2}, v1[1:]...), "unknown future version 2; this server reads up to version 1"},
		{[]byte("\x01{}"), "no configs"},
		{[]byte("\x01{\"a\":1}"), "cannot unmarshal number"},
		{[]byte("\x01{\"a\":\"b\"} x"), "bytes after"},
		{nil, "empty record"},
	} {
		if _, err := decodeGroupConfigs(c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.v, err, c.want)
		}
	}
}

// A store holding the previous release's encoding reads; a record of an
// unknown version is an error naming its key; a write upgrades to version 1.
func TestGroupConfigsStored(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	st, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := broker.Open(broker.Config{DataDir: dir, State: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := New(b, Config{Logger: quiet})
	defer s.Close()
	put := func(group string, v []byte) {
		if err := s.space.Write([]broker.Record{{Key: groupConfigKey(group), Value: v}}, true); err != nil {
			t.Fatal(err)
		}
	}
	put("old", golden(t, "group-configs.v0.json", nil))
	if cfg, err := s.loadGroupConfigs("old"); err != nil || !reflect.DeepEqual(cfg, groupConfigCase) {
		t.Fatalf("version 0: %v %v", cfg, err)
	}
	if set := s.loadShareSettings("old"); set.Lock.Milliseconds() != 60000 || set.Session.Milliseconds() != 30000 {
		t.Fatalf("settings of version 0 configs: %+v", set)
	}
	put("new", []byte("\x07{}"))
	_, err = s.loadGroupConfigs("new")
	if !errs.Is(err, errs.CorruptData) || !strings.Contains(err.Error(), `Kafka group configs record "kafka-gcfg/new": record of an unknown future version 7`) {
		t.Fatalf("future version: %v", err)
	}
	if code, msg := s.alterGroupConfigs("old", nil, false, false); code != 0 {
		t.Fatalf("rewrite: %d %s", code, msg)
	}
	if v, err := st.Get([]byte("kafka-gcfg/old")); err != nil || v[0] != groupConfigVersion {
		t.Fatalf("rewritten record %q %v", v, err)
	}
	if had, err := s.deleteGroupConfigs("old"); !had || err != nil {
		t.Fatal(had, err)
	}
	if _, err := st.Get([]byte("kafka-gcfg/old")); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

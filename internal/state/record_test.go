package state

import (
	"errors"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, c := range []struct {
		v       []byte
		legacy  bool
		ver     byte
		payload string
		err     string
	}{
		{[]byte("\x01abc"), true, 1, "abc", ""},
		{[]byte("\x03"), true, 3, "", ""},
		{[]byte(`{"a":1}`), true, 0, `{"a":1}`, ""},
		{[]byte(`{"a":1}`), false, 0, "", "record of unknown version byte 0x7b"},
		{[]byte("\x04x"), true, 0, "", "record of an unknown future version 4; this server reads up to version 3"},
		{[]byte("\xffx"), true, 0, "", "record of an unknown future version 255; this server reads up to version 3"},
		{[]byte("\x00x"), true, 0, "", "record of unknown version byte 0x00"},
		{nil, true, 0, "", "empty record"},
	} {
		ver, payload, err := Version(c.v, 3, c.legacy)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%q: %v, want %q", c.v, err, c.err)
			}
			continue
		}
		if err != nil || ver != c.ver || string(payload) != c.payload {
			t.Errorf("%q: %d %q %v", c.v, ver, payload, err)
		}
	}
}

func TestFixed(t *testing.T) {
	if err := Fixed(make([]byte, 8), 8); err != nil {
		t.Fatal(err)
	}
	var ve *VersionError
	if err := Fixed([]byte{2, 0, 0}, 8); !errors.As(err, &ve) || err.Error() != "3 bytes, not 8: record of an unknown future version 2; this server reads up to version 0" {
		t.Errorf("later version: %v", err)
	}
	if err := Fixed([]byte{0, 0, 0}, 8); errors.As(err, &ve) || err == nil || err.Error() != "3 bytes, not 8" {
		t.Errorf("damaged: %v", err)
	}
	if err := Fixed(nil, 0); err != nil {
		t.Errorf("empty: %v", err)
	}
}

func TestDecodeJSON(t *testing.T) {
	type inner struct {
		A int `json:"a"`
		B int `json:"b,omitempty"`
	}
	type rec struct {
		Name  string `json:"name"`
		Inner inner  `json:"inner"`
		Note  string `json:"note,omitzero"`
		Plain int
	}
	type base struct {
		A int `json:"a"`
	}
	type nested struct {
		base
		List []inner   `json:"list"`
		Ptr  *inner    `json:"ptr"`
		Arr  [1]*inner `json:"arr"`
	}
	for _, c := range []struct {
		in, err string
	}{
		{`{"a":1,"list":[{"a":1}],"ptr":{"a":1},"arr":[{"a":1}]}`, ""},
		{`{"a":1,"list":null,"ptr":null,"arr":[null]}`, ""},
		{`{"list":[],"ptr":null,"arr":[null]}`, `field "a" missing`},
		{`{"a":1,"list":[{"a":1},{"b":1}],"ptr":null,"arr":[null]}`, `field "list[1].a" missing`},
		{`{"a":1,"list":[],"ptr":{},"arr":[null]}`, `field "ptr.a" missing`},
		{`{"a":1,"list":[],"ptr":null,"arr":[{"b":2}]}`, `field "arr[0].a" missing`},
	} {
		var r nested
		err := DecodeJSON([]byte(c.in), &r, true)
		if (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.in, err, c.err)
		}
	}
	for _, c := range []struct {
		in, err string
		all     bool
	}{
		{`{"name":"x","inner":{"a":1},"Plain":2}`, "", true},
		{`{"name":"x","inner":{"a":1,"b":2},"note":"n","Plain":2}`, "", true},
		{`{"name":"x","inner":{"b":2},"Plain":2}`, `field "inner.a" missing`, true},
		{`{"name":"x","Plain":2}`, `field "inner" missing`, true},
		{`{"name":"x","inner":null,"Plain":2}`, `field "inner.a" missing`, true},
		{`{"name":"x"}`, "", false},
		{`{"name":"x","extra":1}`, `unknown field "extra"`, false},
		{`{"name":"x"} {}`, "bytes after", false},
		{`{"name":`, "unexpected EOF", false},
	} {
		var r rec
		err := DecodeJSON([]byte(c.in), &r, c.all)
		if (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.in, err, c.err)
		}
	}
}

func TestRecordError(t *testing.T) {
	err := &RecordError{Kind: "halt", Key: HaltKey("t", "s", 258), Err: &VersionError{Version: 9, Max: 1}}
	want := `halt record "h/t\x00s\x00\x00\x00\x01\x02": record of an unknown future version 9; this server reads up to version 1`
	var ve *VersionError
	if err.Error() != want || !errors.As(err, &ve) {
		t.Errorf("%v\nwant %s", err, want)
	}
}

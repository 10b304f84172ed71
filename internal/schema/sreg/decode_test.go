package sreg

import (
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
)

// TestDecodeValue: values in the wire format or with a spool.schema-id
// header are rendered as JSON with their schema, of every type; a value
// naming no schema is not decoded, and one naming an unknown schema or
// refused by its schema says why.
func TestDecodeValue(t *testing.T) {
	e := newEnv(t)
	aid, err := e.reg.Register("orders-value", SchemaInput{Type: "AVRO", Text: avroV1}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := e.reg.Register("pb", SchemaInput{Type: "PROTOBUF", Text: `syntax = "proto3"; package acme; message A { string a = 1; } message B { int64 n = 1; }`}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	jid, err := e.reg.Register("js", SchemaInput{Type: "JSON", Text: `{"type":"object"}`}, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	avroPayload := e.avroOrder(t, 7, "tea")
	hdr, _ := (&sr.ConfluentHeader{}).AppendEncode(nil, pid, []int{1})
	for _, tc := range []struct {
		name, subject string
		value, header []byte
		want          string
		inSubject     bool
	}{
		{"avro wire", "orders-value", wire(aid, avroPayload), nil, `{"id":7,"item":"tea"}`, true},
		{"avro header", "orders-value", avroPayload, []byte(strconv.Itoa(aid)), `{"id":7,"item":"tea"}`, true},
		{"avro other subject", "x", wire(aid, avroPayload), nil, `{"id":7,"item":"tea"}`, false},
		{"protobuf", "pb", append(hdr, 0x08, 0x05), nil, `{"n":"5"}`, true},
		{"json", "js", wire(jid, []byte(`{"k":[1]}`)), nil, `{"k":[1]}`, true},
	} {
		d, named, err := e.reg.DecodeValue(tc.subject, tc.value, tc.header)
		if err != nil || !named {
			t.Errorf("%s: named %v, %v", tc.name, named, err)
			continue
		}
		if got := strings.ReplaceAll(string(d.JSON), " ", ""); got != tc.want || d.InSubject != tc.inSubject {
			t.Errorf("%s: %s (in subject %v), want %s (%v)", tc.name, got, d.InSubject, tc.want, tc.inSubject)
		}
	}
	if _, named, _ := e.reg.DecodeValue("orders-value", []byte("plain text"), nil); named {
		t.Error("plain text names a schema")
	}
	for name, v := range map[string][]byte{
		"unknown id":    wire(9999, avroPayload),
		"bad payload":   wire(aid, []byte{0x02}),
		"bad indexes":   append(wire(pid, nil), 0x7f),
		"not json":      wire(jid, []byte("{")),
		"bad header id": nil,
	} {
		var h []byte
		if v == nil {
			v, h = avroPayload, []byte("x<1>")
		}
		if _, named, err := e.reg.DecodeValue("orders-value", v, h); !named || err == nil {
			t.Errorf("%s: named %v, err %v", name, named, err)
		}
	}
}

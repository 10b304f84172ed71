// Package check is what the Go parts of Spool's Kafka compatibility suite
// share: where the broker under test listens, the records every client sends,
// and the comparison of what came back with what was sent.
//
// scripts/compat.sh starts a fresh `spool serve` for each part and passes its
// addresses in COMPAT_KAFKA_ADDR and COMPAT_HTTP_ADDR (and the binary in
// COMPAT_SPOOL); without them the tests use Spool's default addresses, so they
// also run against `make run`. Its cluster part passes a three-node
// cluster's Kafka addresses, comma-separated, and COMPAT_REPLICATION_FACTOR.
package check

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// KafkaAddr is the Kafka listener of the Spool under test: on a cluster,
// the first node's (KafkaAddrs lists them all).
func KafkaAddr() string {
	return KafkaAddrs()[0]
}

// KafkaAddrs are the Kafka listeners of the Spool under test, the
// bootstrap list: COMPAT_KAFKA_ADDR is one address, or a cluster's
// addresses separated by commas.
func KafkaAddrs() []string {
	var out []string
	for _, a := range strings.Split(env("COMPAT_KAFKA_ADDR", "127.0.0.1:9092"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1:9092"}
	}
	return out
}

// ReplicationFactor is the replication factor the tests create topics
// with: COMPAT_REPLICATION_FACTOR, default 1 (a single node); a cluster
// holds every partition on each of its nodes.
func ReplicationFactor() int16 {
	n, err := strconv.ParseInt(env("COMPAT_REPLICATION_FACTOR", "1"), 10, 16)
	if err != nil || n < 1 {
		return 1
	}
	return int16(n)
}

// HTTPAddr is the native API of the Spool under test, as an SDK URL.
func HTTPAddr() string {
	return "http://" + env("COMPAT_HTTP_ADDR", "127.0.0.1:7070")
}

// SpoolBin is the spool binary: $COMPAT_SPOOL, or bin/spool of this checkout
// (`make build`).
func SpoolBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("COMPAT_SPOOL"); b != "" {
		return b
	}
	b, err := filepath.Abs("../../bin/spool")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Name returns a fresh topic or group name for a test of one client.
func Name(kind, client string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("compat-%s-%s-%s", client, kind, hex.EncodeToString(b))
}

// Header is one record header; keys may repeat and keep their order.
type Header struct {
	Key   string
	Value []byte
}

// Record is what the suite sends and compares: key, value and headers.
type Record struct {
	Key     []byte // nil: no key
	Value   []byte // unique per record: "value-N…"
	Headers []Header
}

// Records returns n records covering what a broker must carry unchanged:
// keys that repeat (per-key order), no key, binary bytes, empty and
// repeated headers.
func Records(n int) []Record {
	rs := make([]Record, n)
	for i := range rs {
		r := Record{
			Key:   []byte(fmt.Sprintf("key-%d", i%5)),
			Value: []byte(fmt.Sprintf("value-%d %s", i, strings.Repeat("x", i%50))),
			Headers: []Header{
				{Key: "trace", Value: []byte(fmt.Sprintf("t-%d", i))},
				{Key: "n", Value: []byte(fmt.Sprint(i))},
			},
		}
		if i%10 == 9 {
			r.Key = nil
		}
		if i%7 == 0 {
			r.Value = append(r.Value, 0x00, 0xff, 0xfe)
		}
		if i%3 == 0 {
			r.Headers = append(r.Headers, Header{Key: "trace", Value: []byte("again")})
		}
		if i%4 == 0 {
			r.Headers = append(r.Headers, Header{Key: "empty", Value: nil})
		}
		rs[i] = r
	}
	return rs
}

// WithoutSpool drops Spool's own "spool.*" headers.
func WithoutSpool(hs []Header) []Header {
	var out []Header
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, "spool.") {
			out = append(out, h)
		}
	}
	return out
}

// Same fails t unless got holds exactly the records of sent, each once, with
// the same key, value and headers (in any order).
func Same(t *testing.T, sent, got []Record) {
	t.Helper()
	byValue := make(map[string]Record, len(sent))
	for _, r := range sent {
		byValue[string(r.Value)] = r
	}
	seen := make(map[string]bool, len(got))
	var errs []string
	for _, g := range got {
		v := string(g.Value)
		s, ok := byValue[v]
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("received a record that was not sent: value %q", v))
		case seen[v]:
			errs = append(errs, fmt.Sprintf("received twice: value %q", v))
		case !bytes.Equal(s.Key, g.Key) || (s.Key == nil) != (g.Key == nil):
			errs = append(errs, fmt.Sprintf("value %q: key %s, sent %s", v, show(g.Key), show(s.Key)))
		case !sameHeaders(s.Headers, g.Headers):
			errs = append(errs, fmt.Sprintf("value %q: headers %s, sent %s", v, showHeaders(g.Headers), showHeaders(s.Headers)))
		}
		seen[v] = true
	}
	for _, s := range sent {
		if !seen[string(s.Value)] {
			errs = append(errs, fmt.Sprintf("never received: value %q", s.Value))
		}
	}
	if len(errs) > 0 {
		if len(errs) > 10 {
			errs = append(errs[:10], fmt.Sprintf("… and %d more", len(errs)-10))
		}
		t.Errorf("sent %d records, received %d:\n  %s", len(sent), len(got), strings.Join(errs, "\n  "))
	}
}

// InKeyOrder fails t unless the records of each key in got come in the
// order they were sent (Kafka's per-partition order, given a key
// partitioner). Records without a key are not ordered.
func InKeyOrder(t *testing.T, sent, got []Record) {
	t.Helper()
	order := func(rs []Record) map[string][]string {
		m := map[string][]string{}
		for _, r := range rs {
			if r.Key != nil {
				m[string(r.Key)] = append(m[string(r.Key)], string(r.Value))
			}
		}
		return m
	}
	want, have := order(sent), order(got)
	for k, vs := range want {
		for i, v := range vs {
			if i >= len(have[k]) {
				t.Errorf("key %q: received %d records, sent %d", k, len(have[k]), len(vs))
				break
			}
			if have[k][i] != v {
				t.Errorf("key %q: record %d received is %q, record %d sent is %q (out of order)", k, i, have[k][i], i, v)
				break
			}
		}
	}
}

func sameHeaders(a, b []Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func show(b []byte) string {
	if b == nil {
		return "null"
	}
	return fmt.Sprintf("%q", b)
}

func showHeaders(hs []Header) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = fmt.Sprintf("%s=%q", h.Key, h.Value)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

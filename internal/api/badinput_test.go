package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// TestOversizedBodies is the native API's part of the bad-input set
// (DESIGN.md, "Fuzzing and the bad-input set"): a body beyond
// MaxRequestBytes (8 MiB), as JSON and as protobuf, with and without a
// length, is refused with resource_exhausted. The bodies are built before
// the measurement and sent from one slice. A body declaring its length is
// refused before it is read (under the set's 4 MiB); one without a length
// is read in fixed chunks up to the limit and refused there, costing about
// the limit (Connect alone would read it into a buffer growing by
// doubling: about 4 × the limit, 34 MB measured).
func TestOversizedBodies(t *testing.T) {
	base := startServer(t)
	if st, code, msg := postJSON(t, base, "/spool.v1.TopicService/CreateTopic", []byte(`{"name":"t"}`), nil); st != http.StatusOK {
		t.Fatalf("create topic: %s %s", code, msg)
	}
	const size = 8<<20 + 1<<10
	value := bytes.Repeat([]byte{'x'}, size)
	// JSON: one message whose base64 value holds the bytes.
	js := append([]byte(`{"topic":"t","messages":[{"value":"`), value[:size/4*4]...)
	js = append(js, `"}]}`...)
	// Protobuf: PublishRequest{topic: "t", messages: [{value: …}]}.
	msg := protowire.AppendTag(nil, 2, protowire.BytesType) // PublishMessage.value
	msg = protowire.AppendBytes(msg, value)
	pb := protowire.AppendTag(nil, 1, protowire.BytesType)
	pb = protowire.AppendString(pb, "t")
	pb = protowire.AppendTag(pb, 2, protowire.BytesType)
	pb = protowire.AppendBytes(pb, msg)
	cl := h2c()
	for _, c := range []struct {
		name, ctype string
		body        []byte
		chunked     bool
		bound       uint64
	}{
		{"json", "application/json", js, false, 4 << 20},
		{"proto", "application/proto", pb, false, 4 << 20},
		{"json without a length", "application/json", js, true, 8<<20 + 4<<20},
		{"proto without a length", "application/proto", pb, true, 8<<20 + 4<<20},
	} {
		t.Run(c.name, func(t *testing.T) {
			least := uint64(1 << 62)
			for range 2 {
				var status int
				var out []byte
				grew := heapGrowthAPI(func() {
					var body io.Reader = bytes.NewReader(c.body)
					if c.chunked {
						body = struct{ io.Reader }{body} // no length known
					}
					req, _ := http.NewRequest(http.MethodPost, base+"/spool.v1.PublishService/Publish", body)
					req.Header.Set("Content-Type", c.ctype)
					resp, err := cl.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					out, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				})
				var e struct{ Code string }
				_ = json.Unmarshal(out, &e)
				if status == http.StatusOK || e.Code != "resource_exhausted" {
					t.Fatalf("status %d, %q", status, out)
				}
				least = min(least, grew)
			}
			t.Logf("%d-byte body: %d bytes allocated", len(c.body), least)
			if raceEnabled {
				return // the race detector's own allocations
			}
			if least > c.bound {
				t.Fatalf("heap grew by %d bytes, over %d", least, c.bound)
			}
		})
	}
}

// TestChunkedBodyWithinLimit: a unary body of unknown length within
// MaxRequestBytes, which the server reads in chunks before Connect does,
// is served whole.
func TestChunkedBodyWithinLimit(t *testing.T) {
	base := startServer(t)
	if st, code, msg := postJSON(t, base, "/spool.v1.TopicService/CreateTopic", []byte(`{"name":"t"}`), nil); st != http.StatusOK {
		t.Fatalf("create topic: %s %s", code, msg)
	}
	value := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16) // 200 KiB, several chunks
	msg := protowire.AppendTag(nil, 2, protowire.BytesType)
	msg = protowire.AppendBytes(msg, value)
	pb := protowire.AppendTag(nil, 1, protowire.BytesType)
	pb = protowire.AppendString(pb, "t")
	pb = protowire.AppendTag(pb, 2, protowire.BytesType)
	pb = protowire.AppendBytes(pb, msg)
	for _, c := range []struct {
		ctype string
		body  []byte
	}{
		{"application/proto", pb},
		{"application/json", []byte(`{"topic":"t","messages":[{"value":"` + base64.StdEncoding.EncodeToString(value) + `"}]}`)},
	} {
		req, _ := http.NewRequest(http.MethodPost, base+"/spool.v1.PublishService/Publish", struct{ io.Reader }{bytes.NewReader(c.body)})
		req.Header.Set("Content-Type", c.ctype)
		resp, err := h2c().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, %q", c.ctype, resp.StatusCode, out)
		}
	}
}

func heapGrowthAPI(fn func()) uint64 {
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

package api_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// procedure is one RPC of the native API, as the fuzz targets call it.
type procedure struct {
	path   string
	stream bool
}

// procedures lists every RPC of every service, from the descriptors.
func procedures() []procedure {
	var out []procedure
	for _, fd := range []protoreflect.FileDescriptor{
		spoolv1.File_spool_v1_topics_proto, spoolv1.File_spool_v1_publish_proto,
		spoolv1.File_spool_v1_subscriptions_proto, spoolv1.File_spool_v1_consume_proto,
		spoolv1.File_spool_v1_cluster_proto,
	} {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				out = append(out, procedure{
					path:   "/" + string(sd.FullName()) + "/" + string(md.Name()),
					stream: md.IsStreamingClient() || md.IsStreamingServer(),
				})
			}
		}
	}
	return out
}

// FuzzConnect sends an arbitrary body, as JSON or as protobuf, to any RPC
// of the native API (unary ones as one message, streams as one enveloped
// message) on a real server over HTTP/2, and checks the answer is a clean
// one: success or a Connect error other than internal or unknown (which
// would mean the input reached a failure the handler did not expect). A
// panic in the server ends the fuzzing process.
func FuzzConnect(f *testing.F) {
	base := startServer(f)
	if st, code, msg := postJSON(f, base, "/spool.v1.TopicService/CreateTopic", []byte(`{"name":"t"}`), nil); st != http.StatusOK {
		f.Fatalf("create topic: %s %s", code, msg)
	}
	procs := procedures()
	for i := range procs {
		f.Add(uint8(i), true, []byte(`{"topic":"t","name":"s"}`))
		f.Add(uint8(i), false, []byte{0x0a, 1, 't'})
		f.Add(uint8(i), true, []byte(`{}`))
	}
	f.Add(uint8(0), true, []byte(`{"topic":"t","messages":[{"value":"eA=="}]}`))
	cl := h2c()
	f.Fuzz(func(t *testing.T, pi uint8, asJSON bool, body []byte) {
		p := procs[int(pi)%len(procs)]
		ctype := "application/proto"
		if asJSON {
			ctype = "application/json"
		}
		if p.stream {
			ctype = "application/connect+" + ctype[len("application/"):]
			env := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(body)))
			body = append(env, body...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+p.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", ctype)
		if !p.stream {
			req.Header.Set("Connect-Protocol-Version", "1")
		}
		resp, err := cl.Do(req)
		if err != nil {
			return // the deadline: a stream still open
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			return
		}
		if p.stream {
			return // a stream's error is in its end message; a panic is caught above
		}
		if resp.StatusCode == http.StatusOK {
			return
		}
		var e struct{ Code, Message string }
		if err := json.Unmarshal(out, &e); err != nil {
			t.Fatalf("%s: status %d with a body that is no Connect error: %q", p.path, resp.StatusCode, out)
		}
		if e.Code == "internal" || e.Code == "unknown" {
			t.Fatalf("%s (%s) %q: %s: %s", p.path, ctype, body, e.Code, e.Message)
		}
	})
}

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
	"github.com/spoolmq/spool/gen/spool/v1/spoolv1connect"
	"github.com/spoolmq/spool/internal/api"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/internal/vfs"
	"github.com/spoolmq/spool/server"
)

// startServer runs a real server (real Pebble, real files, the HTTP
// listener) and returns its base URL.
func startServer(t testing.TB, cfg server.Config) string {
	t.Helper()
	return startServerFS(t, cfg, vfs.Default)
}

// startServerFS is startServer with the partition logs in fs.
func startServerFS(t testing.TB, cfg server.Config, fs vfs.FS) string {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "-"
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	serverhook.SetFS(srv, fs)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + srv.HTTPAddr()
}

// h2c is an HTTP client speaking cleartext HTTP/2, as streams need.
func h2c() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// post sends a unary Connect request with the given content type and
// returns the status and the body.
func post(t testing.TB, url, ctype string, body []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// postJSON sends a JSON request and decodes the JSON answer into out (if
// the call succeeded); it returns the status and, on failure, the Connect
// error's code and message.
func postJSON(t testing.TB, base, method string, body []byte, out any) (status int, code, msg string) {
	t.Helper()
	status, raw := post(t, base+method, "application/json", body)
	if status != http.StatusOK {
		var e struct{ Code, Message string }
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("%s: status %d, body %q", method, status, raw)
		}
		return status, e.Code, e.Message
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: %v in %q", method, err, raw)
		}
	}
	return status, "", ""
}

// emptyMessagesJSON is a publish request of n empty messages as JSON.
func emptyMessagesJSON(topic string, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"topic":"` + topic + `","messages":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("{}")
	}
	b.WriteString("]}")
	return b.Bytes()
}

// emptyMessagesProto is a publish request of n empty messages in binary.
func emptyMessagesProto(topic string, n int) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, topic)
	for range n {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, 0)
	}
	return b
}

const publishPath = "/spool.v1.PublishService/Publish"

func createTopic(t testing.TB, base, name string) {
	t.Helper()
	if st, code, msg := postJSON(t, base, "/spool.v1.TopicService/CreateTopic", []byte(`{"name":"`+name+`"}`), nil); st != http.StatusOK {
		t.Fatalf("create topic: %d %s %s", st, code, msg)
	}
}

// TestPublishCap: a publish request of more messages than the cap is
// refused with invalid_argument (and its ErrorInfo), in JSON and in
// binary, and one at the cap is stored whole.
func TestPublishCap(t *testing.T) {
	base := startServer(t, server.Config{})
	createTopic(t, base, "t")

	for _, n := range []int{1_000_000, api.MaxPublishMessages + 1} {
		st, code, msg := postJSON(t, base, publishPath, emptyMessagesJSON("t", n), nil)
		if st != http.StatusBadRequest || code != "invalid_argument" || !strings.Contains(msg, "more than 10000 messages") {
			t.Errorf("JSON, %d messages: status %d, code %q, message %q", n, st, code, msg)
		}
		st, raw := post(t, base+publishPath, "application/proto", emptyMessagesProto("t", n))
		if st != http.StatusBadRequest || !strings.Contains(string(raw), `"code":"invalid_argument"`) || !strings.Contains(string(raw), "more than 10000 messages") {
			t.Errorf("binary, %d messages: status %d, body %.300s", n, st, raw)
		}
	}

	var resp struct{ Results []json.RawMessage }
	if st, code, msg := postJSON(t, base, publishPath, emptyMessagesJSON("t", api.MaxPublishMessages), &resp); st != http.StatusOK || len(resp.Results) != api.MaxPublishMessages {
		t.Fatalf("JSON at the cap: status %d %s %s, %d results", st, code, msg, len(resp.Results))
	}
	st, raw := post(t, base+publishPath, "application/proto", emptyMessagesProto("t", api.MaxPublishMessages))
	var pr spoolv1.PublishResponse
	if st != http.StatusOK {
		t.Fatalf("binary at the cap: status %d, body %.300s", st, raw)
	}
	if err := proto.Unmarshal(raw, &pr); err != nil || len(pr.Results) != api.MaxPublishMessages {
		t.Fatalf("binary at the cap: %v, %d results", err, len(pr.Results))
	}
	if last := pr.Results[len(pr.Results)-1]; last.Offset != 2*api.MaxPublishMessages-1 {
		t.Errorf("binary at the cap: last offset %d", last.Offset)
	}
}

// TestPublishHeaderCaps: headers are bounded per message and per request.
func TestPublishHeaderCaps(t *testing.T) {
	base := startServer(t, server.Config{})
	createTopic(t, base, "t")
	msg := func(headers int) string {
		return `{"headers":[` + strings.TrimSuffix(strings.Repeat(`{"key":"k"},`, headers), ",") + `]}`
	}
	req := func(msgs ...string) []byte {
		return []byte(`{"topic":"t","messages":[` + strings.Join(msgs, ",") + `]}`)
	}
	if st, code, m := postJSON(t, base, publishPath, req(msg(api.MaxMessageHeaders+1)), nil); code != "invalid_argument" || !strings.Contains(m, "more than 1000 headers") {
		t.Errorf("headers over the per-message cap: %d %s %s", st, code, m)
	}
	full := make([]string, api.MaxRequestHeaders/api.MaxMessageHeaders+1)
	for i := range full {
		full[i] = msg(api.MaxMessageHeaders)
	}
	if st, code, m := postJSON(t, base, publishPath, req(full...), nil); code != "invalid_argument" || !strings.Contains(m, "more than 100000 headers in all") {
		t.Errorf("headers over the per-request cap: %d %s %s", st, code, m)
	}
	if st, code, m := postJSON(t, base, publishPath, req(full[1:]...), nil); st != http.StatusOK {
		t.Errorf("headers at the caps: %d %s %s", st, code, m)
	}
}

// TestPublishStreamCap: PublishStream answers an over-cap request
// in-stream with invalid_argument, keeps the stream open, and takes one at
// the cap.
func TestPublishStreamCap(t *testing.T) {
	base := startServer(t, server.Config{})
	createTopic(t, base, "t")
	for _, opts := range [][]connect.ClientOption{nil, {connect.WithProtoJSON()}, {connect.WithGRPC()}} {
		c := spoolv1connect.NewPublishServiceClient(h2c(), base, opts...)
		stream := c.PublishStream(context.Background())
		atCap := &spoolv1.PublishRequest{Topic: "t", RequestId: 1, Messages: make([]*spoolv1.Message, api.MaxPublishMessages)}
		for i := range atCap.Messages {
			atCap.Messages[i] = &spoolv1.Message{}
		}
		over := &spoolv1.PublishRequest{Topic: "t", RequestId: 2, Messages: append(atCap.Messages, &spoolv1.Message{})}
		for _, req := range []*spoolv1.PublishRequest{over, atCap} {
			if err := stream.Send(req); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Receive()
			if err != nil {
				t.Fatalf("request %d: %v", req.RequestId, err)
			}
			if resp.RequestId != req.RequestId {
				t.Errorf("answer to request %d has id %d", req.RequestId, resp.RequestId)
			}
			if req == over && (resp.GetError().GetCode() != "invalid_argument" || !strings.Contains(resp.ErrorMessage, "more than 10000 messages")) {
				t.Errorf("over the cap: %v %q", resp.GetError(), resp.ErrorMessage)
			}
			if req == atCap && (resp.Error != nil || len(resp.Results) != api.MaxPublishMessages) {
				t.Errorf("at the cap: %v, %d results", resp.GetError(), len(resp.Results))
			}
		}
		stream.CloseRequest()
		stream.CloseResponse()
	}
}

// totalAlloc returns the bytes allocated so far by the process.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// TestPublishRefusalAllocates: refusing a body of a million empty messages
// allocates about the body, not per message (decoding it whole allocated
// more than 400 MB).
func TestPublishRefusalAllocates(t *testing.T) {
	base := startServer(t, server.Config{})
	createTopic(t, base, "t")
	jsonBody := emptyMessagesJSON("t", 1_000_000)
	protoBody := emptyMessagesProto("t", 1_000_000)
	for _, c := range []struct {
		ctype string
		body  []byte
	}{{"application/json", jsonBody}, {"application/proto", protoBody}} {
		before := totalAlloc()
		st, _ := post(t, base+publishPath, c.ctype, c.body)
		got := totalAlloc() - before
		if st != http.StatusBadRequest {
			t.Fatalf("%s: status %d", c.ctype, st)
		}
		// Reading the body into Connect's buffer (which grows by doubling)
		// and the HTTP machinery: a few times the body.
		if limit := uint64(8*len(c.body)) + 8<<20; got > limit {
			t.Errorf("%s: refusing %d bytes allocated %d bytes (limit %d)", c.ctype, len(c.body), got, limit)
		}
	}
}

// TestPublishCost: what the publish budget charges a request covers what
// the server allocates for it, for requests of every shape, in binary and
// in JSON. Reading the body into Connect's buffer (up to four times the
// body while the buffer grows) is outside the budget: it is bounded by the
// request size limit.
func TestPublishCost(t *testing.T) {
	if raceEnabled {
		t.Skip("counts allocations, which pooled buffers keep low only without the race detector")
	}
	base := startServer(t, server.Config{})
	createTopic(t, base, "t")
	headers := func(n int) []*spoolv1.Header {
		hs := make([]*spoolv1.Header, n)
		for i := range hs {
			hs[i] = &spoolv1.Header{}
		}
		return hs
	}
	shapes := []struct {
		name string
		n    int
		msg  func(round, i int) *spoolv1.Message
	}{
		{"empty", api.MaxPublishMessages, func(int, int) *spoolv1.Message { return &spoolv1.Message{} }},
		{"ids", api.MaxPublishMessages, func(r, i int) *spoolv1.Message {
			return &spoolv1.Message{Id: fmt.Sprintf("id-%d-%d", r, i), Subject: "a.b", Key: []byte("k")}
		}},
		{"10 headers", api.MaxPublishMessages, func(int, int) *spoolv1.Message { return &spoolv1.Message{Headers: headers(10)} }},
		{"1000 headers", api.MaxRequestHeaders / api.MaxMessageHeaders, func(int, int) *spoolv1.Message {
			return &spoolv1.Message{Headers: headers(api.MaxMessageHeaders)}
		}},
		{"1 KiB values", 5000, func(int, int) *spoolv1.Message { return &spoolv1.Message{Value: make([]byte, 1<<10)} }},
		{"64 KiB values", 90, func(_, i int) *spoolv1.Message {
			return &spoolv1.Message{Key: []byte(strconv.Itoa(i)), Value: make([]byte, 64<<10)}
		}},
	}
	for _, sh := range shapes {
		for _, asJSON := range []bool{false, true} {
			ctype, marshal := "application/proto", proto.Marshal
			if asJSON {
				ctype, marshal = "application/json", protojson.Marshal
			}
			var got uint64
			var req *spoolv1.PublishRequest
			var body []byte
			for round := range 2 { // the first warms up buffers and pools
				req = &spoolv1.PublishRequest{Topic: "t", Messages: make([]*spoolv1.Message, sh.n)}
				for i := range req.Messages {
					req.Messages[i] = sh.msg(round, i)
				}
				var err error
				if body, err = marshal(req); err != nil {
					t.Fatal(err)
				}
				runtime.GC()
				before := totalAlloc()
				st, raw := post(t, base+publishPath, ctype, body)
				got = totalAlloc() - before
				if st != http.StatusOK {
					t.Fatalf("%s (%s): status %d, %.200s", sh.name, ctype, st, raw)
				}
			}
			hs := 0
			for _, m := range req.Messages {
				hs += len(m.Headers)
			}
			charged := uint64(api.PublishCost(len(body), asJSON, len(req.Messages), hs))
			if got > charged+4*uint64(len(body)) {
				t.Errorf("%s (%s): allocated %d bytes, charged %d (+ %d for reading the body)", sh.name, ctype, got, charged, 4*len(body))
			}
		}
	}
}

package api

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"testing/iotest"

	"connectrpc.com/connect"
)

// chunkedBody serves a body within the limit exactly, whatever the sizes
// of the reads beneath and above it, and refuses one beyond.
func TestChunkedBody(t *testing.T) {
	const limit = 3*bodyChunk + 17
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, bodyChunk - 1, bodyChunk, bodyChunk + 1, 2*bodyChunk + 5, limit - 1, limit, limit + 1, 5 * bodyChunk} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rnd.Uint32())
		}
		for _, one := range []bool{false, true} {
			var src io.Reader = bytes.NewReader(data)
			if one {
				src = iotest.OneByteReader(src)
			}
			b := &chunkedBody{ReadCloser: io.NopCloser(src), limit: limit}
			var got []byte
			var err error
			buf := make([]byte, 1+rnd.IntN(5000))
			for {
				var k int
				k, err = b.Read(buf)
				got = append(got, buf[:k]...)
				if err != nil {
					break
				}
			}
			if n > limit {
				var ce *connect.Error
				if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted {
					t.Fatalf("%d bytes: %v", n, err)
				}
				continue
			}
			if err != io.EOF || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes (one byte reads %v): read %d bytes, %v", n, one, len(got), err)
			}
		}
	}
}

// boundBody leaves alone what is not a unary Connect call with a body.
func TestBoundBodyScope(t *testing.T) {
	for _, c := range []struct {
		method, path, ctype string
		length              int64
		bound               bool
	}{
		{"POST", "/spool.v1.PublishService/Publish", "application/json", 100, true},
		{"POST", "/spool.v1.PublishService/Publish", "application/json; charset=utf-8", -1, true},
		{"POST", "/spool.v1.PublishService/Publish", "application/proto", 100, true},
		{"POST", "/spool.v1.PublishService/Publish", "application/connect+proto", 100, false},
		{"POST", "/spool.v1.PublishService/Publish", "application/grpc", 100, false},
		{"POST", "/spool.v1.PublishService/Publish", "application/proto", 10, false}, // within the limit, length known
		{"GET", "/spool.v1.TopicService/ListTopics", "application/json", 100, false},
		{"POST", "/console/x", "application/json", 100, false},
	} {
		r, _ := http.NewRequest(c.method, "http://x"+c.path, bytes.NewReader(make([]byte, 100)))
		r.Header.Set("Content-Type", c.ctype)
		r.ContentLength = c.length
		before := r.Body
		boundBody(r, 50)
		if got := r.Body != before; got != c.bound {
			t.Errorf("%+v: bounded %v", c, got)
		}
	}
}

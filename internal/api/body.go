package api

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// Connect reads a unary request's whole body into a buffer that grows by
// doubling, up to MaxRequestBytes, before it refuses a larger one: a body
// beyond the limit would cost about 4 × the limit. boundBody refuses
// earlier. A body declaring a length beyond the limit is refused at its
// first read, before anything is read; one of unknown length (chunked) is
// read here in fixed chunks, at most the limit and one byte, and refused
// there, so it costs about the limit. Both refusals are Connect errors
// (resource_exhausted), which Connect answers in the request's protocol.
// Streamed messages need nothing: Connect reads each envelope's declared
// size first and discards one beyond the limit without buffering it.

// bodyChunk is the unit an unknown-length unary body is read in.
const bodyChunk = 64 << 10

// boundBody bounds r's body when r is a Connect unary call with a body
// (POST, Content-Type application/proto or application/json, not the
// streaming or gRPC forms).
func boundBody(r *http.Request, limit int) {
	if r.Method != http.MethodPost || r.Body == nil || r.Body == http.NoBody || !strings.HasPrefix(r.URL.Path, "/spool.v1.") {
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/proto" && mt != "application/json") {
		return
	}
	switch {
	case r.ContentLength > int64(limit):
		r.Body = &refusedBody{ReadCloser: r.Body, err: connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, limit))}
	case r.ContentLength < 0:
		r.Body = &chunkedBody{ReadCloser: r.Body, limit: limit}
	}
}

// refusedBody fails its first read, reading nothing.
type refusedBody struct {
	io.ReadCloser
	err error
}

func (b *refusedBody) Read([]byte) (int, error) { return 0, b.err }

// chunkedBody reads a body of unknown length whole at its first read, in
// chunks of bodyChunk, refusing it once it exceeds limit; then serves
// what it read.
type chunkedBody struct {
	io.ReadCloser
	limit  int
	read   bool
	err    error
	chunks [][]byte
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	if !b.read {
		b.read = true
		b.fill()
	}
	if b.err != nil {
		return 0, b.err
	}
	n := 0
	for n < len(p) && len(b.chunks) > 0 {
		c := copy(p[n:], b.chunks[0])
		n += c
		if b.chunks[0] = b.chunks[0][c:]; len(b.chunks[0]) == 0 {
			b.chunks[0] = nil
			b.chunks = b.chunks[1:]
		}
	}
	if len(b.chunks) == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (b *chunkedBody) fill() {
	total := 0
	for {
		c := make([]byte, min(bodyChunk, b.limit+1-total))
		n, err := io.ReadFull(b.ReadCloser, c)
		if n > 0 {
			b.chunks = append(b.chunks, c[:n])
			total += n
		}
		if total > b.limit {
			b.chunks = nil
			b.err = connect.NewError(connect.CodeResourceExhausted,
				fmt.Errorf("request body is larger than the limit of %d bytes", b.limit))
			return
		}
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return
		default:
			b.err = err
			return
		}
	}
}

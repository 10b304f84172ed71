package bench

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"

	"github.com/spoolmq/spool/client"
)

// startOTLPSink serves OTLP/HTTP trace exports on loopback, discarding
// them, and points this process's OTEL_* variables at it (for a server
// started in-process); stop restores them.
func startOTLPSink() (stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for {
			if _, err := r.Body.Read(buf); err != nil {
				break
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse
	})}
	go srv.Serve(ln)
	vars := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + ln.Addr().String(),
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
	}
	old := map[string]*string{}
	for k, v := range vars {
		if prev, ok := os.LookupEnv(k); ok {
			old[k] = &prev
		} else {
			old[k] = nil
		}
		os.Setenv(k, v)
	}
	return func() {
		for k, v := range old {
			if v == nil {
				os.Unsetenv(k)
			} else {
				os.Setenv(k, *v)
			}
		}
		srv.Close()
	}, nil
}

// traceparents returns the messages a benchmark publishes: with traced,
// each carries one of 1,024 traceparents in turn, the fraction sampled of
// them with the sampled flag.
func traceparents(traced bool, sampled float64, value []byte) func(i int) client.Message {
	if !traced {
		return func(int) client.Message { return client.Message{Value: value} }
	}
	hs := make([][]client.Header, 1024)
	for i := range hs {
		var id [24]byte
		rand.Read(id[:])
		flag := "-00"
		if float64(i) < sampled*float64(len(hs)) {
			flag = "-01"
		}
		tp := "00-" + hex.EncodeToString(id[:16]) + "-" + hex.EncodeToString(id[16:]) + flag
		hs[i] = []client.Header{{Key: "traceparent", Value: []byte(tp)}}
	}
	return func(i int) client.Message { return client.Message{Value: value, Headers: hs[i%len(hs)]} }
}

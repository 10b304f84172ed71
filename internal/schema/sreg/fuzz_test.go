package sreg

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/state"
)

// fuzzRoutes are the endpoints that read a request body, by the fuzz
// input's first byte; SUBJECT is replaced by one of fuzzSubjects.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/subjects/SUBJECT/versions"},
	{"POST", "/subjects/SUBJECT/versions?normalize=true"},
	{"POST", "/subjects/SUBJECT"},
	{"POST", "/subjects/SUBJECT?deleted=true"},
	{"POST", "/compatibility/subjects/SUBJECT/versions/latest?verbose=true"},
	{"POST", "/compatibility/subjects/SUBJECT/versions/1"},
	{"POST", "/compatibility/subjects/SUBJECT/versions"},
	{"PUT", "/config"},
	{"PUT", "/config/SUBJECT"},
	{"PUT", "/mode/SUBJECT"},
	{"PUT", "/spool/readers/orders/SUBJECT"},
	{"PUT", "/spool/reader-check/SUBJECT"},
}

var fuzzSubjects = []string{"avro-value", "proto-value", "json-value", "new-subject", "ref%2Fslash"}

// FuzzHandler sends arbitrary bodies to every endpoint of the registry's
// REST API that reads one (DESIGN.md, "Fuzzing and the bad-input set"),
// through its http.Handler: never a panic and never a 5xx; an error is a
// 4xx in the registry's JSON format (error_code and a message), an answer
// is JSON. The registry is shared by the inputs (it is a real one, on a
// real state store), with three subjects registered first; the global
// mode is never changed (PUT /mode on a subject only), so registration
// stays reachable.
func FuzzHandler(f *testing.F) {
	dir := f.TempDir()
	st, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: dir, State: st, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close(); st.Close() })
	reg, err := New(Config{Space: b.Space("schema"), Formats: Formats(), Logger: quiet,
		Subscriptions: func(topic, sub string) bool { return true }})
	if err != nil {
		f.Fatal(err)
	}
	h := reg.Handler()
	do := func(method, path string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ContentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	avro := `{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"long"},{"name":"item","type":"string","default":""}]}`
	proto := `syntax = "proto3"; package acme; message Order { int64 id = 1; string item = 2; }`
	jsonSchema := `{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}`
	bodies := [][]byte{}
	for subj, s := range map[string]map[string]any{
		"avro-value":  {"schema": avro},
		"proto-value": {"schema": proto, "schemaType": "PROTOBUF"},
		"json-value":  {"schema": jsonSchema, "schemaType": "JSON"},
	} {
		body, _ := json.Marshal(s)
		if w := do("POST", "/subjects/"+subj+"/versions", body); w.Code != http.StatusOK {
			f.Fatalf("register %s: %d %s", subj, w.Code, w.Body)
		}
		bodies = append(bodies, body)
	}
	ref, _ := json.Marshal(map[string]any{"schema": `{"type":"record","name":"Box","fields":[{"name":"o","type":"acme.Order"}]}`,
		"references": []Ref{{Name: "acme.Order", Subject: "avro-value", Version: 1}}})
	bodies = append(bodies, ref,
		[]byte(`{"compatibility":"FULL_TRANSITIVE"}`), []byte(`{"compatibility":"NONE","normalize":true}`),
		[]byte(`{"mode":"READONLY"}`), []byte(`{"mode":"IMPORT"}`),
		[]byte(`{"subject":"avro-value","version":"latest"}`), []byte(`{"subject":"avro-value","version":1}`),
		[]byte(`{"readerCheck":"backward"}`), []byte(`{"schema":"\"int\"","id":7,"version":3}`), []byte(`{}`), []byte(`null`))
	for i := range fuzzRoutes {
		for _, body := range bodies {
			f.Add(uint8(i), uint8(i%len(fuzzSubjects)), body)
		}
	}
	f.Fuzz(func(t *testing.T, route, subject uint8, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := strings.Replace(rt.path, "SUBJECT", fuzzSubjects[int(subject)%len(fuzzSubjects)], 1)
		w := do(rt.method, path, body)
		if ct := w.Header().Get("Content-Type"); ct != ContentType {
			t.Fatalf("%s %s %q: content type %q", rt.method, path, body, ct)
		}
		if w.Code == http.StatusOK {
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %s %q: 200 with %q", rt.method, path, body, w.Body)
			}
			return
		}
		var e struct {
			Code    *int   `json:"error_code"`
			Message string `json:"message"`
		}
		if w.Code < 400 || w.Code >= 500 || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Code == nil || e.Message == "" {
			t.Fatalf("%s %s %q: %d %s", rt.method, path, body, w.Code, w.Body)
		}
	})
}

package sreg

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBadInput: every malformed request gets a Confluent error code and
// stores nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	deepAvro := strings.Repeat(`{"type":"array","items":`, 2000) + `"int"` + strings.Repeat(`}`, 2000)
	deepJSON := strings.Repeat(`{"items":`, 5000) + `{}` + strings.Repeat(`}`, 5000)
	body := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	for _, c := range []struct {
		name, method, path, body string
		status, code             int
	}{
		{"malformed JSON", "POST", "/subjects/s/versions", `{"schema":`, 422, CodeInvalidRequest},
		{"trailing data", "POST", "/subjects/s/versions", `{"schema":"\"int\""} {}`, 422, CodeInvalidRequest},
		{"unknown type", "POST", "/subjects/s/versions", body(map[string]string{"schema": `"int"`, "schemaType": "XML"}), 422, CodeInvalidSchema},
		{"empty schema", "POST", "/subjects/s/versions", `{"schema":""}`, 422, CodeInvalidSchema},
		{"malformed avro", "POST", "/subjects/s/versions", body(map[string]string{"schema": `{"type":"record"}`}), 422, CodeInvalidSchema},
		{"malformed protobuf", "POST", "/subjects/s/versions", body(map[string]string{"schema": `message {`, "schemaType": "PROTOBUF"}), 422, CodeInvalidSchema},
		{"malformed json schema", "POST", "/subjects/s/versions", body(map[string]string{"schema": `{"type":7}`, "schemaType": "JSON"}), 422, CodeInvalidSchema},
		{"deep avro", "POST", "/subjects/s/versions", body(map[string]string{"schema": deepAvro}), 422, CodeInvalidSchema},
		{"deep json schema", "POST", "/subjects/s/versions", body(map[string]string{"schema": deepJSON, "schemaType": "JSON"}), 422, CodeInvalidSchema},
		{"huge schema", "POST", "/subjects/s/versions", body(map[string]string{"schema": `"` + strings.Repeat("x", MaxSchemaBytes) + `"`}), 422, CodeInvalidSchema},
		{"reference to a missing subject", "POST", "/subjects/s/versions",
			body(map[string]any{"schema": `{"type":"record","name":"R","fields":[{"name":"a","type":"acme.A"}]}`,
				"references": []Ref{{Name: "acme.A", Subject: "nope", Version: 1}}}), 422, CodeInvalidSchema},
		{"reference without a name", "POST", "/subjects/s/versions",
			body(map[string]any{"schema": `"int"`, "references": []Ref{{Subject: "nope", Version: 1}}}), 422, CodeInvalidSchema},
		{"self reference", "POST", "/subjects/s/versions",
			body(map[string]any{"schema": `"int"`, "references": []Ref{{Name: "x", Subject: "s", Version: 1}}}), 422, CodeInvalidSchema},
		{"bad version", "GET", "/subjects/s/versions/abc", "", 422, CodeInvalidVersion},
		{"version zero", "GET", "/subjects/s/versions/0", "", 422, CodeInvalidVersion},
		{"huge version", "GET", "/subjects/s/versions/99999999999", "", 422, CodeInvalidVersion},
		{"bad id", "GET", "/schemas/ids/-1", "", 404, CodeSchemaNotFound},
		{"bad level", "PUT", "/config", `{"compatibility":"SIDEWAYS"}`, 422, CodeInvalidCompatibilityLevel},
		{"bad mode", "PUT", "/mode", `{"mode":"WRITEONLY"}`, 422, CodeInvalidMode},
		{"long subject", "POST", "/subjects/" + strings.Repeat("s", 300) + "/versions", body(map[string]string{"schema": `"int"`}), 422, CodeInvalidRequest},
		{"unknown path", "GET", "/nope", "", 404, 404},
		{"reader of a missing subject", "PUT", "/spool/readers/t/s", `{"subject":"nope","version":1}`, 404, CodeSubjectNotFound},
		{"reader with a bad version", "PUT", "/spool/readers/t/s", `{"subject":"nope","version":"x"}`, 422, CodeInvalidVersion},
	} {
		req, _ := http.NewRequest(c.method, e.srv.URL+c.path, strings.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got struct {
			Code    int    `json:"error_code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(raw, &got); err != nil || resp.StatusCode != c.status || got.Code != c.code || got.Message == "" {
			t.Errorf("%s: %d %s, want %d with error_code %d", c.name, resp.StatusCode, raw, c.status, c.code)
		}
		if ct := resp.Header.Get("Content-Type"); ct != ContentType {
			t.Errorf("%s: content type %q", c.name, ct)
		}
	}
	if subs := e.reg.Subjects("", true); len(subs) != 0 {
		t.Fatalf("refused requests stored subjects %v", subs)
	}
}

package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/console"
	"github.com/spoolmq/spool/internal/schema/sreg"
)

// httpDo sends a request to the native API's listener as user.
func (e *mxEnv) httpDo(t *testing.T, user, method, path, body string) (int, string) {
	t.Helper()
	r, err := http.NewRequest(method, "http://"+e.srv.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+e.keys[user])
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if method == http.MethodPost && strings.HasPrefix(path, "/topics/") { // the console's forms
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "http://"+e.srv.HTTPAddr())
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	return doHTTP(t, r)
}

func (e *mxEnv) httpStatus(t *testing.T, user, method, path, body string) int {
	code, _ := e.httpDo(t, user, method, path, body)
	return code
}

// registryDo sends a request to the schema registry as user, with the
// user's password (Basic, as serializers send it).
func (e *mxEnv) registryDo(t *testing.T, user, method, path, body string) (int, string) {
	t.Helper()
	r, err := http.NewRequest(method, "http://"+e.srv.SchemaRegistryAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.SetBasicAuth(user, mxUsers[user])
	if body != "" {
		r.Header.Set("Content-Type", sreg.ContentType)
	}
	return doHTTP(t, r)
}

func doHTTP(t *testing.T, r *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// httpRow is one request: path may hold {id} (the schema id of the
// allowed principal's subject).
type httpRow struct {
	pattern, method, path, body string
	open                        bool // no check: both are answered (a listing is filtered)
	filtered                    func(user, body string) bool
	// deniedPath and deniedBody, when set, are the refused principal's
	// request: one of its checks passes (bob's own name), another not.
	deniedPath, deniedBody string
}

// registryRows are the registry's requests, one or more per route.
func registryRows() []httpRow {
	schemaBody := `{"schema":"\"string\""}`
	refBody := `{"schema":"{\"type\":\"record\",\"name\":\"B\",\"fields\":[{\"name\":\"o\",\"type\":\"Order\"}]}",` +
		`"references":[{"name":"Order","subject":"orders-ref-value","version":1}]}`
	notFiltered := func(user, body string) bool { // bob sees nothing of alice's
		return user == "alice" && strings.Contains(body, mxSubject) && !strings.Contains(body, "bobs") ||
			user == "bob" && !strings.Contains(body, "orders")
	}
	return []httpRow{
		{pattern: "GET /{$}", method: "GET", path: "/", open: true},
		{pattern: "GET /schemas/types", method: "GET", path: "/schemas/types", open: true},
		{pattern: "GET /contexts", method: "GET", path: "/contexts", open: true},
		{pattern: "GET /schemas", method: "GET", path: "/schemas", filtered: notFiltered},
		{pattern: "GET /subjects", method: "GET", path: "/subjects", filtered: notFiltered},
		{pattern: "GET /subjects", method: "GET", path: "/subjects?deletedOnly=true", filtered: func(user, body string) bool {
			return user == "alice" && strings.Contains(body, "orders-gone-value") && !strings.Contains(body, "bobs") ||
				user == "bob" && !strings.Contains(body, "orders")
		}},
		{pattern: "GET /schemas/ids/{id}", method: "GET", path: "/schemas/ids/{id}"},
		{pattern: "GET /schemas/ids/{id}/schema", method: "GET", path: "/schemas/ids/{id}/schema"},
		{pattern: "GET /schemas/ids/{id}/subjects", method: "GET", path: "/schemas/ids/{id}/subjects", filtered: func(user, body string) bool {
			return (user == "alice") == strings.Contains(body, mxSubject)
		}},
		{pattern: "GET /schemas/ids/{id}/versions", method: "GET", path: "/schemas/ids/{id}/versions", filtered: func(user, body string) bool {
			return (user == "alice") == strings.Contains(body, mxSubject)
		}},
		{pattern: "GET /subjects/{subject}/versions", method: "GET", path: "/subjects/orders-value/versions"},
		{pattern: "POST /subjects/{subject}/versions", method: "POST", path: "/subjects/orders-value/versions", body: schemaBody},
		// A schema referencing a subject the principal may not describe.
		{pattern: "POST /subjects/{subject}/versions", method: "POST", path: "/subjects/orders-b-value/versions", body: refBody,
			deniedPath: "/subjects/bobs-b-value/versions", deniedBody: refBody},
		{pattern: "POST /subjects/{subject}", method: "POST", path: "/subjects/orders-b-value", body: refBody,
			deniedPath: "/subjects/bobs-b-value", deniedBody: refBody},
		{pattern: "POST /compatibility/subjects/{subject}/versions", method: "POST", path: "/compatibility/subjects/orders-b-value/versions", body: refBody,
			deniedPath: "/compatibility/subjects/bobs-b-value/versions", deniedBody: refBody},
		{pattern: "GET /subjects/{subject}/versions/{version}", method: "GET", path: "/subjects/orders-value/versions/1"},
		{pattern: "GET /subjects/{subject}/versions/{version}/schema", method: "GET", path: "/subjects/orders-value/versions/latest/schema"},
		{pattern: "GET /subjects/{subject}/versions/{version}/referencedby", method: "GET", path: "/subjects/orders-value/versions/1/referencedby"},
		{pattern: "POST /subjects/{subject}", method: "POST", path: "/subjects/orders-value", body: schemaBody},
		{pattern: "DELETE /subjects/{subject}", method: "DELETE", path: "/subjects/orders-del-value"},
		{pattern: "DELETE /subjects/{subject}/versions/{version}", method: "DELETE", path: "/subjects/orders-del2-value/versions/1"},
		{pattern: "GET /config", method: "GET", path: "/config"},
		{pattern: "GET /config/{subject}", method: "GET", path: "/config/orders-value?defaultToGlobal=true"},
		{pattern: "PUT /config", method: "PUT", path: "/config", body: `{"compatibility":"BACKWARD"}`},
		{pattern: "PUT /config/{subject}", method: "PUT", path: "/config/orders-value", body: `{"compatibility":"BACKWARD"}`},
		{pattern: "DELETE /config/{subject}", method: "DELETE", path: "/config/orders-value"},
		{pattern: "DELETE /config", method: "DELETE", path: "/config"},
		{pattern: "GET /mode", method: "GET", path: "/mode"},
		{pattern: "GET /mode/{subject}", method: "GET", path: "/mode/orders-value?defaultToGlobal=true"},
		{pattern: "PUT /mode", method: "PUT", path: "/mode", body: `{"mode":"READWRITE"}`},
		{pattern: "PUT /mode/{subject}", method: "PUT", path: "/mode/orders-value", body: `{"mode":"READWRITE"}`},
		{pattern: "DELETE /mode/{subject}", method: "DELETE", path: "/mode/orders-value"},
		{pattern: "POST /compatibility/subjects/{subject}/versions/{version}", method: "POST", path: "/compatibility/subjects/orders-value/versions/latest", body: schemaBody},
		{pattern: "POST /compatibility/subjects/{subject}/versions", method: "POST", path: "/compatibility/subjects/orders-value/versions", body: schemaBody},
		{pattern: "GET /spool/readers", method: "GET", path: "/spool/readers"},
		{pattern: "PUT /spool/readers/{topic}/{subscription}", method: "PUT", path: "/spool/readers/orders/orders-sub", body: `{"subject":"orders-value","version":1}`},
		{pattern: "PUT /spool/readers/{topic}/{subscription}", method: "PUT", path: "/spool/readers/orders/orders-sub", body: `{"subject":"orders-value","version":1}`,
			deniedPath: "/spool/readers/bobs/bobs-sub", deniedBody: `{"subject":"orders-value","version":1}`},
		{pattern: "DELETE /spool/readers/{topic}/{subscription}", method: "DELETE", path: "/spool/readers/orders/orders-sub"},
		{pattern: "GET /spool/usage/{subject}", method: "GET", path: "/spool/usage/orders-value"},
		{pattern: "GET /spool/reader-check/{subject}", method: "GET", path: "/spool/reader-check/orders-value"},
		{pattern: "PUT /spool/reader-check/{subject}", method: "PUT", path: "/spool/reader-check/orders-value", body: `{"readerCheck":"WARN"}`},
	}
}

// registryMatrix sends every registry route as bob (403, 40301) and
// alice.
func (e *mxEnv) registryMatrix(t *testing.T) {
	ids := map[string]int{}
	for subj, sch := range map[string]string{mxSubject: `"string"`, "bobs-value": `"int"`, "orders-del-value": `"long"`, "orders-del2-value": `"double"`,
		"orders-ref-value": `{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}`} {
		b, _ := json.Marshal(map[string]string{"schema": sch})
		code, body := e.registryDo(t, "root", "POST", "/subjects/"+subj+"/versions", string(b))
		var out struct{ ID int }
		if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("register %s: %d %s", subj, code, body)
		}
		ids[subj] = out.ID
	}
	// A deleted subject of each, for ?deletedOnly.
	for _, subj := range []string{"orders-gone-value", "bobs-gone-value"} {
		e.registryDo(t, "root", "POST", "/subjects/"+subj+"/versions", `{"schema":"\"float\""}`)
		e.registryDo(t, "root", "DELETE", "/subjects/"+subj, "")
	}
	rows := registryRows()
	for _, p := range sreg.Routes() {
		if !slices.ContainsFunc(rows, func(r httpRow) bool { return r.pattern == p }) {
			e.record("registry", p, "-", "a matrix row", "none: add one to registryRows", false)
		}
	}
	for _, row := range rows {
		path := strings.ReplaceAll(row.path, "{id}", fmt.Sprint(ids[mxSubject]))
		for _, user := range []string{"bob", "alice"} {
			path, reqBody := path, row.body
			if user == "bob" && row.deniedPath != "" {
				path, reqBody = row.deniedPath, row.deniedBody
			}
			code, body := e.registryDo(t, user, row.method, path, reqBody)
			name := row.method + " " + path
			got := fmt.Sprintf("%d %s", code, body)
			switch {
			case row.open:
				e.record("registry", name, user, "200", got, code == 200)
			case row.filtered != nil:
				e.record("registry", name, user, "200, filtered", got, code == 200 && row.filtered(user, body))
			case user == "alice":
				e.record("registry", name, user, "not 403", got, code != 403)
			default:
				e.record("registry", name, user, "403 40301", got, code == 403 && strings.Contains(body, `"error_code":40301`))
			}
		}
	}
	// bob reads his own schema by id: describe on its subject suffices.
	code, body := e.registryDo(t, "bob", "GET", fmt.Sprintf("/schemas/ids/%d", ids["bobs-value"]), "")
	e.record("registry", "GET /schemas/ids/{bobs-value's id}", "bob", "200", fmt.Sprintf("%d %s", code, body), code == 200)
}

// httpMatrix: the catalog, user and rule management, the console.
func (e *mxEnv) httpMatrix(t *testing.T) {
	rows := []httpRow{
		{method: "GET", path: "/catalog"},
		{method: "GET", path: "/spool/auth/users"},
		{method: "POST", path: "/spool/auth/users", body: `{"name":"frank","password":"frank-secret"}`},
		{method: "GET", path: "/spool/auth/users/frank"},
		{method: "POST", path: "/spool/auth/users/frank/keys"},
		{method: "POST", path: "/spool/auth/users/frank/rotate"},
		{method: "DELETE", path: "/spool/auth/keys/nokey"},
		{method: "DELETE", path: "/spool/auth/users/frank"},
		{method: "GET", path: "/spool/auth/acls"},
		{method: "POST", path: "/spool/auth/acls", body: `{"rules":[{"principal":"User:gina","resource":"topic","name":"ginas","operation":"consume"}]}`},
		{method: "DELETE", path: "/spool/auth/acls?principal=User:gina"},
		{method: "GET", path: "/spool/auth/quotas"},
		{method: "POST", path: "/spool/auth/quotas/users/gina", body: `{"set":{"producer_byte_rate":1048576}}`},
		{method: "GET", path: "/spool/auth/quotas/users/gina"},
		{method: "POST", path: "/spool/auth/quotas/default", body: `{"set":{"request_rate":100000}}`},
		{method: "DELETE", path: "/spool/auth/quotas/default"},
		{method: "DELETE", path: "/spool/auth/quotas/users/gina"},
		{method: "POST", path: "/spool/admin/backup", body: fmt.Sprintf(`{"dir":%q}`, filepath.Join(t.TempDir(), "backup"))},
		// The console: pattern names the route (console.Routes).
		{pattern: "GET /{$}", method: "GET", path: "/"},
		{pattern: "GET /topics/{topic}", method: "GET", path: "/topics/orders"},
		{pattern: "GET /topics/{topic}/messages", method: "GET", path: "/topics/orders/messages"},
		{pattern: "GET /topics/{topic}/subscriptions/{sub}", method: "GET", path: "/topics/orders/subscriptions/orders-sub"},
		{pattern: "GET /topics/{topic}/subscriptions/{sub}/dead-letters", method: "GET", path: "/topics/orders/subscriptions/orders-sub/dead-letters"},
		{pattern: "GET /topics/{topic}/subscriptions/{sub}/dead-letters", method: "GET", path: "/topics/orders/subscriptions/orders-sub/dead-letters",
			deniedPath: "/topics/orders/subscriptions/bobs-on-orders/dead-letters"},
		{pattern: "POST /topics/{topic}/subscriptions/{sub}/reset", method: "POST", path: "/topics/orders/subscriptions/orders-sub/reset", body: "to=earliest"},
		{pattern: "POST /topics/{topic}/subscriptions/{sub}/redrive", method: "POST", path: "/topics/orders/subscriptions/orders-sub/redrive", body: "target=subscription"},
		{pattern: "POST /topics/{topic}/subscriptions/{sub}/redrive", method: "POST", path: "/topics/orders/subscriptions/orders-sub/redrive", body: "target=topic&dry_run=1",
			deniedPath: "/topics/orders/subscriptions/bobs-on-orders/redrive", deniedBody: "target=topic&dry_run=1"},
		{pattern: "GET /topics/{topic}/subscriptions/{sub}/reset", method: "GET", path: "/topics/orders/subscriptions/orders-sub/reset"},
		{pattern: "GET /topics/{topic}/subscriptions/{sub}/redrive", method: "GET", path: "/topics/orders/subscriptions/orders-sub/redrive"},
		{pattern: "GET /schemas", method: "GET", path: "/schemas"},
		{pattern: "GET /schemas/{subject}", method: "GET", path: "/schemas/orders-value"},
		{pattern: "GET /console/catalog", method: "GET", path: "/console/catalog"},
		{pattern: "GET /console/api/stats", method: "GET", path: "/console/api/stats?topic=orders"},
		{method: "GET", path: "/console/static/console.css"},
	}
	for _, p := range console.Routes() {
		if !slices.ContainsFunc(rows, func(r httpRow) bool { return r.pattern == p }) {
			e.record("http", "console "+p, "-", "a matrix row", "none: add one to httpMatrix", false)
		}
	}
	for _, row := range rows {
		for _, user := range []string{"bob", "alice"} {
			path, reqBody := row.path, row.body
			if user == "bob" && row.deniedPath != "" {
				path, reqBody = row.deniedPath, row.deniedBody
			}
			name := row.method + " " + path + " " + reqBody
			code, body := e.httpDo(t, user, row.method, path, reqBody)
			got := fmt.Sprintf("%d %s", code, body)
			if user == "alice" {
				e.record("http", name, user, "not 403", got, code != 403 && code != 401)
			} else {
				e.record("http", name, user, "403", got, code == 403)
			}
		}
	}
}

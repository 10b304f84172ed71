package sreg

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"

	"github.com/spoolmq/spool/internal/schema"
)

// ContentType is the Confluent Schema Registry API's content type.
const ContentType = "application/vnd.schemaregistry.v1+json"

// maxBody bounds a request body: a schema at its largest, escaped, and
// its references.
const maxBody = 2*MaxSchemaBytes + 64<<10

// route is one endpoint of the API.
type route struct {
	pattern string
	fn      func(*http.Request) (any, error)
}

// routes lists the API's endpoints (docs/schemas.md lists them). A nil
// receiver gives the patterns (Routes).
func (r *Registry) routes() []route {
	rs := []route{
		{"GET /{$}", func(*http.Request) (any, error) { return struct{}{}, nil }},
		{"GET /schemas/types", func(*http.Request) (any, error) { return schema.Types, nil }},
		{"GET /schemas", r.getSchemas},
		{"GET /schemas/ids/{id}", r.getSchemaByID},
		{"GET /schemas/ids/{id}/schema", r.getRawSchemaByID},
		{"GET /schemas/ids/{id}/subjects", r.getSubjectsOfID},
		{"GET /schemas/ids/{id}/versions", r.getVersionsOfID},
		{"GET /subjects", r.getSubjects},
		{"GET /subjects/{subject}/versions", r.getVersions},
		{"POST /subjects/{subject}/versions", r.postRegister},
		{"GET /subjects/{subject}/versions/{version}", r.getVersion},
		{"GET /subjects/{subject}/versions/{version}/schema", r.getRawVersion},
		{"GET /subjects/{subject}/versions/{version}/referencedby", r.getReferencedBy},
		{"POST /subjects/{subject}", r.postLookup},
		{"DELETE /subjects/{subject}", r.deleteSubject},
		{"DELETE /subjects/{subject}/versions/{version}", r.deleteVersion},
	}
	for _, s := range []struct {
		prefix string
		st     interface {
			getHandler(*http.Request) (any, error)
			putHandler(*http.Request) (any, error)
			deleteHandler(*http.Request) (any, error)
		}
	}{{"/config", r.levelSetting()}, {"/mode", r.modeSetting()}} {
		rs = append(rs,
			route{"GET " + s.prefix, s.st.getHandler},
			route{"GET " + s.prefix + "/{subject}", s.st.getHandler},
			route{"PUT " + s.prefix, s.st.putHandler},
			route{"PUT " + s.prefix + "/{subject}", s.st.putHandler},
			route{"DELETE " + s.prefix + "/{subject}", s.st.deleteHandler})
	}
	return append(rs,
		route{"DELETE /config", r.levelSetting().deleteHandler},
		route{"POST /compatibility/subjects/{subject}/versions/{version}", r.postCompatibility},
		route{"POST /compatibility/subjects/{subject}/versions", r.postCompatibility},
		route{"GET /contexts", func(*http.Request) (any, error) { return []string{"."}, nil }},
		// Spool's own: declared reader schemas and usage (docs/schemas.md).
		route{"GET /spool/readers", r.getReaders},
		route{"PUT /spool/readers/{topic}/{subscription}", r.putReader},
		route{"DELETE /spool/readers/{topic}/{subscription}", r.deleteReader},
		route{"GET /spool/usage/{subject}", r.getUsage},
		route{"GET /spool/reader-check/{subject}", r.getReaderCheck},
		route{"PUT /spool/reader-check/{subject}", r.putReaderCheck},
	)
}

// Routes returns the patterns of the API's endpoints ("METHOD /path"), as
// Handler serves them (the server's authorization matrix walks them).
func Routes() []string {
	var r *Registry
	var out []string
	for _, rt := range r.routes() {
		out = append(out, rt.pattern)
	}
	return out
}

// Handler serves the Confluent Schema Registry REST API
// (docs/schemas.md lists the endpoints).
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range r.routes() {
		fn := rt.fn
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, req *http.Request) {
			req.Body = http.MaxBytesReader(w, req.Body, maxBody)
			v, err := fn(req)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, v)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeError(w, &Error{Code: http.StatusNotFound, Message: "HTTP 404 Not Found"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h["Content-Type"] = contentTypeValue
	if b, ok := v.(encoded); ok {
		h["Content-Length"] = []string{strconv.Itoa(len(b))}
		w.WriteHeader(status)
		w.Write(b)
		return
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

var contentTypeValue = []string{ContentType}

// encoded is an answer already encoded as JSON.
type encoded []byte

func writeError(w http.ResponseWriter, err error) {
	e := asError(err)
	writeJSON(w, e.Status(), map[string]any{"error_code": e.Code, "message": e.Message})
}

// schemaBody is a request body that carries a schema.
type schemaBody struct {
	Schema     string `json:"schema"`
	SchemaType string `json:"schemaType"`
	References []Ref  `json:"references"`
	ID         int    `json:"id"`
	Version    int    `json:"version"`
}

func readJSON(req *http.Request, v any) error {
	dec := json.NewDecoder(req.Body)
	if err := dec.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return errorf(CodeInvalidSchema, "Invalid schema: the request is larger than %d bytes", maxBody)
		}
		return errorf(CodeInvalidRequest, "Unrecognizable request body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(CodeInvalidRequest, "Unrecognizable request body: data after the JSON object")
	}
	return nil
}

// readSchema reads a request's schema; its references must name subjects
// the request's principal may describe (their schemas are read to resolve
// it: a reference to another's subject would tell whether it exists and
// what it holds).
func (r *Registry) readSchema(req *http.Request) (SchemaInput, schemaBody, error) {
	in, b, err := readSchema(req)
	if err != nil {
		return in, b, err
	}
	for _, ref := range b.References {
		if !r.allows(req, ref.Subject) {
			return in, b, &Error{Code: CodeForbidden, Message: "not authorized to reference subject " + strconv.Quote(ref.Subject) + ": describe on it is needed"}
		}
	}
	return in, b, nil
}

func readSchema(req *http.Request) (SchemaInput, schemaBody, error) {
	var b schemaBody
	if err := readJSON(req, &b); err != nil {
		return SchemaInput{}, b, err
	}
	t, err := schema.ParseType(b.SchemaType)
	if err != nil {
		return SchemaInput{}, b, errorf(CodeInvalidSchema, "Invalid schema: %v", err)
	}
	return SchemaInput{Type: t, Text: b.Schema, Refs: b.References}, b, nil
}

func flag(req *http.Request, name string) bool {
	v, _ := strconv.ParseBool(req.URL.Query().Get(name))
	return v
}

func pathID(req *http.Request) (int, error) {
	id, err := strconv.ParseInt(req.PathValue("id"), 10, 32)
	if err != nil || id < 1 {
		return 0, errorf(CodeSchemaNotFound, "Schema %q not found", req.PathValue("id"))
	}
	return int(id), nil
}

// pathVersion reads a version: a number from 1, or latest (-1).
func pathVersion(req *http.Request) (int, error) {
	s := req.PathValue("version")
	if s == "latest" || s == "-1" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 || v > math.MaxInt32 {
		return 0, errorf(CodeInvalidVersion, "The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", s)
	}
	return int(v), nil
}

// versionJSON is a subject's version as the API shows it.
type versionJSON struct {
	Subject    string `json:"subject,omitempty"`
	Version    int    `json:"version,omitempty"`
	ID         int    `json:"id,omitempty"`
	SchemaType string `json:"schemaType,omitempty"`
	References []Ref  `json:"references,omitempty"`
	Schema     string `json:"schema"`
}

func toJSON(g Registered) versionJSON {
	v := versionJSON{Subject: g.Subject, Version: g.Version, ID: g.ID, References: g.Refs, Schema: g.Text}
	if g.Type != schema.Avro {
		v.SchemaType = string(g.Type)
	}
	return v
}

func (r *Registry) getSchemas(req *http.Request) (any, error) {
	q := req.URL.Query()
	var out []versionJSON
	for _, g := range r.All(q.Get("subjectPrefix"), flag(req, "deleted"), flag(req, "latestOnly")) {
		if r.allows(req, g.Subject) {
			out = append(out, toJSON(g))
		}
	}
	if out == nil {
		out = []versionJSON{}
	}
	return out, nil
}

func (r *Registry) getSchemaByID(req *http.Request) (any, error) {
	id, err := pathID(req)
	if err != nil {
		return nil, err
	}
	if err := r.checkID(req, id); err != nil {
		return nil, err
	}
	subject := req.URL.Query().Get("subject")
	if subject == "" {
		// The hot path of deserializers: a schema's answer never changes
		// while the id exists, so it is encoded once.
		if b, ok := r.byIDCache.Load(id); ok && r.hasID(id) {
			return encoded(b.([]byte)), nil
		}
	}
	g, err := r.ByID(id, subject)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(toJSON(g))
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if subject == "" {
		r.byIDCache.Store(id, b)
	}
	return encoded(b), nil
}

// rawSchema is a schema's text, answered as is.
type rawSchema string

func (s rawSchema) MarshalJSON() ([]byte, error) {
	if json.Valid([]byte(s)) {
		return []byte(s), nil
	}
	return json.Marshal(string(s)) // Protobuf text: a JSON string
}

func (r *Registry) getRawSchemaByID(req *http.Request) (any, error) {
	id, err := pathID(req)
	if err != nil {
		return nil, err
	}
	if err := r.checkID(req, id); err != nil {
		return nil, err
	}
	g, err := r.ByID(id, req.URL.Query().Get("subject"))
	if err != nil {
		return nil, err
	}
	return rawSchema(g.Text), nil
}

func (r *Registry) getSubjectsOfID(req *http.Request) (any, error) {
	id, err := pathID(req)
	if err != nil {
		return nil, err
	}
	svs, err := r.VersionsOfID(id, flag(req, "deleted"))
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, sv := range svs {
		if !r.allows(req, sv.Subject) {
			continue
		}
		if len(out) == 0 || out[len(out)-1] != sv.Subject {
			out = append(out, sv.Subject)
		}
	}
	return out, nil
}

func (r *Registry) getVersionsOfID(req *http.Request) (any, error) {
	id, err := pathID(req)
	if err != nil {
		return nil, err
	}
	svs, err := r.VersionsOfID(id, flag(req, "deleted"))
	if err != nil {
		return nil, err
	}
	out := svs[:0:0]
	for _, sv := range svs {
		if r.allows(req, sv.Subject) {
			out = append(out, sv)
		}
	}
	return out, nil
}

func (r *Registry) getSubjects(req *http.Request) (any, error) {
	prefix := req.URL.Query().Get("subjectPrefix")
	if flag(req, "deletedOnly") {
		all := r.Subjects(prefix, true)
		live := r.Subjects(prefix, false)
		out := []string{}
		for _, s := range all {
			if !containsSorted(live, s) && r.allows(req, s) {
				out = append(out, s)
			}
		}
		return out, nil
	}
	out := []string{}
	for _, s := range r.Subjects(prefix, flag(req, "deleted")) {
		if r.allows(req, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func containsSorted(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func (r *Registry) getVersions(req *http.Request) (any, error) {
	return r.Versions(req.PathValue("subject"), flag(req, "deleted"))
}

func (r *Registry) postRegister(req *http.Request) (any, error) {
	in, b, err := r.readSchema(req)
	if err != nil {
		return nil, err
	}
	id, warnings, err := r.register(req.PathValue("subject"), in, b.ID, b.Version)
	if err != nil {
		return nil, err
	}
	if len(warnings) > 0 {
		return map[string]any{"id": id, "warnings": warnings}, nil
	}
	return map[string]int{"id": id}, nil
}

// pathSubjectVersion is the subject version a request's path names.
func (r *Registry) pathSubjectVersion(req *http.Request) (Registered, error) {
	v, err := pathVersion(req)
	if err != nil {
		return Registered{}, err
	}
	return r.Version(req.PathValue("subject"), v, flag(req, "deleted"))
}

func (r *Registry) getVersion(req *http.Request) (any, error) {
	g, err := r.pathSubjectVersion(req)
	if err != nil {
		return nil, err
	}
	return toJSON(g), nil
}

func (r *Registry) getRawVersion(req *http.Request) (any, error) {
	g, err := r.pathSubjectVersion(req)
	if err != nil {
		return nil, err
	}
	return rawSchema(g.Text), nil
}

func (r *Registry) getReferencedBy(req *http.Request) (any, error) {
	v, err := pathVersion(req)
	if err != nil {
		return nil, err
	}
	return r.ReferencedBy(req.PathValue("subject"), v)
}

func (r *Registry) postLookup(req *http.Request) (any, error) {
	in, _, err := r.readSchema(req)
	if err != nil {
		return nil, err
	}
	g, err := r.Lookup(req.PathValue("subject"), in, flag(req, "deleted"))
	if err != nil {
		return nil, err
	}
	return toJSON(g), nil
}

func (r *Registry) deleteSubject(req *http.Request) (any, error) {
	return r.DeleteSubject(req.PathValue("subject"), flag(req, "permanent"))
}

func (r *Registry) deleteVersion(req *http.Request) (any, error) {
	v, err := pathVersion(req)
	if err != nil {
		return nil, err
	}
	return r.DeleteVersion(req.PathValue("subject"), v, flag(req, "permanent"))
}

// setting is a per-subject setting with a global value (a compatibility
// level, a mode), as its /config or /mode endpoints serve it.
type setting[T ~string] struct {
	get     func(subject string) (T, bool) // ok: the subject has its own
	set     func(subject string, v T) error
	parse   func(string) (T, error)
	field   string // the request's and PUT answer's field
	getName string // the GET answer's field
	notSet  int    // the error code of a subject without its own
	what    string
}

func (st setting[T]) getHandler(req *http.Request) (any, error) {
	subj := req.PathValue("subject")
	v, ok := st.get(subj)
	if !ok && !flag(req, "defaultToGlobal") {
		return nil, errorf(st.notSet, "Subject '%s' does not have subject-level %s configured", subj, st.what)
	}
	return map[string]T{st.getName: v}, nil
}

func (st setting[T]) putHandler(req *http.Request) (any, error) {
	var b map[string]any // other fields (normalize, alias, …) are not used
	if err := readJSON(req, &b); err != nil {
		return nil, err
	}
	name, _ := b[st.field].(string)
	v, err := st.parse(name)
	if err != nil {
		return nil, err
	}
	if err := st.set(req.PathValue("subject"), v); err != nil {
		return nil, err
	}
	return map[string]T{st.field: v}, nil
}

func (st setting[T]) deleteHandler(req *http.Request) (any, error) {
	subj := req.PathValue("subject")
	old, ok := st.get(subj)
	if subj != "" && !ok {
		return nil, subjectNotFound(subj)
	}
	if err := st.set(subj, ""); err != nil {
		return nil, err
	}
	return map[string]T{st.getName: old}, nil
}

func (r *Registry) levelSetting() setting[Level] {
	return setting[Level]{get: r.Level, set: r.SetLevel, parse: ParseLevel, field: "compatibility",
		getName: "compatibilityLevel", notSet: CodeSubjectLevelCompatNotSet, what: "compatibility"}
}

func (r *Registry) modeSetting() setting[Mode] {
	return setting[Mode]{get: r.Mode, set: r.SetMode, parse: ParseMode, field: "mode",
		getName: "mode", notSet: CodeSubjectLevelModeNotSet, what: "mode"}
}

func (r *Registry) postCompatibility(req *http.Request) (any, error) {
	in, _, err := r.readSchema(req)
	if err != nil {
		return nil, err
	}
	subj := req.PathValue("subject")
	all := req.PathValue("version") == ""
	v := -1
	if !all {
		if v, err = pathVersion(req); err != nil {
			return nil, err
		}
	}
	issues, err := r.Compatible(subj, v, all, in)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"is_compatible": len(issues) == 0}
	if flag(req, "verbose") {
		if issues == nil {
			issues = []string{}
		}
		out["messages"] = issues
	}
	return out, nil
}

func (r *Registry) getReaders(req *http.Request) (any, error) {
	out := r.Readers(req.URL.Query().Get("subject"))
	if out == nil {
		out = []Reader{}
	}
	return out, nil
}

func (r *Registry) putReader(req *http.Request) (any, error) {
	var b struct {
		Subject string `json:"subject"`
		Version any    `json:"version"` // a number, or "latest"
	}
	if err := readJSON(req, &b); err != nil {
		return nil, err
	}
	v := -1
	switch x := b.Version.(type) {
	case float64:
		if x < 1 || x > math.MaxInt32 || x != math.Trunc(x) {
			return nil, errorf(CodeInvalidVersion, "The specified version '%v' is not a valid version id", x)
		}
		v = int(x)
	case string:
		if x != "latest" {
			return nil, errorf(CodeInvalidVersion, "The specified version '%s' is not a valid version id", x)
		}
	case nil:
	default:
		return nil, errorf(CodeInvalidVersion, "The specified version is not a valid version id")
	}
	// The route's check is the subscription's; the subject it names must
	// be one the principal may describe too (else declaring it would tell
	// whether it and its versions exist).
	if !r.allows(req, b.Subject) {
		return nil, &Error{Code: CodeForbidden, Message: "not authorized to declare subject " + strconv.Quote(b.Subject) + " as a reader schema: describe on it is needed"}
	}
	got, err := r.DeclareReader(req.PathValue("topic"), req.PathValue("subscription"), b.Subject, v)
	if err != nil {
		return nil, err
	}
	return Reader{Topic: req.PathValue("topic"), Subscription: req.PathValue("subscription"), Subject: b.Subject, Version: got, Live: true}, nil
}

func (r *Registry) deleteReader(req *http.Request) (any, error) {
	if err := r.RemoveReader(req.PathValue("topic"), req.PathValue("subscription")); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (r *Registry) getUsage(req *http.Request) (any, error) {
	u, err := r.Usage(req.PathValue("subject"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"subject": req.PathValue("subject"), "versions": u}, nil
}

func (r *Registry) getReaderCheck(req *http.Request) (any, error) {
	return map[string]ReaderCheck{"readerCheck": r.ReaderCheckOf(req.PathValue("subject"))}, nil
}

func (r *Registry) putReaderCheck(req *http.Request) (any, error) {
	var b struct {
		ReaderCheck string `json:"readerCheck"`
	}
	if err := readJSON(req, &b); err != nil {
		return nil, err
	}
	c, err := ParseReaderCheck(b.ReaderCheck)
	if err != nil {
		return nil, err
	}
	if err := r.SetReaderCheck(req.PathValue("subject"), c); err != nil {
		return nil, err
	}
	return map[string]ReaderCheck{"readerCheck": c}, nil
}

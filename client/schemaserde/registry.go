package schemaserde

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Type is a schema's format, as the registry names it.
type Type string

// The schema formats.
const (
	Avro     Type = "AVRO"
	JSON     Type = "JSON"
	Protobuf Type = "PROTOBUF"
)

// Schema is a schema as the registry keeps it: its text, its format and
// the schemas it references.
type Schema struct {
	Type       Type // the empty Type is Avro, as in the registry's API
	Text       string
	References []Reference
}

// Reference names a schema another one uses: Name is how the referencing
// schema refers to it (an Avro type's full name, a .proto import path, a
// JSON Schema $ref URL), Subject and Version where it is registered.
type Reference struct {
	Name    string
	Subject string
	Version int
}

// SubjectSchema is a schema registered under a subject.
type SubjectSchema struct {
	Subject string
	Version int
	ID      int
	Schema
}

// Error is an error answered by the registry, with its Confluent error
// code: 404xx not found, 409 incompatible, 422xx invalid input, 500xx
// server errors.
type Error struct {
	StatusCode int    // the HTTP status
	Code       int    // the Confluent error_code; the HTTP status if the body had none
	Message    string // the registry's message
}

func (e *Error) Error() string {
	return fmt.Sprintf("schema registry: %s (error %d)", e.Message, e.Code)
}

// Confluent error codes (Error.Code).
const (
	CodeSubjectNotFound = 40401
	CodeVersionNotFound = 40402
	CodeSchemaNotFound  = 40403
	CodeIncompatible    = 409
	CodeInvalidSchema   = 42201
	CodeInvalidVersion  = 42202
)

// ErrorCode returns the Confluent error code of a registry error in err's
// chain, and 0 if there is none.
func ErrorCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Bounds on what the registry client reads.
const (
	// maxResponseBytes bounds a response body: a schema of a few MiB,
	// escaped, with its metadata.
	maxResponseBytes = 16 << 20
	// maxErrorBytes bounds the body of an error response.
	maxErrorBytes = 64 << 10
	// maxReferences bounds the schemas one schema's references reach,
	// directly or not, and maxRefDepth how deep they nest.
	maxReferences = 256
	maxRefDepth   = 32
)

// DefaultTimeout bounds each request to the registry, unless changed with
// WithTimeout.
const DefaultTimeout = 10 * time.Second

// Registry is a client of a Confluent-compatible schema registry, such as
// Spool's. Schemas by id are cached for the Registry's lifetime (an id
// always names the same schema). A Registry is safe for concurrent use.
type Registry struct {
	urls    []string
	next    atomic.Int32 // the index in urls to try first: the last that answered
	hc      *http.Client
	timeout time.Duration
	user    string
	pass    string
	auth    bool

	mu   sync.Mutex
	byID map[int]*idEntry
}

// idEntry is a cached schema by id, or one being fetched.
type idEntry struct {
	done chan struct{} // closed once s and err are set
	s    Schema
	err  error
}

// RegistryOption configures a Registry.
type RegistryOption func(*Registry)

// WithHTTPClient makes requests with hc instead of a client of
// http.DefaultTransport (for TLS settings, proxies, instrumentation).
func WithHTTPClient(hc *http.Client) RegistryOption {
	return func(r *Registry) { r.hc = hc }
}

// WithTimeout bounds each request (of each URL tried) to d instead of
// DefaultTimeout; 0 leaves requests bounded only by their context.
func WithTimeout(d time.Duration) RegistryOption {
	return func(r *Registry) { r.timeout = d }
}

// WithBasicAuth sends HTTP basic authentication with every request.
func WithBasicAuth(user, password string) RegistryOption {
	return func(r *Registry) { r.user, r.pass, r.auth = user, password, true }
}

// NewRegistry returns a client of the registry at urls: one base URL or
// several separated by commas ("http://sr1:8081,http://sr2:8081"). A URL
// without a scheme is taken as http. A request that fails to connect, or
// that the registry answers with a 5xx status, is tried on the next URL.
func NewRegistry(urls string, opts ...RegistryOption) (*Registry, error) {
	r := &Registry{timeout: DefaultTimeout, byID: make(map[int]*idEntry)}
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		p, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("schemaserde: registry URL %q: %v", u, err)
		}
		if (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, fmt.Errorf("schemaserde: registry URL %q: want http://host:port or https://host:port", u)
		}
		if p.RawQuery != "" || p.Fragment != "" {
			return nil, fmt.Errorf("schemaserde: registry URL %q: has a query or fragment", u)
		}
		r.urls = append(r.urls, strings.TrimRight(p.String(), "/"))
	}
	if len(r.urls) == 0 {
		return nil, errors.New("schemaserde: no registry URL")
	}
	for _, o := range opts {
		o(r)
	}
	if r.hc == nil {
		r.hc = &http.Client{}
	}
	if r.timeout < 0 {
		return nil, errors.New("schemaserde: negative timeout")
	}
	return r, nil
}

// schemaJSON is a schema in the registry API's requests and responses.
type schemaJSON struct {
	Subject    string          `json:"subject,omitempty"`
	Version    int             `json:"version,omitempty"`
	ID         int             `json:"id,omitempty"`
	SchemaType string          `json:"schemaType,omitempty"`
	References []referenceJSON `json:"references,omitempty"`
	Schema     string          `json:"schema"`
}

type referenceJSON struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

func toRequest(s Schema) schemaJSON {
	b := schemaJSON{Schema: s.Text}
	if s.Type != "" && s.Type != Avro {
		b.SchemaType = string(s.Type)
	}
	for _, ref := range s.References {
		b.References = append(b.References, referenceJSON(ref))
	}
	return b
}

func (b schemaJSON) schema() Schema {
	s := Schema{Type: Type(b.SchemaType), Text: b.Schema}
	if s.Type == "" {
		s.Type = Avro
	}
	for _, ref := range b.References {
		s.References = append(s.References, Reference(ref))
	}
	return s
}

func (b schemaJSON) subjectSchema() SubjectSchema {
	return SubjectSchema{Subject: b.Subject, Version: b.Version, ID: b.ID, Schema: b.schema()}
}

// validID reports whether id can be a schema id (a positive int32, as
// the wire format's 4 bytes are read by other clients).
func validID(id int) bool { return id > 0 && id <= math.MaxInt32 }

// Register registers s under subject, or finds it there if it is already
// registered, and returns its id and its version in the subject. An
// incompatible schema is an *Error with Code CodeIncompatible.
func (r *Registry) Register(ctx context.Context, subject string, s Schema) (id, version int, err error) {
	id, err = r.registerID(ctx, subject, s)
	if err != nil {
		return 0, 0, err
	}
	// The registration answers only the id; the lookup answers the
	// version too.
	got, err := r.Lookup(ctx, subject, s)
	if err != nil {
		return 0, 0, err
	}
	if got.ID != id {
		return 0, 0, fmt.Errorf("schemaserde: subject %q: registered as id %d but looked up as id %d", subject, id, got.ID)
	}
	return id, got.Version, nil
}

// registerID registers s under subject and returns its id.
func (r *Registry) registerID(ctx context.Context, subject string, s Schema) (int, error) {
	var resp struct {
		ID int `json:"id"`
	}
	if err := r.do(ctx, http.MethodPost, "/subjects/"+url.PathEscape(subject)+"/versions", toRequest(s), &resp); err != nil {
		return 0, err
	}
	if !validID(resp.ID) {
		return 0, fmt.Errorf("schemaserde: the registry answered the invalid schema id %d", resp.ID)
	}
	return resp.ID, nil
}

// Lookup finds s among the versions of subject, without registering it.
// An unknown subject is an *Error with Code CodeSubjectNotFound, a schema
// that the subject does not have one with CodeSchemaNotFound.
func (r *Registry) Lookup(ctx context.Context, subject string, s Schema) (SubjectSchema, error) {
	var resp schemaJSON
	if err := r.do(ctx, http.MethodPost, "/subjects/"+url.PathEscape(subject), toRequest(s), &resp); err != nil {
		return SubjectSchema{}, err
	}
	return r.checked(resp, subject)
}

// Latest returns the latest version of subject.
func (r *Registry) Latest(ctx context.Context, subject string) (SubjectSchema, error) {
	return r.version(ctx, subject, "latest")
}

// Version returns a version of subject.
func (r *Registry) Version(ctx context.Context, subject string, version int) (SubjectSchema, error) {
	if version < 1 || version > math.MaxInt32 {
		return SubjectSchema{}, fmt.Errorf("schemaserde: version %d: versions are from 1", version)
	}
	return r.version(ctx, subject, strconv.Itoa(version))
}

func (r *Registry) version(ctx context.Context, subject, version string) (SubjectSchema, error) {
	var resp schemaJSON
	if err := r.do(ctx, http.MethodGet, "/subjects/"+url.PathEscape(subject)+"/versions/"+version, nil, &resp); err != nil {
		return SubjectSchema{}, err
	}
	return r.checked(resp, subject)
}

func (r *Registry) checked(resp schemaJSON, subject string) (SubjectSchema, error) {
	if !validID(resp.ID) || resp.Version < 1 {
		return SubjectSchema{}, fmt.Errorf("schemaserde: the registry answered an invalid id %d or version %d", resp.ID, resp.Version)
	}
	if resp.Subject == "" {
		resp.Subject = subject
	}
	ss := resp.subjectSchema()
	r.remember(ss.ID, ss.Schema)
	return ss, nil
}

// remember caches a schema by id that an answer carried.
func (r *Registry) remember(id int, s Schema) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[id]; !ok {
		e := &idEntry{done: make(chan struct{}), s: s}
		close(e.done)
		r.byID[id] = e
	}
}

// SchemaByID returns the schema with id. Schemas are cached: the registry
// is asked once per id (concurrent callers share one request), and again
// only after a failure. An unknown id is an *Error with Code
// CodeSchemaNotFound.
func (r *Registry) SchemaByID(ctx context.Context, id int) (Schema, error) {
	if !validID(id) {
		return Schema{}, &Error{StatusCode: http.StatusNotFound, Code: CodeSchemaNotFound, Message: fmt.Sprintf("schema id %d is out of range", id)}
	}
	r.mu.Lock()
	e, ok := r.byID[id]
	if !ok {
		e = &idEntry{done: make(chan struct{})}
		r.byID[id] = e
	}
	r.mu.Unlock()
	if ok {
		select {
		case <-e.done:
		case <-ctx.Done():
			return Schema{}, ctx.Err()
		}
		if e.err != nil && (errors.Is(e.err, context.Canceled) || errors.Is(e.err, context.DeadlineExceeded)) && ctx.Err() == nil {
			// The fetch this caller waited for ended with its own
			// caller's context: fetch again.
			return r.SchemaByID(ctx, id)
		}
		return e.s, e.err
	}
	var resp schemaJSON
	err := r.do(ctx, http.MethodGet, "/schemas/ids/"+strconv.Itoa(id), nil, &resp)
	if err != nil {
		r.mu.Lock()
		delete(r.byID, id)
		r.mu.Unlock()
		e.err = err
		close(e.done)
		return Schema{}, err
	}
	e.s = resp.schema()
	close(e.done)
	return e.s, nil
}

// errBody is the body of an error answer.
type errBody struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

// do sends a request to the registry, trying the URLs in turn, and
// decodes a successful answer into out.
func (r *Registry) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("schemaserde: %v", err)
		}
	}
	first := int(r.next.Load())
	var err error
	for i := range r.urls {
		k := (first + i) % len(r.urls)
		var retry bool
		retry, err = r.try(ctx, r.urls[k], method, path, body, out)
		if err == nil || !retry {
			if err == nil && k != first {
				r.next.Store(int32(k))
			}
			return err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return err
}

// try sends one request to base; retry says whether another URL may
// answer better (no connection, a 5xx answer).
func (r *Registry) try(ctx context.Context, base, method, path string, body []byte, out any) (retry bool, err error) {
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return false, fmt.Errorf("schemaserde: %v", err)
	}
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json, application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	}
	if r.auth {
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return true, fmt.Errorf("schemaserde: %s %s: %w", method, base+path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
		e := &Error{StatusCode: resp.StatusCode, Code: resp.StatusCode}
		var eb errBody
		if json.Unmarshal(b, &eb) == nil && (eb.ErrorCode != 0 || eb.Message != "") {
			if eb.ErrorCode != 0 {
				e.Code = eb.ErrorCode
			}
			e.Message = eb.Message
		} else {
			e.Message = strings.TrimSpace(string(b))
			if e.Message == "" {
				e.Message = resp.Status
			}
			if len(e.Message) > 512 {
				e.Message = e.Message[:512] + "..."
			}
		}
		return resp.StatusCode/100 == 5, e
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return true, fmt.Errorf("schemaserde: %s %s: reading the answer: %w", method, base+path, err)
	}
	if len(b) > maxResponseBytes {
		return false, fmt.Errorf("schemaserde: %s %s: the answer is larger than %d bytes", method, base+path, maxResponseBytes)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return false, fmt.Errorf("schemaserde: %s %s: undecodable answer: %v", method, base+path, err)
	}
	return false, nil
}

// resolveRefs visits the schemas that refs reach, directly or not, each
// once, the ones a schema references before it, and calls visit with
// each one's reference name.
func (r *Registry) resolveRefs(ctx context.Context, refs []Reference, visit func(name string, s Schema) error) error {
	seen := make(map[Reference]bool)
	var walk func(refs []Reference, depth int) error
	walk = func(refs []Reference, depth int) error {
		if depth > maxRefDepth {
			return fmt.Errorf("schemaserde: references nest deeper than %d", maxRefDepth)
		}
		for _, ref := range refs {
			key := Reference{Subject: ref.Subject, Version: ref.Version}
			if seen[key] {
				continue
			}
			seen[key] = true
			if len(seen) > maxReferences {
				return fmt.Errorf("schemaserde: more than %d referenced schemas", maxReferences)
			}
			var ss SubjectSchema
			var err error
			if ref.Version == -1 {
				ss, err = r.Latest(ctx, ref.Subject)
			} else {
				ss, err = r.Version(ctx, ref.Subject, ref.Version)
			}
			if err != nil {
				return fmt.Errorf("schemaserde: reference %q (subject %q version %d): %w", ref.Name, ref.Subject, ref.Version, err)
			}
			if err := walk(ss.References, depth+1); err != nil {
				return err
			}
			if err := visit(ref.Name, ss.Schema); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(refs, 1)
}

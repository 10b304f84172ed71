package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

// defaultRegistry is where `spool schema` looks for the schema registry
// unless told otherwise: the address `spool serve` serves it on by default.
const defaultRegistry = "http://127.0.0.1:8081"

// registryContentType is the Confluent Schema Registry API's content type.
const registryContentType = "application/vnd.schemaregistry.v1+json"

// registryTimeout bounds one request to the registry.
const registryTimeout = 30 * time.Second

// addRegistryFlag adds the persistent --registry flag of `spool schema`,
// whose default comes from SPOOL_SCHEMA_REGISTRY.
func addRegistryFlag(cmd *cobra.Command) {
	def := os.Getenv("SPOOL_SCHEMA_REGISTRY")
	if def == "" {
		def = defaultRegistry
	}
	cmd.PersistentFlags().String("registry", def,
		"`URL` of the schema registry, http://host:port; several nodes of a cluster separated by commas (env SPOOL_SCHEMA_REGISTRY)")
}

// registryClient talks to the schema registry's REST API. It holds the
// registry's URLs, one per node of a cluster, and goes on to the next when
// one cannot be reached; the one that answered is used from then on.
type registryClient struct {
	urls   []string
	cur    int
	hc     *http.Client
	apiKey string // --api-key / SPOOL_API_KEY, sent as a bearer token; "": none
}

// newRegistryClient returns a client for the --registry of cmd.
func newRegistryClient(cmd *cobra.Command) (*registryClient, error) {
	list, err := cmd.Flags().GetString("registry")
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usageErrorf(cmd, "--registry: %q is not an http:// or https:// URL", a)
		}
		urls = append(urls, strings.TrimSuffix(a, "/"))
	}
	if len(urls) == 0 {
		return nil, usageErrorf(cmd, "--registry: no URL given")
	}
	tcfg, err := clientTLS(cmd)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: registryTimeout}
	if tcfg != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tcfg
		hc.Transport = tr
	}
	return &registryClient{urls: urls, hc: hc, apiKey: apiKey(cmd)}, nil
}

// registryError is an error the registry answered with: its Confluent
// error code (40401 subject not found, 409 incompatible, 422xx invalid
// input, …) and message.
type registryError struct {
	Code    int    `json:"error_code"`
	Message string `json:"message"`
}

// Error reads "subject 'x' not found (40401)": the registry's message,
// without its capital and final period, and its code.
func (e *registryError) Error() string {
	msg := strings.TrimSpace(e.Message)
	msg = strings.TrimSuffix(msg, ".")
	if r, n := utf8.DecodeRuneInString(msg); unicode.IsUpper(r) {
		if r2, _ := utf8.DecodeRuneInString(msg[n:]); !unicode.IsUpper(r2) {
			msg = string(unicode.ToLower(r)) + msg[n:]
		}
	}
	if msg == "" {
		msg = "schema registry error"
	}
	return msg + " (" + strconv.Itoa(e.Code) + ")"
}

// Confluent error codes the commands act on.
const (
	regSubjectNotFound          = 40401
	regVersionNotFound          = 40402
	regSubjectNotSoftDeleted    = 40405
	regVersionNotSoftDeleted    = 40407
	regSubjectLevelCompatNotSet = 40408
	regIncompatible             = 409
	regOperationTimeout         = 50002
)

// exitCode: the not-found codes (404xx) are exit 3, an incompatible
// schema (409) the exit code of an incompatible check.
func (e *registryError) exitCode() int {
	switch {
	case e.Code/100 == 404 || e.Code == http.StatusNotFound:
		return exitNotFound
	case e.Code == regIncompatible:
		return exitIncompatible
	case e.Code == regOperationTimeout || e.Code == http.StatusServiceUnavailable:
		return exitUnavailable
	}
	return exitError
}

// registryUnreachableError: no URL of --registry could be reached.
type registryUnreachableError struct{ err error }

func (e *registryUnreachableError) Error() string {
	return "schema registry unreachable: " + e.err.Error() + " (unavailable)"
}
func (e *registryUnreachableError) Unwrap() error { return e.err }
func (e *registryUnreachableError) exitCode() int { return exitUnavailable }

// isCode reports whether err is a registry error with code.
func isCode(err error, code int) bool {
	var re *registryError
	return errors.As(err, &re) && re.Code == code
}

// do sends a request to the registry: path is below the registry's URL
// (escape its variable parts with url.PathEscape), body (if not nil) is
// sent as JSON, and the answer is decoded into out (if not nil). An error
// answer is a *registryError. Only a failure to connect moves on to the
// next URL, so no request is sent twice.
func (rc *registryClient) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var lastErr error
	for i := range rc.urls {
		n := (rc.cur + i) % len(rc.urls)
		base := rc.urls[n]
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", registryContentType)
		if rc.apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+rc.apiKey)
		}
		if payload != nil {
			req.Header.Set("Content-Type", registryContentType)
		}
		resp, err := rc.hc.Do(req)
		if err != nil {
			if isConnectError(err) && ctx.Err() == nil {
				lastErr = err
				continue
			}
			return fmt.Errorf("schema registry at %s: %w", base, err)
		}
		rc.cur = n
		return decodeRegistryAnswer(resp, base, out)
	}
	return &registryUnreachableError{lastErr}
}

// isConnectError reports whether err is a failure to connect (nothing
// listening, no route, an unknown host): the request was not sent.
func isConnectError(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns)
}

// decodeRegistryAnswer reads an answer of the registry at base into out,
// or the error it answered with.
func decodeRegistryAnswer(resp *http.Response, base string, out any) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("schema registry at %s: reading the answer: %w", base, err)
	}
	if resp.StatusCode/100 != 2 {
		var re registryError
		if json.Unmarshal(data, &re) == nil && re.Code != 0 {
			return &re
		}
		text := strings.TrimSpace(string(data))
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		return fmt.Errorf("%s does not answer as a schema registry: HTTP %s: %s", base, resp.Status, text)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("schema registry at %s: unexpected answer: %w", base, err)
	}
	return nil
}

// The registry's request and answer bodies.
type (
	schemaRef struct {
		Name    string `json:"name"`
		Subject string `json:"subject"`
		Version int    `json:"version"`
	}
	schemaRequest struct {
		Schema     string      `json:"schema"`
		SchemaType string      `json:"schemaType,omitempty"`
		References []schemaRef `json:"references,omitempty"`
	}
	// subjectVersion is a subject's version, or (from /schemas/ids/ID) a
	// schema without subject and version.
	subjectVersion struct {
		Subject    string      `json:"subject,omitempty"`
		Version    int         `json:"version,omitempty"`
		ID         int         `json:"id,omitempty"`
		SchemaType string      `json:"schemaType,omitempty"`
		References []schemaRef `json:"references,omitempty"`
		Schema     string      `json:"schema"`
	}
	compatAnswer struct {
		IsCompatible bool     `json:"is_compatible"`
		Messages     []string `json:"messages"`
	}
)

// schemaType is the type of a subject's version: AVRO when the registry
// leaves it out.
func (v *subjectVersion) schemaType() string {
	if v.SchemaType == "" {
		return "AVRO"
	}
	return v.SchemaType
}

// subjectPath is /subjects/SUBJECT, the subject escaped.
func subjectPath(subject string) string { return "/subjects/" + url.PathEscape(subject) }

// version returns a subject's version (v: a number or "latest").
func (rc *registryClient) version(ctx context.Context, subject, v string, deleted bool) (*subjectVersion, error) {
	var out subjectVersion
	var q url.Values
	if deleted {
		q = url.Values{"deleted": {"true"}}
	}
	if err := rc.do(ctx, http.MethodGet, subjectPath(subject)+"/versions/"+url.PathEscape(v), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// versions lists a subject's versions (with deleted, the soft-deleted ones
// too).
func (rc *registryClient) versions(ctx context.Context, subject string, deleted bool) ([]int, error) {
	var out []int
	var q url.Values
	if deleted {
		q = url.Values{"deleted": {"true"}}
	}
	return out, rc.do(ctx, http.MethodGet, subjectPath(subject)+"/versions", q, nil, &out)
}

// level returns the compatibility level of a subject ("": the global
// one) and whether it is the subject's own (false: the global level).
func (rc *registryClient) level(ctx context.Context, subject string) (string, bool, error) {
	var out struct {
		Level string `json:"compatibilityLevel"`
	}
	if subject != "" {
		err := rc.do(ctx, http.MethodGet, "/config/"+url.PathEscape(subject), nil, nil, &out)
		if err == nil || !isCode(err, regSubjectLevelCompatNotSet) {
			return out.Level, true, err
		}
	}
	err := rc.do(ctx, http.MethodGet, "/config", nil, nil, &out)
	return out.Level, subject == "", err
}

// compatible checks a schema against a subject's version (v: a number or
// "latest"), or against the versions its level names when v is "".
func (rc *registryClient) compatible(ctx context.Context, subject, v string, in schemaRequest) (*compatAnswer, error) {
	path := "/compatibility" + subjectPath(subject) + "/versions"
	if v != "" {
		path += "/" + url.PathEscape(v)
	}
	var out compatAnswer
	if err := rc.do(ctx, http.MethodPost, path, url.Values{"verbose": {"true"}}, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

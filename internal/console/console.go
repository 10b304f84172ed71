// Package console is Spool's web console: server-rendered pages (Go
// html/template, assets embedded in the binary) on the native API's HTTP
// listener, showing topics, subscriptions, messages, dead letters, schemas
// and the event catalog, with two forms that change state (a subscription
// reset, a dead-letter redrive) and live charts drawn by a small script
// that polls a JSON endpoint. docs/console.md describes the pages.
//
// Everything is read from the broker and the schema registry at request
// time; the console keeps only a small ring of samples per topic and
// subscription for the rates (stats.go), and starts no goroutine.
package console

import (
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/schema/sreg"
)

// Stats gives the console counters and latency quantiles kept by
// telemetry; nil means rates are derived from offsets only.
type Stats interface {
	// TopicPublished returns messages and bytes published to the topic
	// since the process started.
	TopicPublished(topic string) (messages, bytes uint64)
	// Subscription returns cumulative delivered, acked, redelivered and
	// dead-lettered counts, and end-to-end latency quantiles (publish →
	// ack) in seconds; ok false when unknown.
	Subscription(topic, sub string) (c SubCounters, p50, p99 float64, ok bool)
}

// SubCounters are a subscription's cumulative counts.
type SubCounters struct{ Delivered, Acked, Redelivered, DeadLettered uint64 }

// Config configures a Console.
type Config struct {
	Broker *broker.Broker
	// Registry is the schema registry: the schema pages, the catalog and
	// the decoding of messages of bound topics; nil leaves them out.
	Registry *sreg.Registry
	// Stats, if not nil, gives rates and latencies from telemetry.
	Stats  Stats
	Logger *slog.Logger // nil: discard
	// Now is the clock of the rate samples (nil: time.Now).
	Now func() time.Time
}

// Patterns are the patterns of the server's mux the console is mounted on
// (Console.Mount): the root, its own prefixes, and nothing the native API,
// /metrics, /healthz, /readyz or /catalog use.
var Patterns = []string{
	"GET /{$}",
	"GET /topics/",
	"POST /topics/",
	"GET /schemas",
	"GET /schemas/",
	"GET /console/",
}

// Console serves the web console.
type Console struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template
	rates *sampler
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// route is one of the console's pages or forms.
type route struct {
	pattern string
	fn      http.HandlerFunc
}

// routes lists the console's pages and forms but its static files; a nil
// receiver gives the patterns (Routes).
func (c *Console) routes() []route {
	rs := []route{
		{"GET /{$}", c.overview},
		{"GET /topics/{topic}", c.topic},
		{"GET /topics/{topic}/messages", c.messages},
		{"GET /topics/{topic}/subscriptions/{sub}", c.subscription},
		{"POST /topics/{topic}/subscriptions/{sub}/reset", c.reset},
		{"GET /topics/{topic}/subscriptions/{sub}/dead-letters", c.deadLetters},
		{"POST /topics/{topic}/subscriptions/{sub}/redrive", c.redrive},
	}
	for _, p := range []string{"/topics/{topic}/subscriptions/{sub}/reset", "/topics/{topic}/subscriptions/{sub}/redrive"} {
		rs = append(rs, route{"GET " + p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "POST")
			c.fail(w, r, http.StatusMethodNotAllowed, "This address takes the form on the subscription's page (POST); a GET changes nothing.")
		}})
	}
	return append(rs,
		route{"GET /schemas", c.subjects},
		route{"GET /schemas/{subject}", c.subject},
		route{"GET /console/catalog", c.catalogPage},
		route{"GET /console/api/stats", c.stats},
	)
}

// Routes returns the patterns of the console's pages and forms ("METHOD
// /path"; the static files are served under GET /console/static/).
func Routes() []string {
	var c *Console
	var out []string
	for _, rt := range c.routes() {
		out = append(out, rt.pattern)
	}
	return out
}

// New returns the console of cfg.Broker.
func New(cfg Config) *Console {
	c := &Console{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	c.rates = newSampler(now)
	c.pages = parsePages()
	m := c.mux
	for _, rt := range c.routes() {
		m.HandleFunc(rt.pattern, rt.fn)
	}
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
	})
	return c
}

// Mount registers the console on mux (the native API's) under Patterns.
func (c *Console) Mount(mux interface {
	Handle(pattern string, h http.Handler)
}) {
	for _, p := range Patterns {
		mux.Handle(p, c)
	}
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// The pages load only their own script and style; they may not be
	// framed (the forms change state); links to them carry the referrer
	// the cross-site check may need.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// sameOrigin reports whether a state-changing request comes from a page
// of this server: its Origin header, or without one its Referer, must
// name the request's host. Browsers send Origin on every cross-site POST,
// so a form on another site cannot pass; a request with neither header is
// refused too.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" || src == "null" {
		return false
	}
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// maxFormBytes bounds a form's body.
const maxFormBytes = 64 << 10

// checkPost refuses a cross-site POST (403) and reads the form (400 if it
// cannot); it reports whether the handler may go on.
func (c *Console) checkPost(w http.ResponseWriter, r *http.Request) bool {
	if !sameOrigin(r) {
		c.fail(w, r, http.StatusForbidden, "This form was not sent from a page of this server (its Origin or Referer header does not name "+r.Host+"), so it was refused.")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return false
	}
	return true
}

// statusOf is the HTTP status of a broker or registry error.
func statusOf(err error) int {
	var se *sreg.Error
	if errors.As(err, &se) {
		return se.Status()
	}
	switch errs.CodeOf(err) {
	case errs.TopicNotFound, errs.SubNotFound:
		return http.StatusNotFound
	case errs.InvalidArgument, errs.OffsetOutOfRange:
		return http.StatusBadRequest
	case errs.FailedPrecondition:
		return http.StatusConflict
	case errs.Unavailable:
		return http.StatusServiceUnavailable
	case errs.Canceled, errs.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// failErr answers with the error's status and message.
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, err error) {
	st := statusOf(err)
	if st >= 500 {
		c.log.Error("console", "path", r.URL.Path, "err", err)
	}
	msg := err.Error()
	if se := (*sreg.Error)(nil); errors.As(err, &se) {
		msg = se.Message
	}
	c.fail(w, r, st, msg)
}

// fail renders the error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Data: msg})
}

// page is what every template gets.
type page struct {
	Title  string
	Nav    string  // the main navigation's current entry: topics, schemas, catalog
	Crumbs []crumb // the breadcrumb trail before the title
	Charts bool    // load the chart script
	Data   any
}

type crumb struct{ Name, Href string }

// render executes a page's template; a failure midway is logged (the
// status has been written).
func (c *Console) render(w http.ResponseWriter, _ *http.Request, status int, name string, p page) {
	t := c.pages[name]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
	}
}

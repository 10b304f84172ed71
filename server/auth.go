package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/spoolmq/spool/internal/auth"
)

// AuthConfig is the server's authentication (the auth section of the
// configuration file; docs/config.md, "Users and keys" in
// docs/operations.md).
type AuthConfig struct {
	// Enabled makes every native API request (but /healthz, /readyz and
	// /metrics) need a principal — an API key (Authorization: Bearer) or
	// a verified client certificate — and every Kafka connection
	// authenticate (SASL, or a client certificate) before any request but
	// ApiVersions, SaslHandshake and SaslAuthenticate (auth.enabled).
	Enabled bool `yaml:"enabled"`
	// AllowPlainWithoutTLS accepts SASL PLAIN on a Kafka connection
	// without TLS, which sends the password in clear
	// (auth.allow-plain-without-tls); default false.
	AllowPlainWithoutTLS bool `yaml:"allow-plain-without-tls"`
	// Authorization makes every request need a rule that allows it
	// (spool acl; deny by default), but for super users
	// (auth.authorization; needs Enabled).
	Authorization bool `yaml:"authorization"`
	// SuperUsers are principals allowed everything (auth.super-users),
	// such as the operator's own user.
	SuperUsers []string `yaml:"super-users"`
}

// registryAuth wraps the schema registry's listener with auth.enabled:
// every request needs a principal — an API key (Authorization: Bearer), a
// user's password (Authorization: Basic, as Confluent's serializers send
// basic.auth.user.info), or a verified client certificate — or is refused
// with 401 and the registry's error format (40101).
func (s *Server) registryAuth(next http.Handler) http.Handler {
	if !s.cfg.Auth.Enabled {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal, err := s.requestPrincipal(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="spool-schema-registry"`)
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]any{"error_code": 40101, "message": err.Error()})
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), principal)))
	})
}

// requestPrincipal authenticates a request to the registry.
func (s *Server) requestPrincipal(r *http.Request) (string, error) {
	if user, pass, ok := r.BasicAuth(); ok {
		if !s.users.CheckPassword(user, pass) {
			return "", errors.New("authentication failed: invalid user or password")
		}
		return user, nil
	}
	if hdr := r.Header.Get("Authorization"); hdr != "" {
		scheme, tok, ok := strings.Cut(hdr, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", errors.New("the Authorization header must be Basic or Bearer")
		}
		return s.users.Authenticate(strings.TrimSpace(tok))
	}
	if p := auth.Principal(r.Context()); p != "" {
		return p, nil
	}
	return "", errors.New("authentication required: send Authorization: Basic (a user's password), Bearer <API key>, or a client certificate")
}

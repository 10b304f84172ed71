package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/spoolmq/spool/internal/auth"
	"github.com/spoolmq/spool/internal/errs"
)

// Authenticator checks an API key's token and returns its user
// (internal/auth/users.Store).
type Authenticator interface {
	Authenticate(token string) (string, error)
}

// SetAuthenticator turns authentication on: every request but those of
// openPaths then needs a principal, from a bearer token a checks or from
// a verified client certificate (auth.Principal, set by the server before
// the handler). Call it before serving.
func (h *Handler) SetAuthenticator(a Authenticator) { h.authn = a }

// openPaths answer without a principal: probes and the scrape endpoint
// (docs/api.md, "Authentication").
var openPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// authenticate returns r with its principal, or why it has none. A bearer
// token, when sent, must be valid and names the principal; without one a
// client certificate's principal is taken.
func (h *Handler) authenticate(r *http.Request) (*http.Request, error) {
	if hdr := r.Header.Get("Authorization"); hdr != "" {
		scheme, tok, ok := strings.Cut(hdr, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, errs.New(errs.Unauthenticated, "the Authorization header must be Bearer <API key>")
		}
		user, err := h.authn.Authenticate(strings.TrimSpace(tok))
		if err != nil {
			return nil, err
		}
		return r.WithContext(auth.WithPrincipal(r.Context(), user)), nil
	}
	if auth.Principal(r.Context()) != "" {
		return r, nil
	}
	return nil, errs.New(errs.Unauthenticated, "authentication required: send Authorization: Bearer <API key> (spool --api-key) or a client certificate")
}

// writeAuthError answers an unauthenticated request: as an RPC error for
// Connect, gRPC and gRPC-Web requests, else 401 with {"code","message"}.
func writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="spool"`)
	if ew := connect.NewErrorWriter(); ew.IsSupported(r) {
		ew.Write(w, r, toConnect(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	json.NewEncoder(w).Encode(map[string]string{"code": string(errs.CodeOf(err)), "message": err.Error()})
}

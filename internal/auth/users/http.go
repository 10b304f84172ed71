package users

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/spoolmq/spool/internal/errs"
)

// MaxBody bounds a management request's body.
const MaxBody = 16 << 10

// Handler serves user management as JSON under /spool/auth/ (docs/api.md).
// Answers never carry a password, a hash or a credential; a token only in
// the answer of the request that issued it.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /spool/auth/users", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"users": s.Users()})
	})
	mux.HandleFunc("GET /spool/auth/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.Get(r.PathValue("name"))
		if !ok {
			writeError(w, errs.Wrap(errs.FailedPrecondition, ErrNotFound, "user %q", r.PathValue("name")))
			return
		}
		writeJSON(w, http.StatusOK, u)
	})
	mux.HandleFunc("POST /spool/auth/users", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name     string `json:"name"`
			Password string `json:"password"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		if err := s.AddUser(req.Name, req.Password); err != nil {
			writeError(w, err)
			return
		}
		u, _ := s.Get(req.Name)
		writeJSON(w, http.StatusCreated, u)
	})
	mux.HandleFunc("DELETE /spool/auth/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.DeleteUser(r.PathValue("name")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	issue := func(rotate bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				ExpiresIn string `json:"expires_in"`
			}
			if r.ContentLength != 0 && !readJSON(w, r, &req) {
				return
			}
			var ttl time.Duration
			if req.ExpiresIn != "" {
				d, err := time.ParseDuration(req.ExpiresIn)
				if err != nil || d <= 0 {
					writeError(w, errs.New(errs.InvalidArgument, "expires_in: %q is not a positive duration", req.ExpiresIn))
					return
				}
				ttl = d
			}
			f := s.NewKey
			if rotate {
				f = s.Rotate
			}
			tok, k, err := f(r.PathValue("name"), ttl)
			if err != nil {
				writeError(w, err)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			writeJSON(w, http.StatusCreated, map[string]any{"key": k, "token": tok})
		}
	}
	mux.HandleFunc("POST /spool/auth/users/{name}/keys", issue(false))
	mux.HandleFunc("POST /spool/auth/users/{name}/rotate", issue(true))
	mux.HandleFunc("DELETE /spool/auth/keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.RevokeKey(r.PathValue("id")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, errs.New(errs.InvalidArgument, "request body: %v", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError answers {"code","message"} with the error's status.
func writeError(w http.ResponseWriter, err error) {
	code := errs.CodeOf(err)
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, ErrExists):
		status, code = http.StatusConflict, "already_exists"
	case code == errs.InvalidArgument:
		status = http.StatusBadRequest
	case code == errs.ResourceExhausted:
		status = http.StatusTooManyRequests
	case code == errs.Unauthenticated:
		status = http.StatusUnauthorized
	case code == errs.Unavailable:
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]string{"code": string(code), "message": err.Error()})
}

package users

import (
	"net/http"
	"time"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/jsonhttp"
)

// MaxBody bounds a management request's body.
const MaxBody = 16 << 10

// Handler serves user management as JSON under /spool/auth/ (docs/api.md).
// Answers never carry a password, a hash or a credential; a token only in
// the answer of the request that issued it.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /spool/auth/users", func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.Write(w, http.StatusOK, map[string]any{"users": s.Users()})
	})
	mux.HandleFunc("GET /spool/auth/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.Get(r.PathValue("name"))
		if !ok {
			jsonhttp.Error(w, errs.Wrap(errs.FailedPrecondition, ErrNotFound, "user %q", r.PathValue("name")))
			return
		}
		jsonhttp.Write(w, http.StatusOK, u)
	})
	mux.HandleFunc("POST /spool/auth/users", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name     string `json:"name"`
			Password string `json:"password"`
		}
		if !jsonhttp.Read(w, r, MaxBody, &req) {
			return
		}
		if err := s.AddUser(req.Name, req.Password); err != nil {
			jsonhttp.Error(w, err)
			return
		}
		u, _ := s.Get(req.Name)
		jsonhttp.Write(w, http.StatusCreated, u)
	})
	mux.HandleFunc("DELETE /spool/auth/users/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.DeleteUser(r.PathValue("name")); err != nil {
			jsonhttp.Error(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	issue := func(rotate bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				ExpiresIn string `json:"expires_in"`
			}
			if r.ContentLength != 0 && !jsonhttp.Read(w, r, MaxBody, &req) {
				return
			}
			var ttl time.Duration
			if req.ExpiresIn != "" {
				d, err := time.ParseDuration(req.ExpiresIn)
				if err != nil || d <= 0 {
					jsonhttp.Error(w, errs.New(errs.InvalidArgument, "expires_in: %q is not a positive duration", req.ExpiresIn))
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
				jsonhttp.Error(w, err)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			jsonhttp.Write(w, http.StatusCreated, map[string]any{"key": k, "token": tok})
		}
	}
	mux.HandleFunc("POST /spool/auth/users/{name}/keys", issue(false))
	mux.HandleFunc("POST /spool/auth/users/{name}/rotate", issue(true))
	mux.HandleFunc("DELETE /spool/auth/keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.RevokeKey(r.PathValue("id")); err != nil {
			jsonhttp.Error(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

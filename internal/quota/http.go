package quota

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/spoolmq/spool/internal/errs"
)

// MaxBody bounds a management request's body.
const MaxBody = 16 << 10

// Handler serves quota management as JSON under /spool/auth/quotas
// (docs/api.md, "Quotas").
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /spool/auth/quotas", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"quotas": s.List()})
	})
	get := func(entity func(*http.Request) Entity) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			e := entity(r)
			q, ok := s.Get(e)
			if !ok {
				writeError(w, errs.Wrap(errs.FailedPrecondition, ErrNotFound, "no quota for %s", e))
				return
			}
			writeJSON(w, http.StatusOK, q)
		}
	}
	alter := func(entity func(*http.Request) Entity) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			e := entity(r)
			var req struct {
				Set    map[string]float64 `json:"set"`
				Remove []string           `json:"remove"`
			}
			if !readJSON(w, r, &req) {
				return
			}
			if err := s.Alter(e, req.Set, req.Remove); err != nil {
				writeError(w, err)
				return
			}
			q, ok := s.Get(e)
			if !ok {
				q = Quota{Entity: e}
			}
			writeJSON(w, http.StatusOK, q)
		}
	}
	del := func(entity func(*http.Request) Entity) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			e := entity(r)
			if err := s.Delete(e); err != nil {
				writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}
	user := func(r *http.Request) Entity { return Entity{User: r.PathValue("name")} }
	def := func(*http.Request) Entity { return Entity{Default: true} }
	mux.HandleFunc("GET /spool/auth/quotas/users/{name}", get(user))
	mux.HandleFunc("POST /spool/auth/quotas/users/{name}", alter(user))
	mux.HandleFunc("DELETE /spool/auth/quotas/users/{name}", del(user))
	mux.HandleFunc("GET /spool/auth/quotas/default", get(def))
	mux.HandleFunc("POST /spool/auth/quotas/default", alter(def))
	mux.HandleFunc("DELETE /spool/auth/quotas/default", del(def))
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
	case code == errs.InvalidArgument:
		status = http.StatusBadRequest
	case code == errs.Unauthenticated:
		status = http.StatusUnauthorized
	case code == errs.PermissionDenied:
		status = http.StatusForbidden
	case code == errs.Unavailable:
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]string{"code": string(code), "message": err.Error()})
}

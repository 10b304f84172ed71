package quota

import (
	"net/http"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/jsonhttp"
)

// MaxBody bounds a management request's body.
const MaxBody = 16 << 10

// Handler serves quota management as JSON under /spool/auth/quotas
// (docs/api.md, "Quotas").
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /spool/auth/quotas", func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.Write(w, http.StatusOK, map[string]any{"quotas": s.List()})
	})
	get := func(entity func(*http.Request) Entity) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			e := entity(r)
			q, ok := s.Get(e)
			if !ok {
				jsonhttp.Error(w, errs.Wrap(errs.FailedPrecondition, ErrNotFound, "no quota for %s", e))
				return
			}
			jsonhttp.Write(w, http.StatusOK, q)
		}
	}
	alter := func(entity func(*http.Request) Entity) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			e := entity(r)
			var req struct {
				Set    map[string]float64 `json:"set"`
				Remove []string           `json:"remove"`
			}
			if !jsonhttp.Read(w, r, MaxBody, &req) {
				return
			}
			if err := s.Alter(e, req.Set, req.Remove); err != nil {
				jsonhttp.Error(w, err)
				return
			}
			q, ok := s.Get(e)
			if !ok {
				q = Quota{Entity: e}
			}
			jsonhttp.Write(w, http.StatusOK, q)
		}
	}
	del := func(entity func(*http.Request) Entity) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			e := entity(r)
			if err := s.Delete(e); err != nil {
				jsonhttp.Error(w, err)
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

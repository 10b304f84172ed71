package acl

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/spoolmq/spool/internal/errs"
)

// maxBody bounds a management request's body: MaxRules rules of bounded
// names fit in far less, but one request adds at most maxAddPerRequest.
const (
	maxBody          = 1 << 20
	maxAddPerRequest = 1000
)

// Handler serves rule management as JSON under /spool/auth/acls
// (docs/api.md): GET lists the rules a filter selects (query parameters
// principal, host, resource, pattern, name, operation, permission; pattern
// "match" selects the rules that apply to name), POST {"rules":[...]} adds
// rules, DELETE with the same query parameters deletes what they select
// (at least one must be given: deleting every rule takes ?all=true).
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /spool/auth/acls", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"rules": nonNil(s.Rules(filterOf(r)))})
	})
	mux.HandleFunc("POST /spool/auth/acls", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Rules []Rule `json:"rules"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, errs.New(errs.InvalidArgument, "request body: %v", err))
			return
		}
		if len(req.Rules) == 0 || len(req.Rules) > maxAddPerRequest {
			writeError(w, errs.New(errs.InvalidArgument, "a request adds 1 to %d rules", maxAddPerRequest))
			return
		}
		added, err := s.Add(req.Rules)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"rules": added})
	})
	mux.HandleFunc("DELETE /spool/auth/acls", func(w http.ResponseWriter, r *http.Request) {
		f := filterOf(r)
		if f == (Filter{}) && r.URL.Query().Get("all") != "true" {
			writeError(w, errs.New(errs.InvalidArgument, "name what to delete (principal, resource, name, ...), or ?all=true to delete every rule"))
			return
		}
		per, err := s.Delete([]Filter{f})
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"deleted": nonNil(per[0])})
	})
	return mux
}

func nonNil(rs []Rule) []Rule {
	if rs == nil {
		return []Rule{}
	}
	return rs
}

// filterOf reads a filter from query parameters; a principal without a
// type is a user's.
func filterOf(r *http.Request) Filter {
	q := r.URL.Query()
	f := Filter{
		Principal: q.Get("principal"), Host: q.Get("host"), Resource: Resource(q.Get("resource")),
		Pattern: q.Get("pattern"), Name: q.Get("name"), Operation: Operation(q.Get("operation")),
		Permission: Permission(q.Get("permission")),
	}
	if f.Principal != "" && !strings.Contains(f.Principal, ":") {
		f.Principal = PrincipalOf(f.Principal)
	}
	if f.Resource == Cluster && f.Name == "" {
		f.Name = ClusterName
	}
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch errs.CodeOf(err) {
	case errs.InvalidArgument:
		status = http.StatusBadRequest
	case errs.ResourceExhausted:
		status = http.StatusTooManyRequests
	case errs.Unavailable:
		status = http.StatusServiceUnavailable
	case errs.PermissionDenied:
		status = http.StatusForbidden
	}
	writeJSON(w, status, map[string]string{"code": string(errs.CodeOf(err)), "message": err.Error()})
}

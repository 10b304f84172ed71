package acl

import (
	"net/http"
	"strings"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/jsonhttp"
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
		jsonhttp.Write(w, http.StatusOK, map[string]any{"rules": nonNil(s.Rules(filterOf(r)))})
	})
	mux.HandleFunc("POST /spool/auth/acls", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Rules []Rule `json:"rules"`
		}
		if !jsonhttp.Read(w, r, maxBody, &req) {
			return
		}
		if len(req.Rules) == 0 || len(req.Rules) > maxAddPerRequest {
			jsonhttp.Error(w, errs.New(errs.InvalidArgument, "a request adds 1 to %d rules", maxAddPerRequest))
			return
		}
		added, err := s.Add(req.Rules)
		if err != nil {
			jsonhttp.Error(w, err)
			return
		}
		jsonhttp.Write(w, http.StatusCreated, map[string]any{"rules": added})
	})
	mux.HandleFunc("DELETE /spool/auth/acls", func(w http.ResponseWriter, r *http.Request) {
		f := filterOf(r)
		if f == (Filter{}) && r.URL.Query().Get("all") != "true" {
			jsonhttp.Error(w, errs.New(errs.InvalidArgument, "name what to delete (principal, resource, name, ...), or ?all=true to delete every rule"))
			return
		}
		per, err := s.Delete([]Filter{f})
		if err != nil {
			jsonhttp.Error(w, err)
			return
		}
		jsonhttp.Write(w, http.StatusOK, map[string]any{"deleted": nonNil(per[0])})
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

package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/spoolmq/spool/internal/auth"
	"github.com/spoolmq/spool/internal/auth/acl"
	"github.com/spoolmq/spool/internal/errs"
)

// Authorization of the HTTP routes that are not native RPCs (those are in
// internal/api/authz.go): the catalog, user and rule management, the web
// console and the schema registry. Each request maps to the checks it
// needs (docs/security.md, "What each request needs").

// httpCheck is one authorization an HTTP request needs.
type httpCheck struct {
	res  acl.Resource
	name string
	op   acl.Operation
}

func clusterOp(op acl.Operation) []httpCheck { return []httpCheck{{acl.Cluster, acl.ClusterName, op}} }

// authorizeHTTP wraps h: each request passes checks(r) or is refused with
// 403 and {"code","message"} (refuse writes other forms).
func (s *Server) authorizeHTTP(h http.Handler, checks func(*http.Request) []httpCheck, refuse func(http.ResponseWriter, error)) http.Handler {
	az := s.acls.Authorizer()
	if az == nil {
		return h
	}
	if refuse == nil {
		refuse = func(w http.ResponseWriter, err error) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]string{"code": string(errs.CodeOf(err)), "message": err.Error()})
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := auth.WithHost(r.Context(), acl.HostOf(r.RemoteAddr))
		for _, c := range checks(r) {
			if err := az.Check(ctx, c.res, c.name, c.op); err != nil {
				refuse(w, err)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// managementChecks: users, keys, rules and quotas are the cluster's to
// manage (admin); listing rules or quotas needs describe on it.
func managementChecks(r *http.Request) []httpCheck {
	if r.Method == http.MethodGet && (strings.HasPrefix(r.URL.Path, "/spool/auth/acls") || strings.HasPrefix(r.URL.Path, "/spool/auth/quotas")) {
		return clusterOp(acl.Describe)
	}
	return clusterOp(acl.Admin)
}

// consoleMaxForm bounds a console form's body (as the console does).
const consoleMaxForm = 64 << 10

// consoleChecks: the console's pages describe the whole cluster; browsing
// a topic's messages needs consume on it; a subscription's dead letters
// consume on it and its topic; a reset or a redrive admin on it (and a redrive to the
// whole topic publish on the topic).
func consoleChecks(r *http.Request) []httpCheck {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) >= 3 && parts[0] == "topics" {
		switch {
		case len(parts) == 3 && parts[2] == "messages":
			return []httpCheck{{acl.Topic, parts[1], acl.Consume}}
		case len(parts) == 5 && parts[2] == "subscriptions" && parts[4] == "dead-letters":
			return []httpCheck{{acl.Topic, parts[1], acl.Consume}, {acl.Group, parts[3], acl.Consume}}
		case len(parts) == 5 && parts[2] == "subscriptions" && r.Method == http.MethodPost:
			checks := []httpCheck{{acl.Group, parts[3], acl.Admin}}
			if parts[4] == "redrive" {
				// A redrive to the topic republishes to every subscription:
				// publish on it too. The form is read within the console's
				// bound (the console reads it again from r.PostForm).
				r.Body = http.MaxBytesReader(nil, r.Body, consoleMaxForm)
				if r.PostFormValue("target") == "topic" {
					checks = append(checks, httpCheck{acl.Topic, parts[1], acl.Publish})
				}
			}
			return checks
		}
	}
	return clusterOp(acl.Describe)
}

// registryChecks maps a schema registry request to its checks: reading a
// subject's versions, settings or usage needs describe on the subject,
// registering a version publish on it (serializers register what they
// produce), deleting it or changing its settings admin on it; the global
// settings are the cluster's (describe to read, admin to change); a schema
// by id needs describe on some subject that holds it (checked by the
// registry hook, registryIDAllowed). Listings are filtered by the registry
// (subjects one may describe). Declared readers belong to their
// subscription (admin to declare, describe to list).
func (s *Server) registryChecks(r *http.Request) []httpCheck {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	subject := func(op acl.Operation) []httpCheck { return []httpCheck{{acl.Subject, parts[1], op}} }
	switch {
	case len(parts) >= 2 && parts[0] == "subjects":
		switch {
		case r.Method == http.MethodDelete:
			return subject(acl.Admin)
		case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "versions":
			return subject(acl.Publish)
		}
		return subject(acl.Describe)
	case len(parts) >= 1 && (parts[0] == "config" || parts[0] == "mode"):
		op := acl.Describe
		if write {
			op = acl.Admin
		}
		if len(parts) >= 2 {
			return subject(op)
		}
		return clusterOp(op)
	case len(parts) >= 3 && parts[0] == "compatibility" && parts[1] == "subjects":
		return []httpCheck{{acl.Subject, parts[2], acl.Describe}}
	case len(parts) >= 3 && parts[0] == "spool" && (parts[1] == "usage" || parts[1] == "reader-check"):
		op := acl.Describe
		if write {
			op = acl.Admin
		}
		return []httpCheck{{acl.Subject, parts[2], op}}
	case len(parts) >= 4 && parts[0] == "spool" && parts[1] == "readers":
		op := acl.Describe
		if write {
			op = acl.Admin
		}
		return []httpCheck{{acl.Group, parts[3], op}}
	case len(parts) == 2 && parts[0] == "spool" && parts[1] == "readers":
		return clusterOp(acl.Describe)
	case len(parts) >= 3 && parts[0] == "schemas" && parts[1] == "ids":
		return nil // registryIDAllowed
	}
	// /, /schemas/types, /contexts, /schemas and /subjects (filtered).
	return nil
}

// registryAllowed is the registry's hook for what it answers: whether the
// principal of a request may describe a subject (listings leave the others
// out; a schema by id needs one of its subjects).
func (s *Server) registryAllowed(r *http.Request, subject string) bool {
	az := s.acls.Authorizer()
	if az == nil {
		return true
	}
	ctx := auth.WithHost(r.Context(), acl.HostOf(r.RemoteAddr))
	return az.Check(ctx, acl.Subject, subject, acl.Describe) == nil
}

// registryRefuse answers a refused registry request in the registry's
// error format (Confluent's 40301).
func registryRefuse(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(http.StatusForbidden)
	json.NewEncoder(w).Encode(map[string]any{"error_code": 40301, "message": err.Error()})
}

// consoleRefuse answers a refused console request as a page.
func consoleRefuse(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(err.Error())+1))
	w.WriteHeader(http.StatusForbidden)
	w.Write([]byte(err.Error() + "\n"))
}

// authorizedMux mounts the console's routes with consoleChecks.
type authorizedMux struct {
	s   *Server
	mux interface{ Handle(string, http.Handler) }
}

func (m authorizedMux) Handle(pattern string, h http.Handler) {
	m.mux.Handle(pattern, m.s.authorizeHTTP(h, consoleChecks, consoleRefuse))
}

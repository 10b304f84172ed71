package sreg

import (
	"net/http"
	"strconv"
	"sync/atomic"
)

// AllowedFunc reports whether the principal of a request may describe a
// subject (the server's authorizer); nil: every principal may.
type AllowedFunc func(req *http.Request, subject string) bool

// allowedHook holds the registry's AllowedFunc.
type allowedHook struct{ fn atomic.Pointer[AllowedFunc] }

// SetAllowed makes listings leave out the subjects a request's principal
// may not describe, and a schema by id need one of its subjects it may
// (the routes themselves are authorized by the server, by path).
func (r *Registry) SetAllowed(fn AllowedFunc) { r.allowed.fn.Store(&fn) }

func (r *Registry) allows(req *http.Request, subject string) bool {
	fn := r.allowed.fn.Load()
	return fn == nil || *fn == nil || (*fn)(req, subject)
}

// checkID refuses a request for a schema by id unless its principal may
// describe a subject that holds it (deleted versions count: a consumer
// may still read data written with them).
func (r *Registry) checkID(req *http.Request, id int) error {
	if fn := r.allowed.fn.Load(); fn == nil || *fn == nil {
		return nil
	}
	svs, err := r.VersionsOfID(id, true)
	if err != nil {
		return err
	}
	for _, sv := range svs {
		if r.allows(req, sv.Subject) {
			return nil
		}
	}
	return &Error{Code: CodeForbidden, Message: "not authorized to read schema " + strconv.Itoa(id) + ": describe on one of its subjects is needed"}
}

// CodeForbidden is the registry's error code of a refused request.
const CodeForbidden = 40301

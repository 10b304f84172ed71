// Package jsonhttp is the JSON of the small management APIs on the native
// listener (users, access control rules, quotas): bounded strict request
// bodies, answers, and errors as {"code","message"} with an HTTP status
// from the Spool error code.
package jsonhttp

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/spoolmq/spool/internal/errs"
)

// ErrNotFound and ErrExists, wrapped in an error, answer 404 not_found and
// 409 already_exists whatever its code.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Read decodes r's body, at most max bytes with no unknown field, into v;
// on failure it answers invalid_argument and returns false.
func Read(w http.ResponseWriter, r *http.Request, max int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		Error(w, errs.New(errs.InvalidArgument, "request body: %v", err))
		return false
	}
	return true
}

// Write answers v as JSON with status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Error answers {"code","message"} with the status of err's code.
func Error(w http.ResponseWriter, err error) {
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
	case code == errs.PermissionDenied:
		status = http.StatusForbidden
	case code == errs.Unavailable:
		status = http.StatusServiceUnavailable
	}
	Write(w, status, map[string]string{"code": string(code), "message": err.Error()})
}

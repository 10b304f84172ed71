package sreg

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a registry error with its Confluent error code: 404xx not
// found, 409 incompatible, 422xx invalid input, 500xx server errors.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (error %d)", e.Message, e.Code) }

// Status is the HTTP status the error is answered with.
func (e *Error) Status() int {
	switch {
	case e.Code < 1000:
		return e.Code
	case e.Code/100 == 404:
		return http.StatusNotFound
	case e.Code/100 == 422:
		return http.StatusUnprocessableEntity
	case e.Code/100 == 401:
		return http.StatusUnauthorized
	case e.Code/100 == 403:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// The Confluent error codes the registry answers with.
const (
	CodeSubjectNotFound           = 40401
	CodeVersionNotFound           = 40402
	CodeSchemaNotFound            = 40403
	CodeSubjectSoftDeleted        = 40404
	CodeSubjectNotSoftDeleted     = 40405
	CodeVersionSoftDeleted        = 40406
	CodeVersionNotSoftDeleted     = 40407
	CodeSubjectLevelCompatNotSet  = 40408
	CodeSubjectLevelModeNotSet    = 40409
	CodeIncompatible              = 409
	CodeInvalidSchema             = 42201
	CodeInvalidVersion            = 42202
	CodeInvalidCompatibilityLevel = 42203
	CodeInvalidMode               = 42204
	CodeOperationNotPermitted     = 42205
	CodeReferenceExists           = 42206
	CodeInvalidRequest            = 42200 // a malformed request body or parameter
	CodeStoreError                = 50001
	CodeOperationTimeout          = 50002
)

func errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func subjectNotFound(s string) *Error {
	return errorf(CodeSubjectNotFound, "Subject '%s' not found.", s)
}

func versionNotFound(s string, v int) *Error {
	return errorf(CodeVersionNotFound, "Version %d not found for subject '%s'.", v, s)
}

func schemaNotFound() *Error { return errorf(CodeSchemaNotFound, "Schema not found") }

// errConflict: a registration's compatibility was checked against a
// registry that changed before it was applied; it is checked again.
var errConflict = errors.New("sreg: registry changed since the check")

// asError returns err as a registry Error, a store error if it is not one.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errorf(CodeStoreError, "Error in the backend data store: %v", err)
}

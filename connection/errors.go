package connection

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/store"
)

// Code is the stable kind of an error: the one vocabulary of the Manager,
// the checks (package check, whose errors have an ErrorCode) and the HTTP
// layer, which maps each to one status. Programs compare with errors.Is
// against the Err sentinels, or with CodeOf.
type Code string

// The error kinds.
const (
	CodeInvalidArgument  Code = "invalid_argument"
	CodeNotFound         Code = "not_found"
	CodeAlreadyExists    Code = "already_exists"
	CodeInUse            Code = "in_use"
	CodeVersionMismatch  Code = "version_mismatch"
	CodeLimitExceeded    Code = "limit_exceeded"
	CodeUnavailable      Code = "unavailable"
	CodeDeadlineExceeded Code = "deadline_exceeded"
	CodeInternal         Code = "internal"
	// CodeResourceExhausted: too much is in flight (checks); retry later.
	CodeResourceExhausted Code = "resource_exhausted"
	// CodeBodyTooLarge, CodeMethodNotAllowed and CodeCrossOrigin are the
	// HTTP layer's.
	CodeBodyTooLarge     Code = "body_too_large"
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodeCrossOrigin: a browser sent a request that changes something
	// from a page of another origin.
	CodeCrossOrigin Code = "cross_origin"
)

// Codes lists every Code, for documents and tables that must cover them.
var Codes = []Code{CodeInvalidArgument, CodeNotFound, CodeAlreadyExists, CodeInUse, CodeVersionMismatch,
	CodeLimitExceeded, CodeUnavailable, CodeDeadlineExceeded, CodeInternal, CodeResourceExhausted,
	CodeBodyTooLarge, CodeMethodNotAllowed, CodeCrossOrigin}

// Sentinels for errors.Is; every error the Manager returns is an *Error
// that matches exactly one of them.
var (
	ErrInvalidArgument   = errors.New("invalid argument")
	ErrNotFound          = errors.New("not found")
	ErrAlreadyExists     = errors.New("already exists")
	ErrInUse             = errors.New("in use")
	ErrVersionMismatch   = errors.New("version mismatch")
	ErrLimitExceeded     = errors.New("limit exceeded")
	ErrUnavailable       = errors.New("unavailable")
	ErrDeadlineExceeded  = errors.New("deadline exceeded")
	ErrInternal          = errors.New("internal error")
	ErrResourceExhausted = errors.New("resource exhausted")
	ErrBodyTooLarge      = errors.New("body too large")
	ErrMethodNotAllowed  = errors.New("method not allowed")
)

var sentinels = map[Code]error{
	CodeInvalidArgument:   ErrInvalidArgument,
	CodeNotFound:          ErrNotFound,
	CodeAlreadyExists:     ErrAlreadyExists,
	CodeInUse:             ErrInUse,
	CodeVersionMismatch:   ErrVersionMismatch,
	CodeLimitExceeded:     ErrLimitExceeded,
	CodeUnavailable:       ErrUnavailable,
	CodeDeadlineExceeded:  ErrDeadlineExceeded,
	CodeInternal:          ErrInternal,
	CodeResourceExhausted: ErrResourceExhausted,
	CodeBodyTooLarge:      ErrBodyTooLarge,
	CodeMethodNotAllowed:  ErrMethodNotAllowed,
}

// Error is what the Manager returns on failure.
type Error struct {
	Code Code
	// ID is the connection concerned, if any.
	ID string
	// Message says what went wrong and what to do, for a person.
	Message string
	// Fields lists the invalid fields of a request, for CodeInvalidArgument.
	Fields connector.FieldErrors
	// Refs lists the refs holding the connection, for CodeInUse.
	Refs []string
	// Err is the cause, if any.
	Err error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's Code.
func (e *Error) Is(target error) bool { return sentinels[e.Code] == target }

// Coded is an error of another package that has a Code, such as a
// check.Error.
type Coded interface {
	error
	ErrorCode() Code
}

// CodeOf returns the kind of err: its Code if it is an *Error or a Coded,
// a deadline for context errors, CodeInternal otherwise.
func CodeOf(err error) Code {
	var e *Error
	var c Coded
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	case errors.As(err, &c):
		return c.ErrorCode()
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return CodeDeadlineExceeded
	}
	return CodeInternal
}

func notFound(id string) error {
	return &Error{Code: CodeNotFound, ID: id, Message: fmt.Sprintf("connection %s not found", quote(id))}
}

func inUse(id, op string, refs []string) error {
	return &Error{Code: CodeInUse, ID: id, Refs: refs,
		Message: fmt.Sprintf("connection %s cannot be %s: it is used by %s; detach them first", quote(id), op, strings.Join(refs, ", "))}
}

func invalid(id string, fields connector.FieldErrors) error {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Error()
	}
	return &Error{Code: CodeInvalidArgument, ID: id, Fields: fields,
		Message: "invalid connection: " + strings.Join(parts, "; ")}
}

// invalidClean is invalid, with each message passed through clean
// (secret.Sanitizer of the props it may quote).
func invalidClean(id string, fields connector.FieldErrors, clean func(string) string) error {
	out := make(connector.FieldErrors, len(fields))
	for i, f := range fields {
		out[i] = connector.FieldError{Field: f.Field, Message: clean(f.Message)}
	}
	return invalid(id, out)
}

func invalidField(id, field, msg string) error {
	return invalid(id, connector.FieldErrors{{Field: field, Message: msg}})
}

var errClosed = &Error{Code: CodeUnavailable, Message: "the connection manager is closed"}

// ctxError turns a context error into a deadline error naming the step.
func ctxError(id, step string, err error) error {
	return &Error{Code: CodeDeadlineExceeded, ID: id, Err: err,
		Message: fmt.Sprintf("connection %s: %s: %v", quote(id), step, err)}
}

// storeError classifies an error from the Store.
func storeError(id, op string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(id)
	case errors.Is(err, store.ErrExists):
		return &Error{Code: CodeAlreadyExists, ID: id, Err: err, Message: fmt.Sprintf("connection %s already exists; choose another id or update it", quote(id))}
	case errors.Is(err, store.ErrVersionMismatch):
		return &Error{Code: CodeVersionMismatch, ID: id, Err: err, Message: fmt.Sprintf("connection %s was changed by someone else; read it again and retry", quote(id))}
	case errors.Is(err, store.ErrInUse):
		var refs []string
		if iu := (*store.InUseError)(nil); errors.As(err, &iu) {
			for _, r := range iu.Refs {
				refs = append(refs, r.Instance+": "+r.Name)
			}
		}
		return &Error{Code: CodeInUse, ID: id, Refs: refs, Err: err,
			Message: fmt.Sprintf("connection %s cannot be %s: it is used on other instances by %s; detach them first", quote(id), pastOf(op), strings.Join(refs, ", "))}
	case errors.Is(err, store.ErrUnavailable):
		return &Error{Code: CodeUnavailable, ID: id, Err: err,
			Message: fmt.Sprintf("connection %s: %s: the store did not answer; it may or may not have been applied, read it again and retry", quote(id), op)}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ctxError(id, op, err)
	}
	return &Error{Code: CodeInternal, ID: id, Err: err,
		Message: fmt.Sprintf("connection %s: %s failed in the store, nothing was changed: %v", quote(id), op, err)}
}

// pastOf is the participle of a store operation, for messages.
func pastOf(op string) string {
	switch op {
	case "update":
		return "updated"
	case "delete":
		return "deleted"
	}
	return op + "ed"
}

// quote quotes at most 64 bytes of s, such as an id from a request, for
// a message.
func quote(s string) string { return strconv.Quote(connector.Short(s)) }

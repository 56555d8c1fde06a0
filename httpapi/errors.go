package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/meridian-db/meridian/node"
)

// Error codes of the HTTP front end itself. Every other code comes from
// node.ErrorCode (unknown_keyspace, keyspace_exists, invalid_spec,
// no_leader, timeout, ...).
const (
	CodeBadJSON              = "bad_json"               // the body is not one JSON value of the expected shape
	CodeUnknownField         = "unknown_field"          // the body has a field the API does not know
	CodeBodyTooLarge         = "body_too_large"         // the body is over the configured limit
	CodeUnsupportedMediaType = "unsupported_media_type" // a body without Content-Type: application/json
	CodeBadValue             = "bad_value"              // no value, two values, bad base64, unknown type
	CodeBadTTL               = "bad_ttl"                // ttl_ms not in 1..MaxTTLMS
	CodeBadQuery             = "bad_query"              // a query parameter with a value the API does not know
	CodeBadPath              = "bad_path"               // a path with empty or dot segments (percent-encode such keys)
	CodeKeyNotFound          = "key_not_found"          // GET or DELETE of a key that does not exist
	CodeNotFound             = "not_found"              // no such route
	CodeMethodNotAllowed     = "method_not_allowed"     // the route exists, not with this method
	CodeInternal             = "internal"               // anything unexpected (logged)
)

// ErrorBody is the body of every error answer:
//
//	{"error": {"code": "unknown_keyspace", "message": "metadata: unknown keyspace: \"t\""}}
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the code (stable, for programs) and message (for people)
// of an error answer.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// apiError is an error detected by the front end, with its code.
type apiError struct {
	code, msg string
}

func (e *apiError) Error() string { return "httpapi: " + e.msg }

func errorf(code, format string, args ...any) error {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

// codeOf returns the stable code of an error: the front end's own, or the
// node's.
func codeOf(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code
	}
	return node.ErrorCode(err)
}

// StatusOf maps an error code to its HTTP status. It is the one place that
// does: bad input 400, unknown keyspace or key 404, conflicts with what
// exists 409, oversized input 413, unavailability (no leader, timeout,
// unreachable replicas) 503, anything else 500.
func StatusOf(code string) int {
	switch code {
	case CodeBadJSON, CodeUnknownField, CodeBadValue, CodeBadFault, CodeBadTTL, CodeBadQuery, CodeBadPath,
		"empty_key", "key_too_large", "unknown_consistency", "invalid_spec", "placement", "bad_command",
		"not_async", "stale_epoch", "wrong_cluster", "bad_batch", "bad_token", "strong_on_active", "members_differ",
		"timings_differ", CodeBadRule, CodeRootUser, "backup_target", "backup_key", "backup_window", "restore_gap",
		"backup_refused":
		return http.StatusBadRequest
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case "backup_corrupt":
		return http.StatusUnprocessableEntity
	case CodeKeyNotFound, CodeNotFound, "unknown_keyspace", CodeUnknownUser:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeEmulationOff:
		return http.StatusConflict
	case "keyspace_exists", "wrong_type", "primary_healthy", "meta_stale_epoch", "restoring":
		return http.StatusConflict
	case CodeBodyTooLarge, "value_too_large":
		return http.StatusRequestEntityTooLarge
	case CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case "no_leader", "not_leader", "dropped", "no_replica", "unreachable", "timeout", "outcome_unknown", "stopped",
		"not_primary", "fenced", "not_drained", "rpo_budget", "stale_route", "primary_lease", "region_unavailable":
		// outcome_unknown and timeout: a write may or may not have taken
		// effect; PUT and DELETE are idempotent, so retrying is safe.
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers with err's code and status and returns the code.
func (a *api) writeError(w http.ResponseWriter, route string, err error) string {
	code := codeOf(err)
	status := StatusOf(code)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if status == http.StatusInternalServerError {
		a.log.Error("request failed", "route", route, "code", code, "err", err)
	}
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: err.Error()}})
	return code
}

package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// MaxTTLMS bounds ttl_ms (about 100 years), so that the absolute expiry
// can never overflow.
const MaxTTLMS = 100 * 365 * 24 * 3600 * 1000

// TypeString is the only value type the API writes and reads for now.
// Typed values (counters, sets, hashes) will be more values of the "type"
// field of PutRequest and ValueResponse.
const TypeString = "string"

// PutRequest is the body of PUT /v1/keyspaces/{ks}/keys/{key}: exactly one
// of Value (UTF-8 text) and ValueBase64 (any bytes, standard base64 with
// padding); Type, if present, must be "string"; TTLMS, if present, makes
// the key expire that many milliseconds after the write.
type PutRequest struct {
	Type        string  `json:"type,omitempty"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	TTLMS       *int64  `json:"ttl_ms,omitempty"`
}

// put is a decoded, checked PutRequest.
type put struct {
	value []byte
	ttlMS int64 // 0: no expiry
}

// requireJSON refuses a body that does not say it is JSON. Besides being
// honest, this makes every write a request a browser will not send across
// origins without a CORS preflight, which the API never grants.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorf(CodeUnsupportedMediaType, "the body must be JSON, sent with Content-Type: application/json (got %q)", ct)
	}
	return nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(err)
		}
		return errorf(CodeBadJSON, "the body holds more than one JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var tooLarge *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return errorf(CodeBodyTooLarge, "the body is larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return errorf(CodeBadJSON, "the body is empty")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no error type for this one.
		return errorf(CodeUnknownField, "%s", strings.TrimPrefix(err.Error(), "json: "))
	case errors.As(err, &typeErr):
		return errorf(CodeBadJSON, "field %q: expected %s, got a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	return errorf(CodeBadJSON, "malformed JSON: %v", err)
}

// decodePut reads and checks a PutRequest.
func decodePut(r io.Reader, maxValueBytes int) (put, error) {
	var req PutRequest
	if err := decodeStrict(r, &req); err != nil {
		return put{}, err
	}
	if req.Type != "" && req.Type != TypeString {
		return put{}, errorf(CodeBadValue, "type %q is not supported (want %q)", req.Type, TypeString)
	}
	var p put
	switch {
	case req.Value != nil && req.ValueBase64 != nil:
		return put{}, errorf(CodeBadValue, "give either value or value_base64, not both")
	case req.Value != nil:
		p.value = []byte(*req.Value)
	case req.ValueBase64 != nil:
		b, err := base64.StdEncoding.Strict().DecodeString(*req.ValueBase64)
		if err != nil {
			return put{}, errorf(CodeBadValue, "value_base64: %v", err)
		}
		p.value = b
	default:
		return put{}, errorf(CodeBadValue, "the body needs a value or a value_base64")
	}
	if len(p.value) > maxValueBytes {
		return put{}, fmt.Errorf("%w: %d bytes (limit %d)", node.ErrValueTooLarge, len(p.value), maxValueBytes)
	}
	if req.TTLMS != nil {
		if *req.TTLMS < 1 || *req.TTLMS > MaxTTLMS {
			return put{}, errorf(CodeBadTTL, "ttl_ms must be between 1 and %d, got %d", int64(MaxTTLMS), *req.TTLMS)
		}
		p.ttlMS = *req.TTLMS
	}
	if p.value == nil {
		p.value = []byte{}
	}
	return p, nil
}

// decodeKeyspaceSpec reads a keyspace specification. Its content is
// checked by the node (metadata.KeyspaceSpec.Normalize), which knows the
// cluster's regions.
func decodeKeyspaceSpec(r io.Reader) (metadata.KeyspaceSpec, error) {
	var spec metadata.KeyspaceSpec
	if err := decodeStrict(r, &spec); err != nil {
		return metadata.KeyspaceSpec{}, err
	}
	return spec, nil
}

var regionRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// decodeJoinRequest reads and checks a request to admit a node.
func decodeJoinRequest(r io.Reader) (JoinRequest, error) {
	var req JoinRequest
	if err := decodeStrict(r, &req); err != nil {
		return JoinRequest{}, err
	}
	if _, err := checkNodeInfo(req.NodeInfo); err != nil {
		return JoinRequest{}, err
	}
	if t := req.Timings; t != nil && (t.TickInterval <= 0 || t.MinHeartbeatInterval <= 0 || t.MinElectionTimeout <= 0) {
		return JoinRequest{}, fmt.Errorf("%w: timings %+v must be positive", metadata.ErrInvalidSpec, *t)
	}
	return req, nil
}

// decodeNodeInfo reads and checks the description of a node to admit.
func decodeNodeInfo(r io.Reader) (metadata.NodeInfo, error) {
	var ni metadata.NodeInfo
	if err := decodeStrict(r, &ni); err != nil {
		return metadata.NodeInfo{}, err
	}
	return checkNodeInfo(ni)
}

func checkNodeInfo(ni metadata.NodeInfo) (metadata.NodeInfo, error) {
	bad := func(format string, args ...any) (metadata.NodeInfo, error) {
		return metadata.NodeInfo{}, fmt.Errorf("%w: %s", metadata.ErrInvalidSpec, fmt.Sprintf(format, args...))
	}
	switch {
	case ni.ID == 0:
		return bad("the node needs a non-zero id")
	case !regionRE.MatchString(ni.Region):
		return bad("region %q must be 1-63 letters, digits, '_', '.' or '-'", ni.Region)
	case ni.Zone != "" && !regionRE.MatchString(ni.Zone):
		return bad("zone %q must be 1-63 letters, digits, '_', '.' or '-'", ni.Zone)
	}
	for _, a := range []struct{ name, addr string }{{"addr", ni.Addr}, {"resp_addr", ni.RESPAddr}, {"http_addr", ni.HTTPAddr}} {
		if a.addr == "" && a.name != "addr" {
			continue
		}
		if host, port, err := net.SplitHostPort(a.addr); err != nil || host == "" || port == "" {
			return bad("%s %q must be host:port", a.name, a.addr)
		}
	}
	return ni, nil
}

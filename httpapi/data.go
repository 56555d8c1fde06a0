package httpapi

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/meridian-db/meridian/consistency"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/node"
)

// Request and answer headers of the data routes.
const (
	// HeaderConsistency, on a request, asks for a consistency level
	// (strong, bounded(D), session, prefix or eventual; default: the
	// keyspace's). On an answer it says what was provided.
	HeaderConsistency = consistency.HeaderConsistency
	// HeaderSession carries a session token: on a request, the one to
	// honour (read-your-writes, monotonic reads); on an answer, the one to
	// present next.
	HeaderSession = consistency.HeaderSession
	// HeaderStaleness is an upper bound, in ms, of how stale the answer
	// may be (0 for strong answers and writes; absent when unknown).
	HeaderStaleness = consistency.HeaderStaleness
	HeaderRegion    = consistency.HeaderRegion // region of the node that served the request
	HeaderNode      = consistency.HeaderNode   // id of that node
	HeaderIndex     = "Meridian-Index"         // raft index the answer reflects
	HeaderForwarded = "Meridian-Forwarded"     // "true" if another node served it, else "false"
)

// ValueResponse is the answer to GET /v1/keyspaces/{ks}/keys/{key}. The
// value is in Value when it is valid UTF-8 and base64 was not asked for
// (?encoding=base64), otherwise in ValueBase64. Likewise the key is also
// given in KeyBase64 when it is not valid UTF-8.
type ValueResponse struct {
	Key         string  `json:"key"`
	KeyBase64   string  `json:"key_base64,omitempty"`
	Type        string  `json:"type"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	Found       bool    `json:"found"`
	// ExpiresAtMS is the absolute expiry (ms since the Unix epoch) and
	// TTLMS the time left, for a key written with a TTL.
	ExpiresAtMS int64 `json:"expires_at_ms,omitempty"`
	TTLMS       int64 `json:"ttl_ms,omitempty"`
}

// WriteResponse is the answer to PUT: Written is false only when a
// condition prevented the write (none exist in this API yet).
type WriteResponse struct {
	Key     string `json:"key"`
	Written bool   `json:"written"`
}

// DeleteResponse is the answer to a DELETE of an existing key (a missing
// key is a 404 key_not_found).
type DeleteResponse struct {
	Key     string `json:"key"`
	Deleted bool   `json:"deleted"`
}

// target reads the keyspace, key and consistency of a data request.
func (a *api) target(r *http.Request) (ks string, key []byte, c node.Consistency, err error) {
	ks, key = r.PathValue("ks"), []byte(r.PathValue("key"))
	switch {
	case len(key) == 0:
		return "", nil, c, node.ErrEmptyKey
	case len(key) > a.limits.MaxKeyBytes:
		return "", nil, c, fmt.Errorf("%w: %d bytes (limit %d)", node.ErrKeyTooLarge, len(key), a.limits.MaxKeyBytes)
	}
	if h := r.Header.Get(HeaderConsistency); h != "" {
		if c, err = node.ParseConsistency(h); err != nil {
			return "", nil, c, err
		}
	}
	c.Token = r.Header.Get(HeaderSession)
	return ks, key, c, nil
}

// setAnswer reports how a request was served in the answer headers, with
// the session token to present next (the request's, advanced).
func (a *api) setAnswer(w http.ResponseWriter, ks, token string, ans node.Answer) {
	if ans.Node == 0 {
		return // nothing served it (the request failed before)
	}
	h := w.Header()
	if tok, err := a.n.Session(ks, token, ans); err == nil {
		h.Set(HeaderSession, tok)
	}
	if ans.StalenessMS >= 0 {
		h.Set(HeaderStaleness, strconv.FormatInt(ans.StalenessMS, 10))
	}
	h.Set(HeaderRegion, ans.Region)
	h.Set(HeaderNode, strconv.FormatUint(ans.Node, 10))
	h.Set(HeaderConsistency, ans.Consistency)
	if ans.Index != 0 {
		h.Set(HeaderIndex, strconv.FormatUint(ans.Index, 10))
	}
	h.Set(HeaderForwarded, strconv.FormatBool(ans.Forwarded))
}

func (a *api) getKey(w http.ResponseWriter, r *http.Request) error {
	ks, key, c, err := a.target(r)
	if err != nil {
		return err
	}
	forceBase64 := false
	switch e := r.URL.Query().Get("encoding"); e {
	case "", "auto":
	case "base64":
		forceBase64 = true
	default:
		return errorf(CodeBadQuery, "encoding %q: want auto or base64", e)
	}
	rec, found, ans, err := a.n.GetRecord(r.Context(), ks, key, c)
	a.setAnswer(w, ks, c.Token, ans)
	if err != nil {
		return err
	}
	if !found {
		return errorf(CodeKeyNotFound, "key %q not found in keyspace %q", key, ks)
	}
	if rec.Type != kv.TypeString {
		return fmt.Errorf("%w: the key holds a %s; the HTTP API reads strings only", kv.ErrWrongType, rec.Type)
	}
	resp := ValueResponse{Key: string(key), Type: TypeString, Found: true}
	if !utf8.Valid(key) {
		resp.KeyBase64 = base64.StdEncoding.EncodeToString(key)
	}
	if forceBase64 || !utf8.Valid(rec.Payload) {
		v := base64.StdEncoding.EncodeToString(rec.Payload)
		resp.ValueBase64 = &v
	} else {
		v := string(rec.Payload)
		resp.Value = &v
	}
	if rec.ExpireAtMS != 0 {
		resp.ExpiresAtMS = rec.ExpireAtMS
		resp.TTLMS = max(1, rec.ExpireAtMS-a.n.NowMS())
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (a *api) putKey(w http.ResponseWriter, r *http.Request) error {
	ks, key, c, err := a.target(r) // writes are always strong; a bad level is still refused
	if err != nil {
		return err
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	p, err := decodePut(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.limits.MaxValueBytes)
	if err != nil {
		return err
	}
	// Times are absolute and decided here, so every replica applies the
	// same command.
	now := a.n.NowMS()
	cmd := kv.Command{Op: kv.OpSet, NowMS: now, Args: [][]byte{key, p.value}}
	if p.ttlMS > 0 {
		cmd.Int = now + p.ttlMS
	}
	res, ans, err := a.n.Write(r.Context(), ks, cmd)
	a.setAnswer(w, ks, c.Token, ans)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, WriteResponse{Key: string(key), Written: res.N > 0})
	return nil
}

func (a *api) deleteKey(w http.ResponseWriter, r *http.Request) error {
	ks, key, c, err := a.target(r)
	if err != nil {
		return err
	}
	existed, ans, err := a.n.Delete(r.Context(), ks, key)
	a.setAnswer(w, ks, c.Token, ans)
	if err != nil {
		return err
	}
	if !existed {
		return errorf(CodeKeyNotFound, "key %q not found in keyspace %q", key, ks)
	}
	writeJSON(w, http.StatusOK, DeleteResponse{Key: string(key), Deleted: true})
	return nil
}

package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// AlterRequest is the body of PATCH /v1/keyspaces/{ks}: one region to add
// or to remove.
type AlterRequest struct {
	AddRegion    string `json:"add_region,omitempty"`
	RemoveRegion string `json:"remove_region,omitempty"`
}

// PrimaryRequest is the body of a switchover or failover.
type PrimaryRequest struct {
	To string `json:"to"`
	// Force allows a failover while the primary region is reachable.
	Force bool `json:"force,omitempty"`
}

// LostWritesResponse is the answer of GET /v1/keyspaces/{ks}/lost-writes.
type LostWritesResponse struct {
	Keyspace string               `json:"keyspace"`
	Forks    []metadata.Fork      `json:"forks"`
	Writes   []metadata.LostWrite `json:"writes"`
}

func (a *api) alterKeyspace(w http.ResponseWriter, r *http.Request) error {
	pwait, err := a.placementWait(r)
	if err != nil {
		return err
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	var req AlterRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, a.cfg.MaxAdminBodyBytes), &req); err != nil {
		return err
	}
	ks, err := a.n.AlterKeyspaceWait(r.Context(), r.PathValue("ks"), req.AddRegion, req.RemoveRegion, pwait)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.keyspace(a.n.Metadata(), ks))
	return nil
}

func (a *api) decodePrimary(w http.ResponseWriter, r *http.Request) (PrimaryRequest, error) {
	var req PrimaryRequest
	if err := requireJSON(r); err != nil {
		return req, err
	}
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, a.cfg.MaxAdminBodyBytes), &req); err != nil {
		return req, err
	}
	if req.To == "" {
		return req, errorf(CodeBadValue, "the body needs the target region in \"to\"")
	}
	return req, nil
}

func (a *api) switchover(w http.ResponseWriter, r *http.Request) error {
	req, err := a.decodePrimary(w, r)
	if err != nil {
		return err
	}
	if req.Force {
		return errorf(CodeBadValue, "force applies to failover only")
	}
	res, err := a.n.Switchover(r.Context(), r.PathValue("ks"), req.To)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (a *api) failover(w http.ResponseWriter, r *http.Request) error {
	req, err := a.decodePrimary(w, r)
	if err != nil {
		return err
	}
	res, err := a.n.Failover(r.Context(), r.PathValue("ks"), req.To, req.Force)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (a *api) lostWrites(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("ks")
	rep, err := a.n.LostWrites(name)
	if err != nil {
		return err
	}
	// One report: a fork marked reported has all its writes here.
	resp := LostWritesResponse{Keyspace: name, Forks: rep.Forks, Writes: rep.Writes}
	if resp.Forks == nil {
		resp.Forks = []metadata.Fork{}
	}
	if resp.Writes == nil {
		resp.Writes = []metadata.LostWrite{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// conflicts answers an active keyspace's conflict ledger as the answering
// node's region recorded it: ?key=K, ?since_ms=T (Unix ms), ?limit=N and
// ?after=GROUP:SEQ,... (the "after" of the previous answer, to follow).
func (a *api) conflicts(w http.ResponseWriter, r *http.Request) error {
	q := node.ConflictQuery{After: map[uint64]uint64{}}
	v := r.URL.Query()
	if k := v.Get("key"); k != "" {
		q.Key = []byte(k)
	}
	if s := v.Get("since_ms"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			return errorf(CodeBadQuery, "since_ms %q: want Unix milliseconds", s)
		}
		q.SinceMS = ms
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return errorf(CodeBadQuery, "limit %q: want 1 to 10000", s)
		}
		q.Limit = n
	}
	if s := v.Get("after"); s != "" {
		for _, part := range strings.Split(s, ",") {
			g, seq, ok := strings.Cut(part, ":")
			gi, err1 := strconv.ParseUint(g, 10, 64)
			si, err2 := strconv.ParseUint(seq, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				return errorf(CodeBadQuery, "after %q: want GROUP:SEQ,...", s)
			}
			q.After[gi] = si
		}
	}
	page, err := a.n.Conflicts(r.PathValue("ks"), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

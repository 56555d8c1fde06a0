package httpapi

import (
	"net/http"
	"time"
)

// MaxPlacementWait bounds the placement_wait a request may ask for: the
// answer must come before the server's WriteTimeout.
const MaxPlacementWait = 45 * time.Second

// Health is the answer to GET /healthz.
type Health struct {
	Status string `json:"status"` // "ok" or "failed"
	Node   uint64 `json:"node"`
	Region string `json:"region"`
	Error  string `json:"error,omitempty"`
}

// healthz answers 200 while the process serves, 503 once its storage has
// failed (the node then stops).
func (a *api) healthz(w http.ResponseWriter, r *http.Request) error {
	h := Health{Status: "ok", Node: a.n.ID(), Region: a.n.Region()}
	status := http.StatusOK
	if err := a.n.Host().Err(); err != nil {
		h.Status, h.Error, status = "failed", err.Error(), http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
	return nil
}

// readyz answers the node's node.Readiness: 200 when ready, 503 with the
// reasons until then.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) error {
	rd := a.n.Ready(r.Context())
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, rd)
	return nil
}

// clusterReadiness answers node.ClusterReadiness: 200 when every member is
// ready, 503 otherwise (the body says who is not, and why).
func (a *api) clusterReadiness(w http.ResponseWriter, r *http.Request) error {
	cr := a.n.ClusterReadiness(r.Context())
	status := http.StatusOK
	if !cr.Ready {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, cr)
	return nil
}

// placementWait reads the placement_wait query parameter (a Go duration,
// 0 to MaxPlacementWait); without it, the node's default.
func (a *api) placementWait(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("placement_wait")
	if v == "" {
		return a.limits.PlacementWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > MaxPlacementWait {
		return 0, errorf(CodeBadQuery, "placement_wait %q: want a duration from 0s to %v, such as 30s", v, MaxPlacementWait)
	}
	return d, nil
}

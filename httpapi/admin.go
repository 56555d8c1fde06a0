package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/meridian-db/meridian/auth"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/transport"
)

// Keyspace is a keyspace as the admin routes show it: the metadata record
// (the specification with its defaults filled in, "shards" being their
// number, and "shard_list" the shards with their replicas) with each
// shard's leader as the answering node knows it. It decodes into a
// metadata.Keyspace.
type Keyspace struct {
	metadata.KeyspaceSpec
	CreatedIndex uint64  `json:"created_index"`
	Shards       []Shard `json:"shard_list"`
	// Epoch and Forks: see metadata.Keyspace.
	Epoch uint64          `json:"epoch,omitempty"`
	Forks []metadata.Fork `json:"forks,omitempty"`
}

// Shard is one shard, its group and replicas, and its leader, term and
// indexes as known to the answering node (zero when it holds no replica).
type Shard struct {
	metadata.Shard
	Leader       uint64 `json:"leader"`
	LeaderRegion string `json:"leader_region,omitempty"`
	Term         uint64 `json:"term,omitempty"`
	Commit       uint64 `json:"commit,omitempty"`
	Applied      uint64 `json:"applied,omitempty"`
}

// Peer is a node of the cluster as a transport peer.
type Peer struct {
	ID     uint64 `json:"id"`
	Region string `json:"region"`
	Addr   string `json:"addr"`
}

// JoinResponse is the answer to POST /v1/cluster/nodes: the admitted node,
// every node of the cluster, which the new node starts with (Join set,
// Peers from TransportPeers), and the cluster's name and id, which it
// records (node.Config Cluster and ClusterID).
type JoinResponse struct {
	Node      metadata.NodeInfo `json:"node"`
	Peers     []Peer            `json:"peers"`
	Cluster   string            `json:"cluster"`
	ClusterID string            `json:"cluster_id"`
	// Timings are the cluster's lease-critical timings (metadata.Timings):
	// the joining node must run with the same ones. Absent from a member
	// of an older version.
	Timings *metadata.Timings `json:"timings,omitempty"`
}

// JoinRequest is the body of POST /v1/cluster/nodes: the node to admit
// and the lease-critical timings it runs with. A node whose timings
// differ from the cluster's is refused (400 timings_differ naming the
// setting); without timings (a node of an older version) it is admitted
// and checked when it starts.
type JoinRequest struct {
	metadata.NodeInfo
	Timings *metadata.Timings `json:"timings,omitempty"`
}

// TransportPeers returns the peers as the node's configuration takes them.
func (j JoinResponse) TransportPeers() []transport.Peer {
	out := make([]transport.Peer, len(j.Peers))
	for i, p := range j.Peers {
		out[i] = transport.Peer{ID: p.ID, Region: p.Region, Addr: p.Addr}
	}
	return out
}

func (a *api) keyspace(st *metadata.State, ks *metadata.Keyspace) Keyspace {
	out := Keyspace{KeyspaceSpec: ks.KeyspaceSpec, CreatedIndex: ks.CreatedIndex, Shards: make([]Shard, 0, len(ks.Shards)), Epoch: ks.Epoch, Forks: ks.Forks}
	host := a.n.Host()
	for _, sh := range ks.Shards {
		s := Shard{Shard: sh}
		if gs, ok := host.Status(sh.Group); ok {
			s.Leader, s.Term, s.Commit, s.Applied = gs.Lead, gs.Term, gs.Commit, gs.Applied
		}
		if s.Leader != 0 {
			s.LeaderRegion = st.Nodes[s.Leader].Region
		}
		out.Shards = append(out.Shards, s)
	}
	return out
}

func (a *api) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, a.n.Status(r.Context()))
	return nil
}

// listKeyspaces answers a JSON array of Keyspace, sorted by name.
func (a *api) listKeyspaces(w http.ResponseWriter, r *http.Request) error {
	st := a.n.Metadata()
	names := make([]string, 0, len(st.Keyspaces))
	for name := range st.Keyspaces {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]Keyspace, 0, len(names))
	for _, name := range names {
		out = append(out, a.keyspace(st, st.Keyspaces[name]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) describeKeyspace(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("ks")
	st := a.n.Metadata()
	ks := st.Keyspaces[name]
	if ks == nil {
		return fmt.Errorf("%w: %q", metadata.ErrUnknownKeyspace, name)
	}
	writeJSON(w, http.StatusOK, a.keyspace(st, ks))
	return nil
}

// createKeyspace creates a keyspace from a metadata.KeyspaceSpec and
// answers 201 with the Keyspace once the metadata change is committed;
// with ?wait=true, once every shard has a leader. ?placement_wait=D bounds
// the wait for a live node in every region of the keyspace (default: the
// node's).
func (a *api) createKeyspace(w http.ResponseWriter, r *http.Request) error {
	pwait, err := a.placementWait(r)
	if err != nil {
		return err
	}
	wait := false
	if v := r.URL.Query().Get("wait"); v != "" {
		var err error
		if wait, err = strconv.ParseBool(v); err != nil {
			return errorf(CodeBadQuery, "wait %q: want true or false", v)
		}
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	spec, err := decodeKeyspaceSpec(http.MaxBytesReader(w, r.Body, a.cfg.MaxAdminBodyBytes))
	if err != nil {
		return err
	}
	ks, err := a.n.CreateKeyspaceWait(r.Context(), spec, pwait)
	if err != nil {
		return err
	}
	if wait {
		ctx, cancel := context.WithTimeout(r.Context(), a.limits.RequestTimeout)
		err := a.n.WaitKeyspaceReady(ctx, ks.Name)
		cancel()
		if err != nil {
			return err
		}
	}
	w.Header().Set("Location", "/v1/keyspaces/"+url.PathEscape(ks.Name))
	writeJSON(w, http.StatusCreated, a.keyspace(a.n.Metadata(), ks))
	return nil
}

// addNode admits a node (a JoinRequest) to the cluster and answers with
// a JoinResponse.
func (a *api) addNode(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	req, err := decodeJoinRequest(http.MaxBytesReader(w, r.Body, a.cfg.MaxAdminBodyBytes))
	if err != nil {
		return err
	}
	info := req.NodeInfo
	if p := principalOf(r); p.Kind == auth.NodePrincipal && p.Node != info.ID {
		return errorf(CodeForbidden, "node %d's certificate cannot ask to admit node %d", p.Node, info.ID)
	}
	if err := a.n.Admit(r.Context(), info, req.Timings); err != nil {
		return err
	}
	resp := JoinResponse{Node: info, Peers: []Peer{}, Cluster: a.n.ClusterName(), ClusterID: a.n.Cluster()}
	if t, ok := a.n.ClusterTimings(); ok {
		resp.Timings = &t
	} else {
		t := a.n.Timings()
		resp.Timings = &t
	}
	for _, p := range a.n.Peers() {
		resp.Peers = append(resp.Peers, Peer{ID: p.ID, Region: p.Region, Addr: p.Addr})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

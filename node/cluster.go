package node

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/transport"
)

// Cluster identity (docs/DESIGN.md 4).
//
// A cluster has a name (Config.Cluster, default "meridian") and an id
// fixed when it is formed, "<name>-<16 hex digits>". The id is what every
// node-to-node request and stream carries (package transport refuses those
// of another id), what stream batches and resync chunks carry (a
// destination refuses another cluster's), and what session tokens are
// bound to: two clusters never mix, even when both have the default name.
//
// The id is derived, not drawn: the hash of the name and of the initial
// members (id, region, address of each, in id order), which every initial
// member is given identically (--peers), so each computes the same id
// with no coordination, before any of them can talk to another. A node
// that joins later learns it from the member that admits it (the join
// answer), and every node records it in its storage at its first start
// and uses the recorded one ever after: a configured name that differs
// from the recorded one is refused (ErrClusterMismatch), and the peer list
// given on a restart no longer matters. A cluster formed again from
// scratch with the same name and the same initial members gets the same
// id as before; give it another name to tell the two apart.

// ErrClusterMismatch is returned by Start when the node's data belongs to
// another cluster than the one it is configured (or was admitted) for.
var ErrClusterMismatch = errors.New("node: the data directory belongs to another cluster")

// ErrBadClusterName is returned for a cluster name or id that is not
// well-formed.
var ErrBadClusterName = errors.New("node: bad cluster name")

// clusterRecord is the node-local record of the cluster's identity.
const clusterRecord = "cluster"

type clusterIdentity struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// maxClusterNameLen bounds a cluster name (the id adds 17 bytes).
const maxClusterNameLen = 64

// checkClusterName accepts 1 to 64 letters, digits, '.', '_' and '-'.
func checkClusterName(name string) error {
	if name == "" || len(name) > maxClusterNameLen {
		return fmt.Errorf("%w: %q must have 1 to %d characters", ErrBadClusterName, name, maxClusterNameLen)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: %q (letters, digits, '.', '_' and '-' only)", ErrBadClusterName, name)
		}
	}
	return nil
}

// checkClusterID checks that id is an id of the cluster named name.
func checkClusterID(name, id string) error {
	hexPart, ok := strings.CutPrefix(id, name+"-")
	if _, err := hex.DecodeString(hexPart); !ok || err != nil || len(hexPart) != 16 || strings.ToLower(hexPart) != hexPart {
		return fmt.Errorf("%w: %q is not an id of cluster %q (want %s-<16 hex digits>)", ErrBadClusterName, id, name, name)
	}
	return nil
}

// ClusterID returns the id of a cluster named name formed by the initial
// members peers: "<name>-" and 16 hex digits of a hash of the name and of
// the members' ids, regions and addresses, in id order (the order given
// does not matter).
func ClusterID(name string, peers []transport.Peer) string {
	sorted := slices.SortedFunc(slices.Values(peers), func(a, b transport.Peer) int { return cmp.Compare(a.ID, b.ID) })
	h := sha256.New()
	put := func(s string) {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	put("meridian cluster id v1")
	put(name)
	for _, p := range sorted {
		h.Write(binary.BigEndian.AppendUint64(nil, p.ID))
		put(p.Region)
		put(p.Addr)
	}
	return name + "-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// resolveCluster returns the cluster id of the node's data: the recorded
// one if any (checked against the configuration), else the one it joins
// (cfg.ClusterID) or forms (ClusterID of cfg.Peers), which it records.
func resolveCluster(db *storage.DB, cfg *Config) (string, error) {
	v, ok, err := db.GetLocal(clusterRecord)
	if err != nil {
		return "", fmt.Errorf("node: reading the cluster identity: %w", err)
	}
	if ok {
		var rec clusterIdentity
		if err := json.Unmarshal(v, &rec); err != nil {
			return "", fmt.Errorf("node: the recorded cluster identity: %w: %w", storage.ErrCorrupt, err)
		}
		switch {
		case rec.Name != cfg.Cluster:
			return "", fmt.Errorf("%w: it was formed as cluster %q (id %s), the node is configured for cluster %q",
				ErrClusterMismatch, rec.Name, rec.ID, cfg.Cluster)
		case cfg.ClusterID != "" && cfg.ClusterID != rec.ID:
			return "", fmt.Errorf("%w: it belongs to cluster id %s, the node was admitted to %s",
				ErrClusterMismatch, rec.ID, cfg.ClusterID)
		}
		return rec.ID, nil
	}
	id := cfg.ClusterID
	if id == "" {
		if cfg.Join {
			return "", fmt.Errorf("%w: a joining node needs the cluster's id (ClusterID, from the join answer)", ErrBadClusterName)
		}
		id = ClusterID(cfg.Cluster, cfg.Peers)
	}
	rec, err := json.Marshal(clusterIdentity{Name: cfg.Cluster, ID: id})
	if err != nil {
		return "", err
	}
	if err := db.SetLocal(clusterRecord, rec); err != nil {
		return "", fmt.Errorf("node: recording the cluster identity: %w", err)
	}
	return id, nil
}

// Cluster returns the cluster's id (session tokens, streams and every
// node-to-node request carry it).
func (n *Node) Cluster() string { return n.cluster }

// ClusterName returns the cluster's name.
func (n *Node) ClusterName() string { return n.cfg.Cluster }

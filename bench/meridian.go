package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// MeridianNode is one node of a Meridian cluster as its HTTP API's
// /v1/cluster shows it.
type MeridianNode struct {
	ID       uint64 `json:"id"`
	Region   string `json:"region"`
	RESPAddr string `json:"resp_addr"`
	HTTPAddr string `json:"http_addr"`
}

// MeridianShard is one shard of a keyspace: its voters (node ids) and its
// leader, as known to the node that answered.
type MeridianShard struct {
	Index        int      `json:"index"`
	Replicas     []uint64 `json:"replicas"`
	Leader       uint64   `json:"leader"`
	LeaderRegion string   `json:"leader_region"`
}

// MeridianKeyspace is one keyspace of a Meridian cluster.
type MeridianKeyspace struct {
	Name       string   `json:"name"`
	Strategy   string   `json:"strategy"`
	Regions    []string `json:"regions"`
	HomeRegion string   `json:"home_region"`
	// Consistency is the keyspace's default read level ("" for the
	// strategy's: strong, or session for active keyspaces).
	Consistency string          `json:"consistency,omitempty"`
	Shards      []MeridianShard `json:"shards"`
}

// DefaultReadLevel returns the level of a read that does not name one.
func (ks *MeridianKeyspace) DefaultReadLevel() string {
	switch {
	case ks.Consistency != "":
		return ks.Consistency
	case ks.Strategy == "active":
		return "session"
	}
	return "strong"
}

// MeridianCluster is what DiscoverMeridian learns of a cluster: enough to
// pick the node to benchmark and to compute the floors.
type MeridianCluster struct {
	Regions   []string           `json:"regions"`
	Nodes     []MeridianNode     `json:"nodes"`
	Keyspaces []MeridianKeyspace `json:"keyspaces"`
}

// DiscoverMeridian asks the node whose HTTP API listens at httpAddr
// (host:port) for the cluster status (GET /v1/cluster). A node knows the
// leader of the shards it holds a replica of only, so for shards whose
// leader it does not know the other nodes are asked too.
func DiscoverMeridian(ctx context.Context, httpAddr string) (*MeridianCluster, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	c, err := fetchCluster(ctx, hc, httpAddr)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(c.Nodes, func(a, b MeridianNode) int { return cmpUint(a.ID, b.ID) })
	for _, n := range c.Nodes {
		if !c.leadersMissing() {
			break
		}
		if n.HTTPAddr == "" || n.HTTPAddr == httpAddr {
			continue
		}
		other, err := fetchCluster(ctx, hc, n.HTTPAddr)
		if err != nil {
			continue // best effort: the leader then defaults to the home region
		}
		for ki := range c.Keyspaces {
			ks := &c.Keyspaces[ki]
			oks := other.Keyspace(ks.Name)
			if oks == nil {
				continue
			}
			for si := range ks.Shards {
				sh := &ks.Shards[si]
				if sh.Leader != 0 {
					continue
				}
				for _, osh := range oks.Shards {
					if osh.Index == sh.Index && osh.Leader != 0 {
						sh.Leader, sh.LeaderRegion = osh.Leader, osh.LeaderRegion
					}
				}
			}
		}
	}
	return c, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func fetchCluster(ctx context.Context, hc *http.Client, addr string) (*MeridianCluster, error) {
	url := "http://" + strings.TrimPrefix(addr, "http://") + "/v1/cluster"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: Meridian HTTP API at %s is unreachable: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("bench: reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var c MeridianCluster
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("bench: GET %s: not a Meridian cluster status: %w", url, err)
	}
	if len(c.Nodes) == 0 {
		return nil, fmt.Errorf("bench: GET %s: the cluster status lists no nodes", url)
	}
	return &c, nil
}

func (c *MeridianCluster) leadersMissing() bool {
	for _, ks := range c.Keyspaces {
		for _, sh := range ks.Shards {
			if sh.Leader == 0 {
				return true
			}
		}
	}
	return false
}

// Keyspace returns the named keyspace, or nil.
func (c *MeridianCluster) Keyspace(name string) *MeridianKeyspace {
	for i := range c.Keyspaces {
		if c.Keyspaces[i].Name == name {
			return &c.Keyspaces[i]
		}
	}
	return nil
}

// KeyspaceNames returns the names of the keyspaces, sorted.
func (c *MeridianCluster) KeyspaceNames() []string {
	var out []string
	for _, ks := range c.Keyspaces {
		out = append(out, ks.Name)
	}
	slices.Sort(out)
	return out
}

// FindKeyspace is Keyspace with an error naming the keyspaces that exist.
func (c *MeridianCluster) FindKeyspace(name string) (*MeridianKeyspace, error) {
	if ks := c.Keyspace(name); ks != nil {
		return ks, nil
	}
	names := c.KeyspaceNames()
	if len(names) == 0 {
		return nil, fmt.Errorf("bench: keyspace %q does not exist (the cluster has none)", name)
	}
	return nil, fmt.Errorf("bench: keyspace %q does not exist (the cluster has %s)", name, strings.Join(names, ", "))
}

// NodeIn returns the node with the smallest id in region that serves RESP.
func (c *MeridianCluster) NodeIn(region string) (MeridianNode, bool) {
	for _, n := range c.Nodes {
		if n.Region == region && n.RESPAddr != "" {
			return n, true
		}
	}
	return MeridianNode{}, false
}

// RegionOf returns the region of a node id, or "".
func (c *MeridianCluster) RegionOf(id uint64) string {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n.Region
		}
	}
	return ""
}

// NodeRegions returns the regions that have nodes, in the order of their
// first node's id.
func (c *MeridianCluster) NodeRegions() []string {
	var out []string
	for _, n := range c.Nodes {
		if !slices.Contains(out, n.Region) {
			out = append(out, n.Region)
		}
	}
	return out
}

// FloorReport explains the floors of a run against a Meridian keyspace:
// where the client, the leader and the voters are, the round trips that
// bound a write, and the measured fsync time f. Durations are in
// milliseconds.
type FloorReport struct {
	// Latency is the emulated network ("world", "none" or a matrix file).
	Latency      string   `json:"latency"`
	Keyspace     string   `json:"keyspace"`
	Strategy     string   `json:"strategy"`
	ClientRegion string   `json:"client_region"`
	LeaderRegion string   `json:"leader_region"`
	VoterRegions []string `json:"voter_regions"`
	// QuorumRTTMS is the round trip from the leader to the nearest
	// majority of the voters (SyncWriteFloor).
	QuorumRTTMS float64 `json:"quorum_rtt_ms"`
	// ForwardRTTMS is the round trip from the client's region to the
	// leader's (0 in the leader's region).
	ForwardRTTMS float64 `json:"forward_rtt_ms"`
	// FsyncMS is the measured median time of a small write and its fsync
	// in the cluster's data directory (MeasureFsync); 0 if not measured.
	FsyncMS float64 `json:"fsync_ms"`
	// WriteMS = ForwardRTTMS + QuorumRTTMS + FsyncMS: the floor of a write.
	WriteMS float64 `json:"write_ms"`
	// ReadConsistency is the level of the reads ("strong" by default).
	ReadConsistency string `json:"read_consistency"`
	// ReadMS is the floor of a read: the round trip to the leader for a
	// strong read from another region, else 0 (served locally), which has
	// no meaningful ratio and is not set on the read operation.
	ReadMS float64 `json:"read_ms"`
	// SameFloorShards is how many of the keyspace's shards have this
	// floor; the others (placed differently) have a larger one.
	SameFloorShards int `json:"same_floor_shards"`
	Shards          int `json:"shards"`
}

// WriteFloor returns the write floor as a duration.
func (f *FloorReport) WriteFloor() time.Duration { return msDuration(f.WriteMS) }

// ReadFloor returns the read floor as a duration (0: local).
func (f *FloorReport) ReadFloor() time.Duration { return msDuration(f.ReadMS) }

func msDuration(ms float64) time.Duration { return time.Duration(ms * 1e6) }

func durMS(d time.Duration) float64 { return round(float64(d)/1e6, 4) }

// IsStrongRead reports whether a consistency level (as MERIDIAN.CONSISTENCY
// takes it; "" is the connection's default, strong) is linearizable.
func IsStrongRead(level string) bool {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "", "strong", "linearizable":
		return true
	}
	return false
}

// MeridianFloors computes the floors of operations on keyspace ks issued by
// a client in clientRegion: for every shard, the round trip from the client
// to the shard's leader plus the leader's quorum round trip
// (SyncWriteFloor over the regions of the shard's voters) plus fsync; the
// smallest over the shards is the floor (with the leaders in the home
// region, as Meridian keeps them, every shard has the same one). A shard
// whose leader is unknown is assumed led from the home region. An active
// keyspace commits writes in the client's region: its floor is fsync alone.
// readLevel "" means the keyspace's default.
func MeridianFloors(c *MeridianCluster, ks *MeridianKeyspace, rtt RTTFunc, clientRegion string, fsync time.Duration, readLevel string) (*FloorReport, error) {
	if ks == nil || len(ks.Shards) == 0 {
		return nil, errors.New("bench: no shards to compute floors for")
	}
	if readLevel == "" {
		readLevel = ks.DefaultReadLevel()
	}
	if ks.Strategy == "active" {
		return &FloorReport{
			Keyspace: ks.Name, Strategy: ks.Strategy, ClientRegion: clientRegion, LeaderRegion: clientRegion,
			VoterRegions: []string{clientRegion}, FsyncMS: durMS(fsync), WriteMS: durMS(fsync),
			ReadConsistency: readLevel, SameFloorShards: len(ks.Shards), Shards: len(ks.Shards),
		}, nil
	}
	type shardFloor struct {
		leader         string
		voters         []string
		quorum, fwd, w time.Duration
	}
	var best *shardFloor
	same := 0
	for _, sh := range ks.Shards {
		leader := sh.LeaderRegion
		if leader == "" && sh.Leader != 0 {
			leader = c.RegionOf(sh.Leader)
		}
		if leader == "" {
			leader = ks.HomeRegion
		}
		var voters []string
		for _, id := range sh.Replicas {
			if r := c.RegionOf(id); r != "" {
				voters = append(voters, r)
			}
		}
		if len(voters) == 0 {
			return nil, fmt.Errorf("bench: shard %d of %s: no known voters", sh.Index, ks.Name)
		}
		q, err := SyncWriteFloor(rtt, leader, voters)
		if err != nil {
			return nil, fmt.Errorf("bench: shard %d of %s: %w", sh.Index, ks.Name, err)
		}
		fwd, ok := rtt(clientRegion, leader)
		if !ok {
			return nil, fmt.Errorf("bench: no round-trip time between %s and %s", clientRegion, leader)
		}
		sf := &shardFloor{leader: leader, voters: voters, quorum: q, fwd: fwd, w: fwd + q}
		switch {
		case best == nil || sf.w < best.w:
			best, same = sf, 1
		case sf.w == best.w:
			same++
		}
	}
	voters := slices.Clone(best.voters)
	slices.Sort(voters)
	f := &FloorReport{
		Keyspace: ks.Name, Strategy: ks.Strategy, ClientRegion: clientRegion,
		LeaderRegion: best.leader, VoterRegions: slices.Compact(voters),
		QuorumRTTMS: durMS(best.quorum), ForwardRTTMS: durMS(best.fwd), FsyncMS: durMS(fsync),
		WriteMS:         durMS(best.w + fsync),
		ReadConsistency: readLevel,
		SameFloorShards: same, Shards: len(ks.Shards),
	}
	if IsStrongRead(readLevel) {
		f.ReadMS = durMS(best.fwd)
	}
	return f, nil
}

// Apply sets the floors of r's operations: writes (update, insert, the
// load phase) get WriteMS, reads ReadMS when it is not 0, read-modify-writes
// both; the total, mixing kinds, gets none.
func (f *FloorReport) Apply(r *Report) {
	r.Floors = f
	w, rd := f.WriteFloor(), f.ReadFloor()
	r.SetFloor("load", w)
	r.SetFloor(OpUpdate.String(), w)
	r.SetFloor(OpInsert.String(), w)
	r.SetFloor(OpRMW.String(), w+rd)
	r.SetFloor(OpRead.String(), rd) // 0 clears: a local read has no ratio
}

func (f *FloorReport) write(b *strings.Builder) {
	fmt.Fprintf(b, "floors:    keyspace %s (%s), latency %s; client in %s, leader in %s, voters in %s\n",
		f.Keyspace, f.Strategy, f.Latency, f.ClientRegion, f.LeaderRegion, strings.Join(f.VoterRegions, ", "))
	fmt.Fprintf(b, "           write = forwarding %s + quorum round trip %s + fsync %s = %s ms",
		fmtMS(f.ForwardRTTMS), fmtMS(f.QuorumRTTMS), fmtMS(f.FsyncMS), fmtMS(f.WriteMS))
	if f.Shards > 0 && f.SameFloorShards < f.Shards {
		fmt.Fprintf(b, " (%d of %d shards; the others more)", f.SameFloorShards, f.Shards)
	}
	b.WriteString("\n")
	if f.ReadMS > 0 {
		fmt.Fprintf(b, "           read (%s) = round trip to the leader %s ms\n", f.ReadConsistency, fmtMS(f.ReadMS))
	} else {
		fmt.Fprintf(b, "           read (%s) = 0: served in the client's region (no ratio)\n", f.ReadConsistency)
	}
}

package metrics

import (
	"maps"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
)

// systemKeyspace is the keyspace label of the metadata group. Keyspace
// names start with a letter or digit, so it cannot clash with one.
const systemKeyspace = "_system"

// nodeCollector reads a node's state at scrape time. Nothing on the
// request or raft paths does any work for it beyond atomic counter adds.
type nodeCollector struct {
	n *node.Node

	info *prometheus.Desc

	// Host counters (raftgroup.Stats), in the order of hostCounters.
	counters []*prometheus.Desc
	// The row cache's series, in the order of rowCacheSeries.
	rowCache []*prometheus.Desc

	groups, leaders, quiesced                       *prometheus.Desc
	term, commit, applied, isLeader, applyLag, rLag *prometheus.Desc
	groupQuiesced                                   *prometheus.Desc
	peerRTT, peerReachable, bytesSent               *prometheus.Desc
	streamLagEntries, streamLagSeconds              *prometheus.Desc
	streamStalled, streamStalledSeconds             *prometheus.Desc
	archiveLag, archiveBytes, archiveGaps           *prometheus.Desc
	conflicts                                       *prometheus.Desc
	notJoined, unreachable                          *prometheus.Desc
	underReplicated, replicasDown, regionsDown      *prometheus.Desc
}

// hostCounters lists the counters read from raftgroup.Stats.
var hostCounters = []struct {
	name, help string
	value      func(raftgroup.Stats) uint64
}{
	{"meridian_raft_proposals_total", "Proposals raft accepted on this node as a group leader (commands and membership changes).",
		func(s raftgroup.Stats) uint64 { return s.Proposals }},
	{"meridian_raft_proposals_dropped_total", "Proposals raft refused at once on this node (safe to retry).",
		func(s raftgroup.Stats) uint64 { return s.ProposalsDropped }},
	{"meridian_raft_read_index_total", "Read-index requests (strong reads) handed to raft on this node.",
		func(s raftgroup.Stats) uint64 { return s.ReadIndexRequests }},
	{"meridian_raft_ready_rounds_total", "Rounds of the raft loop that processed at least one group's Ready.",
		func(s raftgroup.Stats) uint64 { return s.ReadyRounds }},
	{"meridian_raft_ready_groups_total", "Group Readies processed; divided by ready rounds, the groups sharing one batch.",
		func(s raftgroup.Stats) uint64 { return s.ReadyGroups }},
	{"meridian_raft_entries_appended_total", "Log entries persisted to this node's raft logs.",
		func(s raftgroup.Stats) uint64 { return s.EntriesAppended }},
	{"meridian_raft_entries_applied_total", "Committed log entries applied to the state machines on this node.",
		func(s raftgroup.Stats) uint64 { return s.EntriesApplied }},
	{"meridian_raft_snapshots_applied_total", "Snapshots installed on this node.",
		func(s raftgroup.Stats) uint64 { return s.SnapshotsApplied }},
	{"meridian_raft_batches_committed_total", "Storage batches committed by the raft loop (one per round with changes).",
		func(s raftgroup.Stats) uint64 { return s.BatchesCommitted }},
	{"meridian_raft_fsyncs_total", "Batches the raft host committed with sync (fsync).",
		func(s raftgroup.Stats) uint64 { return s.Fsyncs }},
	{"meridian_raft_messages_sent_total", "Raft messages handed to the transport.",
		func(s raftgroup.Stats) uint64 { return s.MessagesSent }},
}

// rowCacheSeries lists the series read from storage.RowCacheStats.
var rowCacheSeries = []struct {
	name, help string
	kind       prometheus.ValueType
	value      func(storage.RowCacheStats) float64
}{
	{"meridian_storage_row_cache_hits_total", "Point reads of user keys the storage's row cache answered (storage/rowcache.go).",
		prometheus.CounterValue, func(s storage.RowCacheStats) float64 { return float64(s.Hits) }},
	{"meridian_storage_row_cache_misses_total", "Point reads of user keys that went to the storage engine past the row cache.",
		prometheus.CounterValue, func(s storage.RowCacheStats) float64 { return float64(s.Misses) }},
	{"meridian_storage_row_cache_bytes", "What the row cache holds: keys, values and per-entry overhead, in bytes.",
		prometheus.GaugeValue, func(s storage.RowCacheStats) float64 { return float64(s.Bytes) }},
	{"meridian_storage_row_cache_capacity_bytes", "What the row cache may hold, in bytes (storage.row_cache_bytes; 0: no row cache).",
		prometheus.GaugeValue, func(s storage.RowCacheStats) float64 { return float64(s.Capacity) }},
}

func newNodeCollector(n *node.Node) *nodeCollector {
	g := []string{"group", "keyspace", "shard"}
	p := []string{"peer", "peer_region"}
	c := &nodeCollector{
		n:    n,
		info: prometheus.NewDesc("meridian_node_info", "Always 1; the labels name this node and its region.", []string{"node", "region"}, nil),
		groups: prometheus.NewDesc("meridian_raft_groups",
			"Raft groups hosted on this node (the metadata group included).", nil, nil),
		quiesced: prometheus.NewDesc("meridian_raft_groups_quiesced",
			"Raft groups on this node that are quiesced: idle, neither ticking nor heartbeating until used again.", nil, nil),
		leaders: prometheus.NewDesc("meridian_raft_leaders",
			"Raft groups this node leads.", nil, nil),
		term: prometheus.NewDesc("meridian_raft_group_term",
			"Current raft term of the group on this replica.", g, nil),
		commit: prometheus.NewDesc("meridian_raft_group_commit_index",
			"Highest log index this replica knows to be committed.", g, nil),
		applied: prometheus.NewDesc("meridian_raft_group_applied_index",
			"Highest log index applied on this replica.", g, nil),
		isLeader: prometheus.NewDesc("meridian_raft_group_is_leader",
			"1 if this replica leads the group, else 0.", g, nil),
		groupQuiesced: prometheus.NewDesc("meridian_raft_group_quiesced",
			"1 while this replica of the group is quiesced (idle: neither ticking nor heartbeating), else 0.", g, nil),
		applyLag: prometheus.NewDesc("meridian_raft_group_apply_lag_entries",
			"Committed entries not yet applied on this replica (commit - applied).", g, nil),
		rLag: prometheus.NewDesc("meridian_raft_group_replication_lag_entries",
			"On the leader only: entries the furthest-behind other replica lacks (max of last index - match).", g, nil),
		peerRTT: prometheus.NewDesc("meridian_peer_rtt_seconds",
			"Smoothed round-trip time to a peer node, as measured by this node's transport.", p, nil),
		peerReachable: prometheus.NewDesc("meridian_peer_reachable",
			"1 if a recent ping to the peer succeeded, else 0.", p, nil),
		bytesSent: prometheus.NewDesc("meridian_transport_bytes_sent_total",
			"Bytes this node's transport sent to a peer node: encoded raft batch frames, snapshot chunks, call requests and responses.", p, nil),
		streamLagEntries: prometheus.NewDesc("meridian_stream_lag_entries",
			"Entries an async stream this node sends has not had acknowledged yet.", streamLabels, nil),
		streamLagSeconds: prometheus.NewDesc("meridian_stream_lag_seconds",
			"Age of the oldest change an async stream this node sends has not had acknowledged (0 when caught up).", streamLabels, nil),
		streamStalled: prometheus.NewDesc("meridian_stream_stalled",
			"1 while a stream this node sends has made no progress for longer than its stall threshold (the reason is in the cluster status), else 0.", streamLabels, nil),
		archiveLag: prometheus.NewDesc("meridian_backup_archive_lag_seconds",
			"How long ago the newest entry of a group's archived log was stamped (the RPO of a restore; node/archive.go), for the groups this node leads.", archiveLabels, nil),
		archiveBytes: prometheus.NewDesc("meridian_backup_archived_bytes_total",
			"Bytes of a group's log this node has archived while leading it.", archiveLabels, nil),
		archiveGaps: prometheus.NewDesc("meridian_backup_archive_gaps_total",
			"Holes in a group's archive this node found (its log no longer held what followed the archive).", archiveLabels, nil),
		streamStalledSeconds: prometheus.NewDesc("meridian_stream_stalled_seconds",
			"How long a stalled stream this node sends has made no progress (0 when it is not stalled).", streamLabels, nil),
		conflicts: prometheus.NewDesc("meridian_conflicts_recorded_total",
			"Conflicts of an active keyspace recorded by this node's region (its replicas of the region's groups).", []string{"keyspace", "region"}, nil),
	}
	c.notJoined = prometheus.NewDesc("meridian_cluster_nodes_not_joined",
		"Members recorded in the metadata (initial members included) that have never registered themselves: not started yet, or gone.", nil, nil)
	c.unreachable = prometheus.NewDesc("meridian_cluster_nodes_unreachable",
		"Joined members this node does not reach (no recent ping answered).", nil, nil)
	ks := []string{"keyspace"}
	c.underReplicated = prometheus.NewDesc("meridian_keyspace_under_replicated",
		"1 while a replica placed for the keyspace is not live (as this node sees it), else 0.", ks, nil)
	c.replicasDown = prometheus.NewDesc("meridian_keyspace_replicas_down",
		"Replicas placed for the keyspace (over all its groups) whose node is not live.", ks, nil)
	c.regionsDown = prometheus.NewDesc("meridian_keyspace_regions_without_live_replica",
		"Regions of the keyspace where none of its replicas is live.", ks, nil)
	for _, hc := range hostCounters {
		c.counters = append(c.counters, prometheus.NewDesc(hc.name, hc.help, nil, nil))
	}
	for _, rs := range rowCacheSeries {
		c.rowCache = append(c.rowCache, prometheus.NewDesc(rs.name, rs.help, nil, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range slices.Concat(c.counters, c.rowCache) {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{c.info, c.groups, c.leaders, c.quiesced, c.term, c.commit, c.applied,
		c.isLeader, c.groupQuiesced, c.applyLag, c.rLag, c.peerRTT, c.peerReachable, c.bytesSent, c.streamLagEntries, c.streamLagSeconds,
		c.streamStalled, c.streamStalledSeconds, c.conflicts, c.archiveLag, c.archiveBytes, c.archiveGaps,
		c.notJoined, c.unreachable, c.underReplicated, c.replicasDown, c.regionsDown} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, strconv.FormatUint(n.ID(), 10), n.Region())
	host := n.Host()
	stats := host.Stats()
	for i, hc := range hostCounters {
		ch <- prometheus.MustNewConstMetric(c.counters[i], prometheus.CounterValue, float64(hc.value(stats)))
	}
	rows := n.Storage().RowCacheStats()
	for i, rs := range rowCacheSeries {
		ch <- prometheus.MustNewConstMetric(c.rowCache[i], rs.kind, rs.value(rows))
	}

	st := n.Metadata()
	type place struct {
		keyspace string
		shard    int
	}
	where := map[uint64]place{metadata.SystemGroup: {keyspace: systemKeyspace}}
	for _, ks := range st.Keyspaces {
		for _, sh := range ks.Shards {
			where[sh.Group] = place{keyspace: ks.Name, shard: sh.Index}
			for _, rg := range sh.Regional { // async: every region's group
				where[rg.Group] = place{keyspace: ks.Name, shard: sh.Index}
			}
		}
	}
	ids := host.Groups()
	slices.Sort(ids)
	hosted, led := 0, 0
	for _, id := range ids {
		gs, ok := host.Status(id)
		if !ok {
			continue // removed since Groups was read
		}
		hosted++
		p := where[id]
		lv := []string{strconv.FormatUint(id, 10), p.keyspace, strconv.Itoa(p.shard)}
		gauge := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), lv...)
		}
		leader := gs.RaftState == raft.StateLeader
		gauge(c.term, gs.Term)
		gauge(c.commit, gs.Commit)
		gauge(c.applied, gs.Applied)
		gauge(c.applyLag, ApplyLag(gs))
		q := uint64(0)
		if host.IsQuiesced(id) {
			q = 1
		}
		gauge(c.groupQuiesced, q)
		if leader {
			led++
			gauge(c.isLeader, 1)
			gauge(c.rLag, ReplicationLag(gs))
		} else {
			gauge(c.isLeader, 0)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.groups, prometheus.GaugeValue, float64(hosted))
	ch <- prometheus.MustNewConstMetric(c.leaders, prometheus.GaugeValue, float64(led))
	ch <- prometheus.MustNewConstMetric(c.quiesced, prometheus.GaugeValue, float64(host.Quiesced()))

	tr := n.Transport()
	rtts := tr.RTTs()
	peers := make([]uint64, 0, len(st.Nodes))
	for id := range st.Nodes {
		if id != n.ID() {
			peers = append(peers, id)
		}
	}
	slices.Sort(peers)
	for _, id := range peers {
		lv := []string{strconv.FormatUint(id, 10), st.Nodes[id].Region}
		if d, ok := rtts[id]; ok {
			ch <- prometheus.MustNewConstMetric(c.peerRTT, prometheus.GaugeValue, d.Seconds(), lv...)
		}
		up := 0.0
		if tr.Healthy(id) {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.peerReachable, prometheus.GaugeValue, up, lv...)
	}
	// Bytes sent: every peer the transport ever had, a removed one too, so
	// that the counters never go back. Its region comes from the metadata,
	// else from the transport's record of the peer.
	sent := tr.BytesSent()
	trRegion := map[uint64]string{}
	for _, p := range tr.Peers() {
		trRegion[p.ID] = p.Region
	}
	for _, id := range slices.Sorted(maps.Keys(sent)) {
		region := trRegion[id]
		if ni, ok := st.Nodes[id]; ok {
			region = ni.Region
		}
		ch <- prometheus.MustNewConstMetric(c.bytesSent, prometheus.CounterValue, float64(sent[id]),
			strconv.FormatUint(id, 10), region)
	}
	for _, s := range n.Streams() {
		lv := []string{s.Keyspace, strconv.Itoa(s.Shard), s.FromRegion, s.ToRegion}
		ch <- prometheus.MustNewConstMetric(c.streamLagEntries, prometheus.GaugeValue, float64(s.LagEntries), lv...)
		ch <- prometheus.MustNewConstMetric(c.streamLagSeconds, prometheus.GaugeValue, float64(s.LagMS)/1000, lv...)
		stalled := 0.0
		if s.Stalled {
			stalled = 1
		}
		ch <- prometheus.MustNewConstMetric(c.streamStalled, prometheus.GaugeValue, stalled, lv...)
		ch <- prometheus.MustNewConstMetric(c.streamStalledSeconds, prometheus.GaugeValue, float64(s.StalledForMS)/1000, lv...)
	}
	for _, a := range n.Archives() {
		lv := []string{a.Keyspace, strconv.Itoa(a.Shard), a.Region, strconv.FormatUint(a.Group, 10)}
		if !a.LastStamp.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.archiveLag, prometheus.GaugeValue, float64(a.LagMS)/1000, lv...)
		}
		ch <- prometheus.MustNewConstMetric(c.archiveBytes, prometheus.CounterValue, float64(a.Bytes), lv...)
		ch <- prometheus.MustNewConstMetric(c.archiveGaps, prometheus.CounterValue, float64(a.Gaps), lv...)
	}
	m := n.Membership()
	ch <- prometheus.MustNewConstMetric(c.notJoined, prometheus.GaugeValue, float64(len(m.NotJoined)))
	ch <- prometheus.MustNewConstMetric(c.unreachable, prometheus.GaugeValue, float64(len(m.Unreachable)))
	for _, h := range m.Keyspaces {
		under := 0.0
		if h.UnderReplicated {
			under = 1
		}
		ch <- prometheus.MustNewConstMetric(c.underReplicated, prometheus.GaugeValue, under, h.Keyspace)
		ch <- prometheus.MustNewConstMetric(c.replicasDown, prometheus.GaugeValue, float64(h.ReplicasDown), h.Keyspace)
		ch <- prometheus.MustNewConstMetric(c.regionsDown, prometheus.GaugeValue, float64(len(h.RegionsDown)), h.Keyspace)
	}
	names := make([]string, 0, len(st.Keyspaces))
	for name, ks := range st.Keyspaces {
		if ks.Strategy == metadata.Active {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if page, err := n.Conflicts(name, node.ConflictQuery{Limit: 1, After: map[uint64]uint64{}}); err == nil {
			ch <- prometheus.MustNewConstMetric(c.conflicts, prometheus.CounterValue, float64(page.Recorded), name, n.Region())
		}
	}
}

// archiveLabels label a group's archive metrics.
var archiveLabels = []string{"keyspace", "shard", "region", "group"}

// streamLabels label a stream's metrics.
var streamLabels = []string{"keyspace", "shard", "from_region", "to_region"}

// ApplyLag is how many committed entries a replica has yet to apply.
func ApplyLag(s raftgroup.Status) uint64 {
	if s.Commit > s.Applied {
		return s.Commit - s.Applied
	}
	return 0
}

// ReplicationLag is, on a group's leader, how many entries of its log the
// furthest-behind other replica (voter or learner) lacks; 0 elsewhere.
func ReplicationLag(s raftgroup.Status) uint64 {
	var lag uint64
	for id, match := range s.Match {
		if id != s.ID && s.LastIndex > match {
			lag = max(lag, s.LastIndex-match)
		}
	}
	return lag
}

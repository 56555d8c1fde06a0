package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/meridian-db/meridian/backup"
	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
)

// Continuous log archiving and scheduled backups (docs/DESIGN.md 8).
//
// With a backup schedule in the metadata (metadata.BackupSchedule, set by
// `meridian backup schedule`), the leader of every group of the keyspaces
// it covers ships the group's committed log to the schedule's target,
// every Config.BackupArchiveInterval, as segments (package backup). The
// log is kept until archived (Host.RetainFor, holder "archive"), so a
// region that leads a group and falls behind the target keeps its backlog
// rather than losing it. A group without writes is sealed every
// Config.BackupSealInterval (a mark, raftgroup.Host.Mark), so that the
// archive proves its state up to a recent time: the restorable window
// ends at most a seal interval plus an archive interval before now, which
// is the RPO, reported per group as meridian_backup_archive_lag_seconds.
//
// Leadership moves: the new leader lists what the target holds and goes
// on from there; segments of two writers may overlap (they agree where
// they do). A leader whose log no longer holds what follows the archive
// (it was compacted before the archive caught up, say after a long
// outage of the target) leaves a hole: archiving resumes from the log it
// has, the hole is reported (a warning, the gaps counter) and the
// restorable window skips it until the next full backup.
//
// The metadata group's leader also takes the schedule's backups (full and
// incremental at their intervals) and applies its retention afterwards.
// Credentials come from this node's environment (backup.Options.WithEnv)
// and the key from Config.BackupKey: nodes that archive need them.

const archiveHolder = "archive"

// ArchiveStatus is one group's archive, as this node (its leader) ships it.
type ArchiveStatus struct {
	Keyspace string `json:"keyspace"`
	Shard    int    `json:"shard"`
	Region   string `json:"region,omitempty"`
	Group    uint64 `json:"group"`
	// Archived is the last index shipped; Applied the group's applied
	// index here.
	Archived uint64 `json:"archived"`
	Applied  uint64 `json:"applied"`
	// LastStamp is the stamp of the newest entry shipped; LagMS how long
	// ago that was (the RPO: what a restore could not bring back).
	LastStamp hlc.Timestamp `json:"last_stamp"`
	LagMS     int64         `json:"lag_ms"`
	Bytes     int64         `json:"bytes"`
	Segments  int64         `json:"segments"`
	Gaps      int64         `json:"gaps"`
	Err       string        `json:"error,omitempty"`
}

type archiveGroup struct {
	ArchiveStatus
	listed   bool
	lastMark time.Time
}

// archives is the archiver's state on this node.
type archives struct {
	mu     sync.Mutex
	groups map[uint64]*archiveGroup
	target string
	store  *backup.Store
	writer string
	// scheduled backups (metadata leader only)
	running  bool
	lastFull time.Time
	lastAny  time.Time
	known    bool // lastFull/lastAny read from the target
}

// Archives lists the archives this node ships (groups it leads).
func (n *Node) Archives() []ArchiveStatus {
	a := &n.archive
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	out := make([]ArchiveStatus, 0, len(a.groups))
	for _, g := range a.groups {
		s := g.ArchiveStatus
		if !s.LastStamp.IsZero() {
			s.LagMS = max(0, now.UnixMilli()-s.LastStamp.WallMS)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// archiveLoop runs the archiver and the scheduled backups.
func (n *Node) archiveLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.BackupArchiveInterval)
	defer t.Stop()
	// Stopping the node cancels what the archiver waits for (a mark in a
	// group that lost its quorum, a slow target) rather than waiting out
	// its timeouts.
	ctx, cancel := n.untilStop()
	defer cancel()
	for {
		select {
		case <-n.stop:
			n.stopArchiving()
			return
		case <-t.C:
		}
		sched := n.meta.State().Backup
		if sched == nil {
			n.stopArchiving()
			continue
		}
		store, err := n.archiveStore(ctx, sched.Target)
		if err != nil {
			n.log.Warn("backup schedule: cannot open the target", "target", backup.Redact(sched.Target), "err", err)
			continue
		}
		if sched.Archive {
			n.archiveRound(ctx, store, sched)
		} else {
			n.stopArchiving()
		}
		n.scheduleRound(ctx, store, sched)
	}
}

// archiveStore opens the schedule's target (once per target).
func (n *Node) archiveStore(ctx context.Context, target string) (*backup.Store, error) {
	a := &n.archive
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.store != nil && a.target == target {
		return a.store, nil
	}
	o := backup.Options{Key: n.cfg.BackupKey}.WithEnv()
	store, err := backup.OpenStore(target, o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := backup.EnsureBucket(ctx, store.T); err != nil {
		return nil, err
	}
	if err := store.Init(ctx, n.cluster); err != nil {
		return nil, err
	}
	a.store, a.target, a.writer = store, target, backup.NewWriterTag()
	for id := range a.groups {
		_ = n.host.RetainFor(id, archiveHolder, 0)
	}
	a.groups = map[uint64]*archiveGroup{}
	return store, nil
}

// stopArchiving forgets every archive and releases the logs held for them.
func (n *Node) stopArchiving() {
	a := &n.archive
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range a.groups {
		_ = n.host.RetainFor(id, archiveHolder, 0)
	}
	a.groups = nil
}

// archiveRound ships the new entries of every group this node leads.
func (n *Node) archiveRound(ctx context.Context, store *backup.Store, sched *metadata.BackupSchedule) {
	st := n.meta.State()
	led := map[uint64]ArchiveStatus{}
	for _, ks := range st.Keyspaces {
		if ks.Restore != nil || !sched.Covers(ks.Name) {
			continue
		}
		for _, sh := range ks.Shards {
			groups := []metadata.RegionalGroup{{Group: sh.Group}}
			if len(sh.Regional) > 0 {
				groups = sh.Regional
			}
			for _, rg := range groups {
				if s, ok := n.host.Status(rg.Group); ok && s.Lead == n.cfg.ID {
					led[rg.Group] = ArchiveStatus{Keyspace: ks.Name, Shard: sh.Index, Region: rg.Region, Group: rg.Group}
				}
			}
		}
	}
	a := &n.archive
	a.mu.Lock()
	if a.groups == nil {
		a.groups = map[uint64]*archiveGroup{}
	}
	for id := range a.groups {
		if _, ok := led[id]; !ok {
			_ = n.host.RetainFor(id, archiveHolder, 0)
			delete(a.groups, id)
		}
	}
	var work []*archiveGroup
	for id, s := range led {
		g := a.groups[id]
		if g == nil {
			g = &archiveGroup{ArchiveStatus: s}
			a.groups[id] = g
		}
		work = append(work, g)
	}
	writer := a.writer
	a.mu.Unlock()
	for _, g := range work {
		select {
		case <-n.stop:
			return
		default:
		}
		gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := n.archiveOne(gctx, store, g, writer)
		cancel()
		a.mu.Lock()
		g.Err = ""
		if err != nil {
			g.Err = err.Error()
		}
		a.mu.Unlock()
		if err != nil {
			n.log.Warn("archiving a group's log failed", "keyspace", g.Keyspace, "shard", g.Shard, "group", g.Group, "err", err)
		}
	}
}

// archiveOne ships one group's entries applied since the last round.
func (n *Node) archiveOne(ctx context.Context, store *backup.Store, g *archiveGroup, writer string) error {
	a := &n.archive
	if !g.listed {
		segs, err := store.ListSegments(ctx, g.Group)
		if err != nil {
			return err
		}
		var last uint64
		for _, s := range segs {
			last = max(last, s.Last)
		}
		st, _ := n.host.Status(g.Group)
		if last == 0 || last+1 < st.FirstIndex {
			if last != 0 {
				n.archiveGap(g, last, st.FirstIndex)
			}
			last = st.FirstIndex - 1
		}
		a.mu.Lock()
		g.Archived, g.listed = last, true
		a.mu.Unlock()
	}
	_ = n.host.RetainFor(g.Group, archiveHolder, max(g.Archived, 1))
	st, ok := n.host.Status(g.Group)
	if !ok {
		return fmt.Errorf("%w: %d", raftgroup.ErrUnknownGroup, g.Group)
	}
	a.mu.Lock()
	g.Applied = st.Applied
	a.mu.Unlock()
	if st.Applied <= g.Archived {
		// Nothing new: seal the group now and then, so that the archive
		// proves its state up to a recent time.
		if time.Since(g.lastMark) >= n.cfg.BackupSealInterval && (g.LastStamp.IsZero() || time.Since(g.LastStamp.Time()) >= n.cfg.BackupSealInterval) {
			g.lastMark = time.Now()
			if _, _, err := n.host.Mark(ctx, g.Group, hlc.Timestamp{}); err != nil && !errors.Is(err, raftgroup.ErrNotLeader) {
				return err
			}
		}
		return nil
	}
	to := min(st.Applied, g.Archived+20000)
	entries, err := n.readLog(g.Group, g.Archived, to)
	if errors.Is(err, raftgroup.ErrCompacted) {
		n.archiveGap(g, g.Archived, st.FirstIndex)
		a.mu.Lock()
		g.Archived = st.FirstIndex - 1
		a.mu.Unlock()
		return err
	}
	if err != nil {
		return err
	}
	refs, err := store.WriteSegments(ctx, g.Group, entries, writer, backup.DefaultSegmentBytes)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range refs {
		g.Bytes += r.Size
		g.Segments++
		g.Archived = r.Last
	}
	for _, e := range entries {
		if g.LastStamp.Less(e.Stamp) {
			g.LastStamp = e.Stamp
		}
	}
	_ = n.host.RetainFor(g.Group, archiveHolder, max(g.Archived, 1))
	return nil
}

// archiveGap records a hole in a group's archive.
func (n *Node) archiveGap(g *archiveGroup, archived, first uint64) {
	n.archive.mu.Lock()
	g.Gaps++
	n.archive.mu.Unlock()
	n.log.Warn("a group's archive has a hole: its log no longer holds what follows the archive; the restorable window skips it until the next full backup",
		"keyspace", g.Keyspace, "shard", g.Shard, "group", g.Group, "archived", archived, "log_first_index", first)
}

// scheduleRound takes the schedule's backups, on the metadata group's
// leader only, one at a time, and applies the retention after each.
func (n *Node) scheduleRound(ctx context.Context, store *backup.Store, sched *metadata.BackupSchedule) {
	if sched.FullEveryMS <= 0 && sched.IncrementalEveryMS <= 0 {
		return
	}
	if st, ok := n.host.Status(metadata.SystemGroup); !ok || st.Lead != n.cfg.ID {
		return
	}
	a := &n.archive
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return
	}
	known := a.known
	a.mu.Unlock()
	if !known {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ms, _, err := store.Manifests(lctx)
		cancel()
		if err != nil {
			n.log.Warn("backup schedule: cannot list the target's backups", "err", err)
			return
		}
		a.mu.Lock()
		for _, m := range ms {
			t, _ := time.Parse(time.RFC3339Nano, m.Created)
			if m.Kind == "full" && t.After(a.lastFull) {
				a.lastFull = t
			}
			if t.After(a.lastAny) {
				a.lastAny = t
			}
		}
		a.known = true
		a.mu.Unlock()
	}
	now := time.Now()
	a.mu.Lock()
	full := sched.FullEveryMS > 0 && now.Sub(a.lastFull) >= time.Duration(sched.FullEveryMS)*time.Millisecond
	incr := sched.IncrementalEveryMS > 0 && now.Sub(a.lastAny) >= time.Duration(sched.IncrementalEveryMS)*time.Millisecond
	if !full && !incr {
		a.mu.Unlock()
		return
	}
	a.running = true
	a.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			a.mu.Lock()
			a.running = false
			a.mu.Unlock()
		}()
		ctx, cancel := n.untilStop()
		defer cancel()
		m, err := n.CreateBackup(ctx, BackupRequest{Target: sched.Target, Options: backup.Options{Key: n.cfg.BackupKey}, Keyspaces: sched.Keyspaces, Full: full}, nil)
		if err != nil {
			n.log.Warn("scheduled backup failed", "full", full, "err", err)
			return
		}
		n.log.Info("scheduled backup taken", "id", m.ID, "kind", m.Kind, "bytes", m.Bytes, "new_bytes", m.NewBytes)
		a.mu.Lock()
		a.lastAny = now
		if m.Kind == "full" {
			a.lastFull = now
		}
		a.mu.Unlock()
		if sched.RetainCount > 0 || sched.RetainMS > 0 {
			rep, err := backup.Prune(ctx, store, backup.Retention{KeepLast: sched.RetainCount, KeepWithin: time.Duration(sched.RetainMS) * time.Millisecond}, time.Now())
			if err != nil {
				n.log.Warn("backup retention failed", "err", err)
				return
			}
			n.log.Info("backup retention applied", "manifests_deleted", len(rep.Manifests), "objects_deleted", rep.Objects, "bytes_freed", rep.Bytes)
		}
	}()
}

// SetBackupSchedule records the cluster's backup schedule (nil or an
// empty target removes it).
func (n *Node) SetBackupSchedule(ctx context.Context, s *metadata.BackupSchedule) error {
	if s == nil {
		s = &metadata.BackupSchedule{}
	}
	if s.Target != "" {
		if _, err := backup.Open(s.Target, backup.Options{}); err != nil {
			return err
		}
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	p, err := n.propose(ctx, metadata.SystemGroup, metadata.Command{Op: "backup_schedule", Schedule: s}.Encode())
	if err != nil {
		return err
	}
	if res, _ := p.Value.(metadata.ApplyResult); res.Err != nil {
		return res.Err
	}
	return n.waitMeta(ctx, func(st *metadata.State) bool { return st.Index >= p.Index })
}

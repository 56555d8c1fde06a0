package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-db/meridian/backup"
	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node/nodepb"
	"github.com/meridian-db/meridian/raftgroup"
)

// Backups (docs/DESIGN.md 8; package backup for the format).
//
// A backup is a cut of one or more keyspaces at one hybrid time T. Every
// entry of every group's log carries its commit stamp (raftgroup), and
// stamps never decrease along a log, so a group's state at T is the
// prefix of its log stamped at or before T: every write acknowledged
// before T (clocks within the maximum offset) is in it, none begun after
// T is. A sync keyspace's cut is that prefix of every shard's group; an
// async keyspace's is its primary's (the backup holds every region's
// group; the restore picks the primary by the roles the logs record, with
// the epoch); an active keyspace's is every region's group's prefix (a
// version vector of log positions), with the conflict ledger and the
// CRDT metadata in the records, so that a restored counter keeps
// counting.
//
// The node that takes a backup coordinates it; the replicas write:
//
//  1. bases: a replica of each group that needs one writes the group's
//     data from one consistent storage view at its applied index I, with
//     a bound S on the stamps at or below I (the view's applied stamp);
//  2. T is chosen: this node's hybrid time, raised to every S, so that
//     every base is at or before T;
//  3. every group's leader appends a mark stamped after T (Host.Mark):
//     below the mark's index M the log holds everything it will ever
//     hold stamped at or before T (the cut is sealed);
//  4. a replica that has applied M writes the log (I, M] as segments
//     (what the archive does not hold already);
//  5. the manifest, naming every object with its SHA-256, is written
//     last. A backup without a manifest does not exist: a failure at any
//     step leaves only objects nothing refers to (retention removes them).
//
// An incremental backup keeps its parent's bases: only the log since the
// parent's marks is written (or taken from the archive). A group whose
// log no longer holds that gets a new base. A replica that does not
// answer is replaced by another of the group's (a region killed during a
// backup); a group no replica of which answers fails the backup, which
// records nothing.
//
// Backups and restores need the cluster's admin permission: the front
// ends check it (httpapi's requireAdmin) before calling in here.

// BackupRequest asks for a backup.
type BackupRequest struct {
	// Target is the backup target's URL (file:///path, s3://bucket/prefix)
	// and Options how to reach it; empty options are taken from this
	// node's environment (backup.Options.WithEnv), the encryption key
	// from Config.BackupKey if the request has none.
	Target  string         `json:"to"`
	Options backup.Options `json:"options"`
	// Keyspaces to back up; empty: every keyspace (not being restored).
	Keyspaces []string `json:"keyspaces,omitempty"`
	// Full forces a full backup; otherwise it is incremental when the
	// target holds a backup of the same keyspaces (the parent).
	Full bool `json:"full,omitempty"`
	// PartBytes and SegmentBytes bound the objects written (defaults in
	// package backup).
	PartBytes    int `json:"part_bytes,omitempty"`
	SegmentBytes int `json:"segment_bytes,omitempty"`
}

// BackupProgress is a backup's progress.
type BackupProgress struct {
	Phase      string `json:"phase"` // bases, marks, logs, manifest, done
	Groups     int    `json:"groups"`
	GroupsDone int    `json:"groups_done"`
	Bytes      int64  `json:"bytes"`
	Keys       int64  `json:"keys"`
	Entries    int64  `json:"entries"`
	ElapsedMS  int64  `json:"elapsed_ms"`
}

// ErrBackupRefused: a backup or restore request that makes no sense (an
// unknown keyspace, a keyspace being restored, nothing to back up).
var ErrBackupRefused = errors.New("node: backup refused")

// backupTarget is the wire form of a target.
func backupTargetPB(url string, o backup.Options) *nodepb.BackupTarget {
	return &nodepb.BackupTarget{Url: url, Endpoint: o.Endpoint, AccessKey: o.AccessKey, SecretKey: o.SecretKey,
		Region: o.Region, Insecure: o.Insecure, Key: o.Key}
}

// openTarget opens a target from its wire form, with this node's
// environment for what it leaves empty.
func (n *Node) openTarget(t *nodepb.BackupTarget) (*backup.Store, error) {
	o := backup.Options{Endpoint: t.GetEndpoint(), AccessKey: t.GetAccessKey(), SecretKey: t.GetSecretKey(),
		Region: t.GetRegion(), Insecure: t.GetInsecure(), Key: t.GetKey()}
	if len(o.Key) == 0 {
		o.Key = n.cfg.BackupKey
	}
	s, err := backup.OpenStore(t.GetUrl(), o.WithEnv())
	if w := wrapTarget.Load(); err == nil && w != nil {
		s.T = (*w)(s.T)
	}
	return s, err
}

// wrapTarget, set by tests only (export_test.go), wraps every target a
// backup writes through (to stop one half-way).
var wrapTarget atomic.Pointer[func(backup.Target) backup.Target]

// backupGroup is one group a backup covers.
type backupGroup struct {
	keyspace string
	shard    int
	group    uint64
	region   string
	primary  bool
	replicas []uint64
}

// String names the group in errors: its keyspace, shard and region (a
// region-local group's).
func (g backupGroup) String() string {
	if g.region == "" {
		return fmt.Sprintf("group %d (keyspace %s, shard %d)", g.group, g.keyspace, g.shard)
	}
	return fmt.Sprintf("group %d (keyspace %s, shard %d, region %s)", g.group, g.keyspace, g.shard, g.region)
}

// backupLayout lists the groups of the keyspaces named (all if none).
func (n *Node) backupLayout(names []string) ([]*metadata.Keyspace, []backupGroup, error) {
	st := n.meta.State()
	var kss []*metadata.Keyspace
	if len(names) == 0 {
		for _, ks := range st.Keyspaces {
			if ks.Restore == nil {
				kss = append(kss, ks)
			}
		}
	} else {
		for _, name := range names {
			ks := st.Keyspaces[name]
			if ks == nil {
				return nil, nil, fmt.Errorf("%w: %q", metadata.ErrUnknownKeyspace, name)
			}
			if ks.Restore != nil {
				return nil, nil, fmt.Errorf("%w: %w: %q", ErrBackupRefused, metadata.ErrRestoring, name)
			}
			kss = append(kss, ks)
		}
	}
	if len(kss) == 0 {
		return nil, nil, fmt.Errorf("%w: no keyspace to back up", ErrBackupRefused)
	}
	sort.Slice(kss, func(i, j int) bool { return kss[i].Name < kss[j].Name })
	var groups []backupGroup
	for _, ks := range kss {
		for _, sh := range ks.Shards {
			if len(sh.Regional) == 0 {
				groups = append(groups, backupGroup{keyspace: ks.Name, shard: sh.Index, group: sh.Group, replicas: sh.Replicas, primary: true})
				continue
			}
			for _, rg := range sh.Regional {
				groups = append(groups, backupGroup{keyspace: ks.Name, shard: sh.Index, group: rg.Group, region: rg.Region,
					replicas: rg.Replicas, primary: ks.Strategy == metadata.Async && rg.Group == sh.Group})
			}
		}
	}
	return kss, groups, nil
}

// replicaOrder lists the replicas to ask for a group's data: this node
// first, then the others by round trip, those not answering pings last.
func (n *Node) replicaOrder(replicas []uint64) []uint64 {
	out := slices.Clone(replicas)
	rank := func(id uint64) time.Duration {
		if id == n.cfg.ID {
			return -1
		}
		rtt, ok := n.tr.RTT(id)
		if !ok {
			rtt = time.Hour
		}
		if !n.tr.Healthy(id) {
			rtt += 2 * time.Hour
		}
		return rtt
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// backupJob is a running backup's state.
type backupJob struct {
	mu       sync.Mutex
	progress BackupProgress
	start    time.Time
}

func (j *backupJob) update(fn func(p *BackupProgress)) {
	j.mu.Lock()
	fn(&j.progress)
	j.progress.ElapsedMS = time.Since(j.start).Milliseconds()
	j.mu.Unlock()
}

func (j *backupJob) snapshot() BackupProgress {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.progress
	p.ElapsedMS = time.Since(j.start).Milliseconds()
	return p
}

// CreateBackup takes a backup (full, or incremental on the target's
// latest backup of the same keyspaces) and returns its manifest.
// progress, if set, is called as it goes.
func (n *Node) CreateBackup(ctx context.Context, req BackupRequest, progress func(BackupProgress)) (*backup.Manifest, error) {
	job := &backupJob{start: time.Now()}
	report := func(fn func(p *BackupProgress)) {
		job.update(fn)
		if progress != nil {
			progress(job.snapshot())
		}
	}
	target := backupTargetPB(req.Target, req.Options)
	store, err := n.openTarget(target)
	if err != nil {
		return nil, err
	}
	if err := backup.EnsureBucket(ctx, store.T); err != nil {
		return nil, err
	}
	if err := store.Init(ctx, n.cluster); err != nil {
		return nil, err
	}
	kss, groups, err := n.backupLayout(req.Keyspaces)
	if err != nil {
		return nil, err
	}
	var parent *backup.Manifest
	if !req.Full {
		ms, _, err := store.Manifests(ctx)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, ks := range kss {
			names = append(names, ks.Name)
		}
		parent = backup.Latest(ms, names)
	}
	forceBase := map[uint64]bool{}
	for attempt := 0; ; attempt++ {
		m, retry, err := n.backupOnce(ctx, store, target, req, kss, groups, parent, forceBase, report)
		if err == nil {
			report(func(p *BackupProgress) { p.Phase = "done" })
			return m, nil
		}
		if len(retry) == 0 || attempt > 0 {
			return nil, err
		}
		// Some groups' logs no longer hold what follows their parent's
		// marks (and the archive does not either): take new bases.
		for _, g := range retry {
			forceBase[g] = true
		}
	}
}

// groupResult is one group's part of a backup in progress.
type groupResult struct {
	backup.GroupBackup
	newBytes int64
	newBase  bool
	keys     int64
	entries  int64
	from     uint64 // the log is needed after this index
}

func (n *Node) backupOnce(ctx context.Context, store *backup.Store, target *nodepb.BackupTarget, req BackupRequest, kss []*metadata.Keyspace,
	groups []backupGroup, parent *backup.Manifest, forceBase map[uint64]bool, report func(func(*BackupProgress))) (*backup.Manifest, []uint64, error) {
	start := time.Now()
	writer := backup.NewWriterTag()
	results := make([]groupResult, len(groups))
	report(func(p *BackupProgress) { *p = BackupProgress{Phase: "bases", Groups: len(groups)} })
	// 1. Bases, for the groups that need one.
	err := forEach(ctx, len(groups), 4, func(ctx context.Context, i int) error {
		g := groups[i]
		r := &results[i]
		r.Group, r.Region, r.Primary = g.group, g.region, g.primary
		if parent != nil && !forceBase[g.group] {
			if pg, ok := parent.Group(g.group); ok {
				r.BaseIndex, r.BaseStamp, r.BaseParts, r.BaseKeys = pg.BaseIndex, pg.BaseStamp, pg.BaseParts, pg.BaseKeys
				r.Segments = slices.Clone(pg.Segments)
				r.from = pg.SealIndex
				return nil
			}
		}
		resp, err := n.baseFromReplicas(ctx, target, g, writer, req.PartBytes)
		if err != nil {
			return err
		}
		stamp, _ := hlc.Decode(resp.GetStamp())
		r.BaseIndex, r.BaseStamp, r.BaseKeys = resp.GetIndex(), stamp, resp.GetKeys()
		r.from = resp.GetIndex()
		for _, o := range resp.GetParts() {
			r.BaseParts = append(r.BaseParts, objectFromPB(o))
		}
		r.newBytes += resp.GetBytes()
		r.newBase = true
		r.keys = resp.GetKeys()
		report(func(p *BackupProgress) { p.Bytes += resp.GetBytes(); p.Keys += resp.GetKeys() })
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// 2. The cut: this node's time, after every base.
	cut := n.clock.Now()
	for _, r := range results {
		if cut.Less(r.BaseStamp) {
			cut = r.BaseStamp
		}
	}
	if parent != nil && cut.Less(parent.Cut) {
		cut = parent.Cut
	}
	// 3. Seal it in every group.
	report(func(p *BackupProgress) { p.Phase = "marks" })
	err = forEach(ctx, len(groups), 8, func(ctx context.Context, i int) error {
		idx, _, err := n.mark(ctx, groups[i].group, groups[i].replicas, cut)
		if err != nil {
			return fmt.Errorf("backup: sealing %s: %w", groups[i], err)
		}
		results[i].SealIndex = idx
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// 4. The logs up to the marks: what the archive holds already, then
	// the rest from a replica.
	report(func(p *BackupProgress) { p.Phase = "logs" })
	var retryMu sync.Mutex
	var retry []uint64
	err = forEach(ctx, len(groups), 4, func(ctx context.Context, i int) error {
		g, r := groups[i], &results[i]
		listed, err := store.ListSegments(ctx, g.group)
		if err != nil {
			return err
		}
		have, reach := backup.Chain(append(slices.Clone(r.Segments), listed...), r.from)
		reach = min(reach, r.SealIndex)
		// Segments of the archive join the manifest with their checksums.
		var chain []backup.ObjectRef
		for _, ref := range have {
			if ref.First > reach {
				break
			}
			if ref.SHA256 == "" {
				data, err := store.T.Get(ctx, ref.Name)
				if err != nil {
					return err
				}
				ref.SHA256, ref.Size = backup.Checksum(data), int64(len(data))
			}
			chain = append(chain, ref)
		}
		r.Segments = append(r.Segments, chain...)
		if reach < r.SealIndex {
			resp, err := n.logFromReplicas(ctx, target, g, r.from, reach, r.SealIndex, cut, writer, req.SegmentBytes)
			if errors.Is(err, raftgroup.ErrCompacted) {
				retryMu.Lock()
				retry = append(retry, g.group)
				retryMu.Unlock()
			}
			if err != nil {
				return fmt.Errorf("backup: log of %s after %d: %w", g, reach, err)
			}
			for _, o := range resp.GetSegments() {
				r.Segments = append(r.Segments, objectFromPB(o))
			}
			r.CutIndex = resp.GetCutIndex()
			r.newBytes += resp.GetBytes()
			r.entries = resp.GetEntries()
			report(func(p *BackupProgress) { p.Bytes += resp.GetBytes(); p.Entries += resp.GetEntries() })
		}
		report(func(p *BackupProgress) { p.GroupsDone++ })
		return nil
	})
	if err != nil {
		return nil, retry, err
	}
	// 5. The manifest, last.
	report(func(p *BackupProgress) { p.Phase = "manifest" })
	m := &backup.Manifest{Format: backup.FormatVersion, ID: backup.NewBackupID(start), Kind: "full", Cluster: n.cluster,
		Created: start.UTC().Format(time.RFC3339Nano), Cut: cut, CutTime: cut.Time().Format(time.RFC3339Nano)}
	if parent != nil {
		m.Parent = parent.ID
	}
	i := 0
	full := true
	for _, ks := range kss {
		kb := backup.KeyspaceBackup{Spec: ks.KeyspaceSpec, Epoch: ks.Epoch}
		for _, sh := range ks.Shards {
			sb := backup.ShardBackup{Index: sh.Index}
			for i < len(groups) && groups[i].keyspace == ks.Name && groups[i].shard == sh.Index {
				r := results[i]
				full = full && r.newBase
				sb.Groups = append(sb.Groups, r.GroupBackup)
				for _, o := range r.BaseParts {
					m.Bytes += o.Size
				}
				for _, o := range r.Segments {
					m.Bytes += o.Size
				}
				m.NewBytes += r.newBytes
				m.Keys += r.BaseKeys
				m.Entries += r.entries
				i++
			}
			kb.Shards = append(kb.Shards, sb)
		}
		m.Keyspaces = append(m.Keyspaces, kb)
	}
	if !full {
		m.Kind = "incremental"
	}
	m.DurationMS = time.Since(start).Milliseconds()
	if _, err := store.WriteManifest(ctx, m); err != nil {
		return nil, nil, err
	}
	return m, nil, nil
}

func objectFromPB(o *nodepb.BackupObject) backup.ObjectRef {
	return backup.ObjectRef{Name: o.GetName(), SHA256: o.GetSha256(), Size: o.GetSize(), First: o.GetFirst(), Last: o.GetLast()}
}

func objectToPB(o backup.ObjectRef) *nodepb.BackupObject {
	return &nodepb.BackupObject{Name: o.Name, Sha256: o.SHA256, Size: o.Size, First: o.First, Last: o.Last}
}

// forEach runs fn for 0..n-1, at most par at a time, and returns the
// first error (the others are cancelled).
func forEach(ctx context.Context, n, par int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, par)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs <- ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if first == nil || errors.Is(first, context.Canceled) {
			first = err
		}
	}
	return first
}

// baseFromReplicas has a replica of g write its base, trying the next
// replica when one fails.
func (n *Node) baseFromReplicas(ctx context.Context, target *nodepb.BackupTarget, g backupGroup, writer string, partBytes int) (*nodepb.BackupBaseResponse, error) {
	req := &nodepb.BackupBaseRequest{Target: target, Group: g.group, Writer: writer, PartBytes: int64(partBytes)}
	resp, errs, err := fromReplicas(ctx, n, g,
		func() *nodepb.BackupBaseResponse { return n.serveBackupBase(ctx, req) },
		func(id uint64) (*nodepb.BackupBaseResponse, error) { return n.client(id).BackupBase(ctx, req) })
	if err != nil || errs == nil {
		return resp, err
	}
	return nil, fmt.Errorf("backup: no replica of %s wrote its base: %w", g, errors.Join(errs...))
}

// logFromReplicas has a replica of g write its log in (from, to].
func (n *Node) logFromReplicas(ctx context.Context, target *nodepb.BackupTarget, g backupGroup, from, writeAfter, to uint64, cut hlc.Timestamp, writer string, segBytes int) (*nodepb.BackupLogResponse, error) {
	req := &nodepb.BackupLogRequest{Target: target, Group: g.group, From: from, WriteAfter: writeAfter, To: to, Writer: writer, SegmentBytes: int64(segBytes),
		Cut: cut.AppendEncode(nil)}
	resp, errs, err := fromReplicas(ctx, n, g,
		func() *nodepb.BackupLogResponse { return n.serveBackupLog(ctx, req) },
		func(id uint64) (*nodepb.BackupLogResponse, error) { return n.client(id).BackupLog(ctx, req) })
	if err != nil || errs == nil {
		return resp, err
	}
	compacted := true
	for _, e := range errs {
		compacted = compacted && errors.Is(e, raftgroup.ErrCompacted)
	}
	err = errors.Join(errs...)
	if compacted {
		return nil, fmt.Errorf("%w: %w", raftgroup.ErrCompacted, err)
	}
	return nil, err
}

// fromReplicas asks g's replicas in turn (replicaOrder: this node first
// when it holds one) for an answer: served here by local, elsewhere by
// remote. It returns the first answer without an error; or the error
// that no other replica can mend (the context ended, the target or the
// key is wrong); or, when every replica failed, each one's error (errs
// non-nil, the answer zero).
func fromReplicas[R interface{ GetError() *nodepb.Error }](ctx context.Context, n *Node, g backupGroup,
	local func() R, remote func(id uint64) (R, error)) (resp R, errs []error, err error) {
	var zero R
	errs = []error{}
	for _, id := range n.replicaOrder(g.replicas) {
		if id == n.cfg.ID {
			resp, err = local(), nil
		} else {
			resp, err = remote(id)
		}
		if err == nil {
			err = fromPB(resp.GetError())
		}
		if err == nil {
			return resp, nil, nil
		}
		if ctx.Err() != nil || errors.Is(err, backup.ErrTarget) || errors.Is(err, backup.ErrKey) {
			return zero, nil, err
		}
		errs = append(errs, fmt.Errorf("node %d: %w", id, err))
	}
	return zero, errs, nil
}

// serveBackupBase writes the base of a group this node holds a replica
// of: its data from one consistent view, with a bound on the stamps of
// the entries it reflects.
func (n *Node) serveBackupBase(ctx context.Context, req *nodepb.BackupBaseRequest) *nodepb.BackupBaseResponse {
	fail := func(err error) *nodepb.BackupBaseResponse { return &nodepb.BackupBaseResponse{Error: toPB(err)} }
	store, err := n.openTarget(req.GetTarget())
	if err != nil {
		return fail(err)
	}
	group := req.GetGroup()
	for attempt := 0; ; attempt++ {
		r := n.db.NewReader()
		index, err := r.Applied(group)
		if err != nil {
			r.Close()
			return fail(err)
		}
		// Read after the view: the stamp of an applied index at or after
		// the view's bounds every entry the view reflects.
		st, err := n.host.FreshStatus(ctx, group)
		if err != nil {
			r.Close()
			return fail(err)
		}
		if st.AppliedStamp.IsZero() && attempt == 0 {
			// Not known here (a replica caught up by snapshot): a mark
			// applied here makes it known.
			r.Close()
			sh := n.groupReplicas(group)
			idx, _, err := n.mark(ctx, group, sh, hlc.Timestamp{})
			if err == nil {
				err = n.host.WaitApplied(ctx, group, idx)
			}
			if err != nil {
				return fail(err)
			}
			continue
		}
		res, err := store.WriteBase(ctx, r, group, index, st.AppliedStamp, req.GetWriter(), int(req.GetPartBytes()))
		r.Close()
		if err != nil {
			return fail(err)
		}
		out := &nodepb.BackupBaseResponse{Index: index, Stamp: st.AppliedStamp.AppendEncode(nil), Keys: res.Keys, Bytes: res.Bytes}
		for _, p := range res.Parts {
			out.Parts = append(out.Parts, objectToPB(p))
		}
		return out
	}
}

// groupReplicas returns the replicas of a data group, as the metadata
// places them.
func (n *Node) groupReplicas(group uint64) []uint64 {
	for _, ks := range n.meta.State().Keyspaces {
		for _, sh := range ks.Shards {
			if sh.Group == group && len(sh.Regional) == 0 {
				return sh.Replicas
			}
			for _, rg := range sh.Regional {
				if rg.Group == group {
					return rg.Replicas
				}
			}
		}
	}
	return nil
}

// serveBackupLog writes a group's log in (from, to] from this node's
// replica, once it has applied `to`.
func (n *Node) serveBackupLog(ctx context.Context, req *nodepb.BackupLogRequest) *nodepb.BackupLogResponse {
	fail := func(err error) *nodepb.BackupLogResponse { return &nodepb.BackupLogResponse{Error: toPB(err)} }
	store, err := n.openTarget(req.GetTarget())
	if err != nil {
		return fail(err)
	}
	cut, err := hlc.Decode(req.GetCut())
	if err != nil {
		return fail(fmt.Errorf("%w: cut: %w", ErrBackupRefused, err))
	}
	group, from, to, after := req.GetGroup(), req.GetFrom(), req.GetTo(), max(req.GetWriteAfter(), req.GetFrom())
	// A replica far behind (cut off) is not waited for long: the
	// coordinator asks another.
	wctx, cancel := n.withTimeout(ctx)
	err = n.host.WaitApplied(wctx, group, to)
	cancel()
	if err != nil {
		return fail(err)
	}
	// Read from `from` to find the cut; if the log no longer holds it
	// (the target does), from what is to be written.
	known := true
	entries, err := n.readLog(group, from, to)
	if errors.Is(err, raftgroup.ErrCompacted) && after > from {
		known = false
		entries, err = n.readLog(group, after, to)
	}
	if err != nil {
		return fail(err)
	}
	// The cut: the last entry of the prefix stamped at or before it.
	out := &nodepb.BackupLogResponse{}
	if known {
		out.CutIndex = from
		for _, e := range entries {
			if !e.Stamp.IsZero() && cut.Less(e.Stamp) {
				break
			}
			out.CutIndex = e.Index
		}
	}
	for len(entries) > 0 && entries[0].Index <= after {
		entries = entries[1:]
	}
	out.Entries = int64(len(entries))
	refs, err := store.WriteSegments(ctx, group, entries, req.GetWriter(), int(req.GetSegmentBytes()))
	if err != nil {
		return fail(err)
	}
	for _, r := range refs {
		out.Segments = append(out.Segments, objectToPB(r))
		out.Bytes += r.Size
	}
	return out
}

// readLog reads a group's applied log in (from, to] from this node.
func (n *Node) readLog(group, from, to uint64) ([]backup.Entry, error) {
	var out []backup.Entry
	for from < to {
		ents, err := n.host.ReadCommitted(group, from, to, 4<<20)
		if err != nil {
			return nil, err
		}
		if len(ents) == 0 {
			return nil, fmt.Errorf("node: group %d: no entries after %d (applied up to %d expected)", group, from, to)
		}
		for _, e := range ents {
			out = append(out, backup.Entry{Index: e.Index, Stamp: e.Stamp, Command: e.Command})
		}
		from = ents[len(ents)-1].Index
	}
	return out, nil
}

// mark appends a mark stamped after `after` to a group, through its
// leader wherever it is. It gives up after a request timeout whatever
// ctx allows: a group none of whose replicas answers (its only region
// down) fails the backup then, rather than holding it until the
// caller's deadline.
func (n *Node) mark(ctx context.Context, group uint64, replicas []uint64, after hlc.Timestamp) (uint64, hlc.Timestamp, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	req := &nodepb.MarkRequest{Group: group, After: after.AppendEncode(nil)}
	var resp *nodepb.MarkResponse
	for {
		err := n.toLeader(ctx, group, replicas, func(id uint64) (uint64, *nodepb.Error, error) {
			var err error
			if id == n.cfg.ID {
				resp = n.serveMark(ctx, req)
			} else if resp, err = n.client(id).Mark(ctx, req); err != nil {
				return 0, nil, err
			}
			return resp.GetNode(), resp.GetError(), nil
		})
		if err == nil {
			break
		}
		// The leader asked did not answer (a region down, a leader that
		// just moved): a mark appended twice is harmless; ask again.
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return 0, hlc.Timestamp{}, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		}
	}
	stamp, _ := hlc.Decode(resp.GetStamp())
	return resp.GetIndex(), stamp, nil
}

// serveMark appends a mark to a group this node leads.
func (n *Node) serveMark(ctx context.Context, req *nodepb.MarkRequest) *nodepb.MarkResponse {
	after, err := hlc.Decode(req.GetAfter())
	if err != nil {
		return &nodepb.MarkResponse{Node: n.cfg.ID, Error: toPB(fmt.Errorf("%w: mark: %w", ErrBackupRefused, err))}
	}
	idx, stamp, err := n.host.Mark(ctx, req.GetGroup(), after)
	if errors.Is(err, raftgroup.ErrNotLeader) {
		return &nodepb.MarkResponse{Node: n.cfg.ID, Error: notLeader(req.GetGroup(), n.host.Leader(req.GetGroup()))}
	}
	if err != nil {
		return &nodepb.MarkResponse{Node: n.cfg.ID, Error: toPB(err)}
	}
	return &nodepb.MarkResponse{Node: n.cfg.ID, Index: idx, Stamp: stamp.AppendEncode(nil)}
}

func (s rpcServer) BackupBase(ctx context.Context, req *nodepb.BackupBaseRequest) (*nodepb.BackupBaseResponse, error) {
	return s.n.serveBackupBase(ctx, req), nil
}

func (s rpcServer) BackupLog(ctx context.Context, req *nodepb.BackupLogRequest) (*nodepb.BackupLogResponse, error) {
	return s.n.serveBackupLog(ctx, req), nil
}

func (s rpcServer) Mark(ctx context.Context, req *nodepb.MarkRequest) (*nodepb.MarkResponse, error) {
	return s.n.serveMark(ctx, req), nil
}

// BackupJob is a backup this node runs or ran (StartBackup).
type BackupJob struct {
	ID        string           `json:"id"`
	Target    string           `json:"target"`
	Keyspaces []string         `json:"keyspaces,omitempty"`
	Progress  BackupProgress   `json:"progress"`
	Manifest  *backup.Manifest `json:"manifest,omitempty"`
	Err       string           `json:"error,omitempty"`
	Done      bool             `json:"done"`
}

type backupJobs struct {
	mu sync.Mutex
	m  map[string]*BackupJob
}

// StartBackup starts a backup in the background and returns its job;
// BackupJobStatus follows it.
func (n *Node) StartBackup(req BackupRequest) (BackupJob, error) {
	if req.Target == "" {
		return BackupJob{}, fmt.Errorf("%w: no target", ErrBackupRefused)
	}
	if _, err := backup.Open(req.Target, req.Options); err != nil {
		return BackupJob{}, err
	}
	j := &BackupJob{ID: backup.NewWriterTag(), Target: backup.Redact(req.Target), Keyspaces: req.Keyspaces}
	n.jobs.mu.Lock()
	if n.jobs.m == nil {
		n.jobs.m = map[string]*BackupJob{}
	}
	n.jobs.m[j.ID] = j
	out := *j
	n.jobs.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := n.untilStop()
		defer cancel()
		m, err := n.CreateBackup(ctx, req, func(p BackupProgress) {
			n.jobs.mu.Lock()
			j.Progress = p
			n.jobs.mu.Unlock()
		})
		n.jobs.mu.Lock()
		defer n.jobs.mu.Unlock()
		j.Done, j.Manifest = true, m
		if err != nil {
			j.Err = err.Error()
			n.log.Warn("backup failed", "target", j.Target, "err", err)
		}
	}()
	return out, nil
}

// ErrNoBackupJob: no backup job of that id ran on this node.
var ErrNoBackupJob = errors.New("node: no such backup job")

// BackupJobStatus returns a backup job's state.
func (n *Node) BackupJobStatus(id string) (BackupJob, error) {
	n.jobs.mu.Lock()
	defer n.jobs.mu.Unlock()
	j := n.jobs.m[id]
	if j == nil {
		return BackupJob{}, fmt.Errorf("%w: %s", ErrNoBackupJob, id)
	}
	return *j, nil
}

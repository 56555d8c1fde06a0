package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-db/meridian/backup"
	"github.com/meridian-db/meridian/hlc"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/raftgroup"
	"github.com/meridian-db/meridian/storage"
)

// Restores into a running cluster (docs/DESIGN.md 8).
//
// A restore rebuilds a keyspace as it was at a time T, from a backup and
// the archive after it, into a new keyspace that stays hidden until it is
// whole:
//
//  1. every group of the keyspace in the backup is rebuilt at T in a
//     scratch database on this node: its base, then its log replayed by
//     the kv state machine up to the last entry stamped at or before T
//     (package backup, Store.Replay), which must be sealed (an entry
//     stamped after T follows it) or T is outside the window;
//  2. a keyspace is created under a hidden name (metadata.RestoreInfo):
//     clients cannot reach it, its groups are placed and started like
//     any other's;
//  3. the state is loaded through the groups' logs in numbered chunks
//     (kv.OpRestoreChunk): a sync shard's group gets its group's state;
//     an async keyspace's primary group gets the state of the group that
//     was the primary at T (by the roles the logs record: the highest
//     epoch), and its replicas get the chunks by stream; every region of
//     an active keyspace gets the merge of every region's state at T (the
//     cut is a version vector: each region's log position at T), without
//     tombstones (causally stable at once: every region starts from the
//     same state), and its own region's conflict ledger;
//  4. one metadata command gives the keyspace its name, replacing the
//     keyspace of that name if asked (finish_restore).
//
// Until step 4 nothing is visible. A restore interrupted anywhere (the
// node stopped, the request cancelled) leaves a hidden keyspace, which a
// restore with Resume set to its id finishes (the chunks a group applied
// already change nothing when proposed again) and CancelRestore removes.

// RestoreRequest asks for a restore.
type RestoreRequest struct {
	// From is the backup target's URL and Options how to reach it (this
	// node's environment and Config.BackupKey fill what is empty).
	From    string         `json:"from"`
	Options backup.Options `json:"options"`
	// Keyspace is the keyspace in the backup; As the name it takes (the
	// same if empty); Replace allows replacing an existing keyspace of
	// that name.
	Keyspace string `json:"keyspace"`
	As       string `json:"as,omitempty"`
	Replace  bool   `json:"replace,omitempty"`
	// At is the time to restore to (backup.ParseTime); empty: the newest
	// backup's cut. Backup, if set, names the backup to restore from.
	At     string `json:"at,omitempty"`
	Backup string `json:"backup,omitempty"`
	// Resume is the id of an interrupted restore to finish.
	Resume string `json:"resume,omitempty"`
	// ScratchDir is where the state is rebuilt (default: the system's
	// temporary directory).
	ScratchDir string `json:"-"`
}

// RestoreCut is one group's position at the restored time: for an
// active keyspace, the version vector of the cut.
type RestoreCut struct {
	Shard  int           `json:"shard"`
	Region string        `json:"region,omitempty"`
	Group  uint64        `json:"group"`
	Index  uint64        `json:"index"`
	Stamp  hlc.Timestamp `json:"stamp"`
	// Role of the group at the cut (async), and whether it was restored
	// from (the primary at T).
	Role string `json:"role,omitempty"`
	Used bool   `json:"used"`
}

// RestoreStatus is a restore's progress.
type RestoreStatus struct {
	ID       string `json:"id"`
	Keyspace string `json:"keyspace"`
	Target   string `json:"target"`
	Hidden   string `json:"hidden,omitempty"`
	Backup   string `json:"backup,omitempty"`
	// At is the time restored to; Epoch, for async keyspaces, the epoch
	// of the primary restored from.
	At    string        `json:"at,omitempty"`
	Cut   hlc.Timestamp `json:"cut"`
	Epoch uint64        `json:"epoch,omitempty"`
	// Phase: replaying, creating, loading, finishing, done, failed,
	// cancelled.
	Phase      string       `json:"phase"`
	Groups     int          `json:"groups"`
	GroupsDone int          `json:"groups_done"`
	Keys       int64        `json:"keys"`
	Bytes      int64        `json:"bytes"`
	Chunks     int64        `json:"chunks"`
	Entries    int64        `json:"entries"`
	Conflicts  int          `json:"conflicts,omitempty"`
	Cuts       []RestoreCut `json:"cuts,omitempty"`
	Err        string       `json:"error,omitempty"`
	StartedAt  string       `json:"started_at"`
	ElapsedMS  int64        `json:"elapsed_ms"`
	Done       bool         `json:"done"`
}

// ErrNoRestore: no restore of that id is known here or in the metadata.
var ErrNoRestore = errors.New("node: no such restore")

type restoreJob struct {
	mu     sync.Mutex
	status RestoreStatus
	start  time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

func (j *restoreJob) update(fn func(s *RestoreStatus)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(&j.status)
}

func (j *restoreJob) snapshot() RestoreStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.status
	s.Cuts = slices.Clone(s.Cuts)
	if !s.Done {
		s.ElapsedMS = time.Since(j.start).Milliseconds()
	}
	return s
}

type restoreJobs struct {
	mu sync.Mutex
	m  map[string]*restoreJob
}

// StartRestore starts a restore in the background and returns its
// status (with its id); RestoreProgress follows it.
func (n *Node) StartRestore(req RestoreRequest) (RestoreStatus, error) {
	if req.Keyspace == "" && req.Resume == "" {
		return RestoreStatus{}, fmt.Errorf("%w: no keyspace to restore", ErrBackupRefused)
	}
	if _, err := backup.Open(req.From, req.Options); err != nil {
		return RestoreStatus{}, err
	}
	id := req.Resume
	if id == "" {
		id = backup.NewWriterTag()
	}
	ctx, cancel := n.untilStop()
	j := &restoreJob{start: time.Now(), cancel: cancel, done: make(chan struct{}),
		status: RestoreStatus{ID: id, Keyspace: req.Keyspace, Phase: "starting", StartedAt: time.Now().UTC().Format(time.RFC3339)}}
	n.restores.mu.Lock()
	if n.restores.m == nil {
		n.restores.m = map[string]*restoreJob{}
	}
	if old := n.restores.m[id]; old != nil {
		select {
		case <-old.done:
		default:
			n.restores.mu.Unlock()
			cancel()
			return RestoreStatus{}, fmt.Errorf("%w: restore %s is running", ErrBackupRefused, id)
		}
	}
	n.restores.m[id] = j
	n.restores.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(j.done)
		defer cancel()
		err := n.runRestore(ctx, id, req, j)
		j.update(func(s *RestoreStatus) {
			s.Done, s.ElapsedMS = true, time.Since(j.start).Milliseconds()
			switch {
			case err == nil:
				s.Phase = "done"
			case errors.Is(err, context.Canceled):
				s.Phase, s.Err = "cancelled", err.Error()
			default:
				s.Phase, s.Err = "failed", err.Error()
			}
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			n.log.Warn("restore failed", "id", id, "keyspace", req.Keyspace, "err", err)
		}
	}()
	return j.snapshot(), nil
}

// Restore runs a restore to the end and returns its final status.
func (n *Node) Restore(ctx context.Context, req RestoreRequest) (RestoreStatus, error) {
	st, err := n.StartRestore(req)
	if err != nil {
		return st, err
	}
	n.restores.mu.Lock()
	j := n.restores.m[st.ID]
	n.restores.mu.Unlock()
	select {
	case <-j.done:
	case <-ctx.Done():
		j.cancel()
		<-j.done
	}
	st = j.snapshot()
	if st.Err != "" {
		return st, fmt.Errorf("restore %s: %s", st.ID, st.Err)
	}
	return st, nil
}

// RestoreProgress returns a restore's status: of a job this node runs or
// ran, or, for one it does not know, what the metadata says of it.
func (n *Node) RestoreProgress(id string) (RestoreStatus, error) {
	n.restores.mu.Lock()
	j := n.restores.m[id]
	n.restores.mu.Unlock()
	if j != nil {
		return j.snapshot(), nil
	}
	if ks := n.meta.State().Restoring(id); ks != nil {
		return RestoreStatus{ID: id, Target: ks.Restore.Target, Hidden: ks.Name, Backup: ks.Restore.Backup, At: ks.Restore.At,
			Phase: "interrupted"}, nil
	}
	return RestoreStatus{}, fmt.Errorf("%w: %s", ErrNoRestore, id)
}

// CancelRestore stops a restore (if this node runs it) and removes its
// hidden keyspace: nothing of it remains.
func (n *Node) CancelRestore(ctx context.Context, id string) error {
	n.restores.mu.Lock()
	j := n.restores.m[id]
	n.restores.mu.Unlock()
	if j != nil {
		j.cancel()
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ks := n.meta.State().Restoring(id)
	if ks == nil {
		if j != nil {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrNoRestore, id)
	}
	return n.metaCommand(ctx, metadata.Command{Op: "cancel_restore", Cancel: &metadata.CancelRestore{Name: ks.Name, ID: id}})
}

// metaCommand proposes a metadata command and waits until this node's
// metadata has it.
func (n *Node) metaCommand(ctx context.Context, c metadata.Command) error {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	p, err := n.propose(ctx, metadata.SystemGroup, c.Encode())
	if err != nil {
		return err
	}
	if res, _ := p.Value.(metadata.ApplyResult); res.Err != nil {
		return res.Err
	}
	return n.waitMeta(ctx, func(st *metadata.State) bool { return st.Index >= p.Index })
}

// restoreGroup is one group's rebuilt state in the scratch database.
type restoreGroup struct {
	gb  backup.GroupBackup
	res backup.ReplayResult
	err error
}

func (n *Node) runRestore(ctx context.Context, id string, req RestoreRequest, j *restoreJob) error {
	opts := req.Options
	if len(opts.Key) == 0 {
		opts.Key = n.cfg.BackupKey
	}
	store, err := backup.OpenStore(req.From, opts.WithEnv())
	if err != nil {
		return err
	}
	f, err := store.ReadFormat(ctx)
	if err != nil {
		return err
	}
	// A restore to resume: what it was restoring, from its hidden keyspace.
	var hidden *metadata.Keyspace
	if req.Resume != "" {
		if hidden = n.meta.State().Restoring(req.Resume); hidden == nil {
			return fmt.Errorf("%w: %s (nothing to resume)", ErrNoRestore, req.Resume)
		}
		ri := hidden.Restore
		req.Keyspace, req.Backup, req.At, req.As, req.Replace = ri.Keyspace, ri.Backup, "", ri.Target, ri.Replace
	}
	ms, _, err := store.Manifests(ctx)
	if err != nil {
		return err
	}
	var at hlc.Timestamp
	if hidden != nil {
		at = hidden.Restore.Cut
	} else if req.At != "" {
		if at, err = backup.ParseTime(req.At); err != nil {
			return fmt.Errorf("%w: %w", ErrBackupRefused, err)
		}
	}
	var m *backup.Manifest
	if req.Backup != "" {
		for _, x := range ms {
			if x.ID == req.Backup {
				m = x
			}
		}
		if m == nil {
			return fmt.Errorf("%w: backup %s is not in %s", backup.ErrNoBackup, req.Backup, store.T)
		}
		if at.IsZero() {
			at = m.Cut
		}
	} else if m, at, err = backup.Choose(ms, req.Keyspace, at); err != nil {
		return err
	}
	kb, ok := m.Keyspace(req.Keyspace)
	if !ok {
		return fmt.Errorf("%w: backup %s does not hold keyspace %q", backup.ErrNoBackup, m.ID, req.Keyspace)
	}
	target := req.As
	if target == "" {
		target = req.Keyspace
	}
	if hidden == nil {
		if old := n.meta.State().Keyspaces[target]; old != nil && !req.Replace {
			return fmt.Errorf("%w: %q (restore into another name, or replace it)", metadata.ErrKeyspaceExists, target)
		}
	}
	cluster := m.Cluster
	if cluster == "" {
		cluster = f.Cluster
	}
	j.update(func(s *RestoreStatus) {
		s.Keyspace, s.Target, s.Backup, s.Cut, s.At, s.Phase = req.Keyspace, target, m.ID, at, at.Time().Format(time.RFC3339Nano), "replaying"
		for _, sh := range kb.Shards {
			s.Groups += len(sh.Groups)
		}
	})

	// 1. Every group at T, in a scratch database.
	dir, err := os.MkdirTemp(req.ScratchDir, "meridian-restore-")
	if err != nil {
		return fmt.Errorf("restore: scratch directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	scratch, err := storage.Open(dir, storage.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = scratch.Close() }()
	var flat []*restoreGroup
	byShard := make([][]*restoreGroup, len(kb.Shards))
	for i, sh := range kb.Shards {
		for _, gb := range sh.Groups {
			rg := &restoreGroup{gb: gb}
			byShard[i] = append(byShard[i], rg)
			flat = append(flat, rg)
		}
	}
	err = forEach(ctx, len(flat), 2, func(ctx context.Context, i int) error {
		rg := flat[i]
		listed, err := store.ListSegments(ctx, rg.gb.Group)
		if err != nil {
			return err
		}
		rg.res, rg.err = store.Replay(ctx, scratch, rg.gb, listed, at, cluster)
		if rg.err != nil && (!errors.Is(rg.err, backup.ErrWindow) || kb.Spec.Strategy != metadata.Async) {
			return rg.err
		}
		j.update(func(s *RestoreStatus) {
			s.GroupsDone++
			s.Entries += rg.res.Entries
			s.Bytes += rg.res.Bytes
		})
		return nil
	})
	if err != nil {
		return err
	}
	// What each shard is restored from.
	sources := make([][]*restoreGroup, len(kb.Shards))
	var epoch uint64
	for i, groups := range byShard {
		switch kb.Spec.Strategy {
		case metadata.Async:
			best, err := asyncSource(groups, kb.Epoch)
			if err != nil {
				return fmt.Errorf("restore: shard %d: %w", i, err)
			}
			sources[i] = []*restoreGroup{best}
			epoch = max(epoch, best.res.Role.Epoch)
		default:
			sources[i] = groups
		}
	}
	j.update(func(s *RestoreStatus) {
		s.Epoch = epoch
		for i, groups := range byShard {
			for _, g := range groups {
				c := RestoreCut{Shard: kb.Shards[i].Index, Region: g.gb.Region, Group: g.gb.Group, Index: g.res.CutIndex, Stamp: g.res.CutStamp,
					Used: slices.Contains(sources[i], g)}
				if kb.Spec.Strategy == metadata.Async && g.err == nil {
					c.Role = g.res.Role.String()
				}
				s.Cuts = append(s.Cuts, c)
			}
		}
	})

	// 2. The hidden keyspace.
	if hidden == nil {
		j.update(func(s *RestoreStatus) { s.Phase = "creating" })
		spec := kb.Spec
		spec.Name = target
		if spec.Strategy == metadata.Async {
			// The primary at T is where the restored keyspace's primary is.
			if r := sources[0][0].gb.Region; r != "" && slices.Contains(spec.Regions, r) {
				spec.HomeRegion = r
			}
		}
		info := &metadata.RestoreInfo{ID: id, Target: target, Replace: req.Replace, Keyspace: req.Keyspace, Source: backup.Redact(req.From), Backup: m.ID, At: req.At, Cut: at}
		if info.At == "" {
			info.At = at.Time().Format(time.RFC3339Nano)
		}
		if hidden, err = n.createKeyspace(ctx, spec, n.cfg.PlacementWait, info); err != nil {
			return err
		}
	}
	j.update(func(s *RestoreStatus) { s.Hidden, s.Phase = hidden.Name, "loading" })
	if len(hidden.Shards) != len(kb.Shards) {
		return fmt.Errorf("%w: hidden keyspace %q has %d shards, the backup %d", metadata.ErrRestoring, hidden.Name, len(hidden.Shards), len(kb.Shards))
	}

	// 3. The state, through the groups' logs.
	type load struct {
		dst      metadata.RegionalGroup
		data     uint64 // scratch group whose data goes
		ledger   uint64 // scratch group whose ledger goes (0: none)
		tombless bool
	}
	var loads []load
	for i, sh := range hidden.Shards {
		switch kb.Spec.Strategy {
		case metadata.Sync:
			loads = append(loads, load{dst: metadata.RegionalGroup{Group: sh.Group, Replicas: sh.Replicas}, data: sources[i][0].gb.Group})
		case metadata.Async:
			loads = append(loads, load{dst: metadata.RegionalGroup{Group: sh.Group, Replicas: sh.Replicas}, data: sources[i][0].gb.Group})
		case metadata.Active:
			merged, conflicts, err := mergeRegions(scratch, i, sources[i])
			if err != nil {
				return err
			}
			j.update(func(s *RestoreStatus) { s.Conflicts += conflicts })
			for _, rg := range sh.Regional {
				l := load{dst: rg, data: merged, tombless: true}
				for _, src := range sources[i] {
					if src.gb.Region == rg.Region {
						l.ledger = src.gb.Group
					}
				}
				loads = append(loads, l)
			}
		}
	}
	err = forEach(ctx, len(loads), 4, func(ctx context.Context, i int) error {
		l := loads[i]
		return n.loadGroup(ctx, id, scratch, l.dst, l.data, l.ledger, l.tombless, j)
	})
	if err != nil {
		return err
	}

	// 4. The name.
	j.update(func(s *RestoreStatus) { s.Phase = "finishing" })
	return n.metaCommand(ctx, metadata.Command{Op: "finish_restore", Finish: &metadata.FinishRestore{Name: hidden.Name, ID: id}})
}

// asyncSource picks the group of an async shard that was its primary at
// the restored time: the highest epoch whose role is primary, unfenced
// before fenced. A group whose log does not reach the time is left out;
// the one the backup recorded as primary must reach it unless a group of
// a later epoch does.
func asyncSource(groups []*restoreGroup, epoch uint64) (*restoreGroup, error) {
	var best *restoreGroup
	rank := func(g *restoreGroup) (uint64, int) {
		r := g.res.Role
		switch {
		case r.Primary && !r.Fenced:
			return r.Epoch, 2
		case r.Primary:
			return r.Epoch, 1
		}
		return r.Epoch, 0
	}
	var missing error
	for _, g := range groups {
		if g.err != nil {
			if g.gb.Primary {
				missing = g.err
			}
			continue
		}
		if best == nil {
			best = g
			continue
		}
		be, bp := rank(best)
		ge, gp := rank(g)
		if ge > be || ge == be && gp > bp {
			best = g
		}
	}
	switch {
	case best == nil:
		return nil, fmt.Errorf("%w: no group of the shard reaches the time", backup.ErrWindow)
	case missing != nil && best.res.Role.Epoch <= epoch:
		return nil, missing
	}
	return best, nil
}

// mergeRegions merges every region's state of an active shard into a
// scratch group of its own (as the regions' streams would have merged
// them) and returns it, with the conflicts the merge met.
func mergeRegions(scratch *storage.DB, shard int, groups []*restoreGroup) (uint64, int, error) {
	merged := uint64(1)<<50 + uint64(shard)
	conflicts := 0
	for _, g := range groups {
		b := scratch.NewBatch()
		var ferr error
		err := scratch.Scan(g.gb.Group, nil, nil, func(key, value []byte) bool {
			cur, ok, err := b.GetData(merged, key)
			if err != nil {
				ferr = err
				return false
			}
			if !ok {
				b.SetData(merged, key, value)
				return true
			}
			out, n, err := kv.MergeActiveRecords(cur, value)
			if err != nil {
				ferr = fmt.Errorf("restore: merging key %q of group %d: %w", key, g.gb.Group, err)
				return false
			}
			conflicts += n
			b.SetData(merged, key, out)
			return true
		})
		if err == nil {
			err = ferr
		}
		if err != nil {
			b.Close()
			return 0, 0, err
		}
		if err := b.Commit(false); err != nil {
			return 0, 0, err
		}
	}
	return merged, conflicts, nil
}

// restoreChunkBytes bounds one restore chunk (well under a raft message).
const restoreChunkBytes = 256 << 10

// loadGroup proposes the chunks of a scratch group's data, elements (and
// ledger) to a group of the hidden keyspace, in order, from the first:
// those the group applied already (a resumed restore) change nothing.
func (n *Node) loadGroup(ctx context.Context, id string, scratch *storage.DB, dst metadata.RegionalGroup, data, ledger uint64, tombless bool, j *restoreJob) error {
	var seq uint64
	send := func(c kv.RestoreChunk) error {
		seq++
		cmd := kv.RestoreChunkCommand(id, seq, c).Encode()
		for {
			p, err := n.proposeIn(ctx, dst, cmd)
			if err != nil {
				if ctx.Err() == nil && (errors.Is(err, ErrNoReplica) || errors.Is(err, ErrOutcomeUnknown) ||
					errors.Is(err, raftgroup.ErrUnknownGroup) || errors.Is(err, raftgroup.ErrTimeout) || errors.Is(err, raftgroup.ErrNoLeader)) {
					// The group is still starting, or its leader moved:
					// proposing the same chunk again is harmless.
					select {
					case <-time.After(50 * time.Millisecond):
						continue
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return fmt.Errorf("restore: chunk %d to group %d: %w", seq, dst.Group, err)
			}
			res, _ := p.Value.(kv.Result)
			if res.Err != nil {
				return fmt.Errorf("restore: chunk %d to group %d: %w", seq, dst.Group, res.Err)
			}
			if uint64(res.N) < seq {
				return fmt.Errorf("restore: group %d is at chunk %d after chunk %d", dst.Group, res.N, seq)
			}
			j.update(func(s *RestoreStatus) { s.Chunks++ })
			if h := afterChunk.Load(); h != nil {
				(*h)(ctx, id, seq)
			}
			return nil
		}
	}
	// The spans a chunk carries.
	const (
		spanData = iota
		spanElems
		spanLedger
	)
	var chunk kv.RestoreChunk
	size := 0
	add := func(span int, k, v []byte) error {
		switch span {
		case spanLedger:
			chunk.Ledger = append(chunk.Ledger, k, v)
		case spanElems:
			chunk.Elements = append(chunk.Elements, k, v)
		default:
			chunk.Pairs = append(chunk.Pairs, k, v)
			j.update(func(s *RestoreStatus) { s.Keys++ })
		}
		size += len(k) + len(v) + 8
		if size < restoreChunkBytes {
			return nil
		}
		err := send(chunk)
		chunk, size = kv.RestoreChunk{}, 0
		return err
	}
	// A page of records at a time: proposals are not made while a scan
	// holds its iterator.
	scanPages := func(span int, group uint64) error {
		var after []byte
		for {
			var page [][]byte
			pageBytes := 0
			var ferr error
			fn := func(key, value []byte) bool {
				after = append(after[:0], key...)
				switch {
				case span == spanLedger && !kv.RestorableLedger(key):
					return true
				case tombless && span == spanData:
					live, err := kv.LiveActiveRecord(value)
					if err != nil {
						ferr = fmt.Errorf("restore: key %q: %w", key, err)
						return false
					}
					if !live {
						return true
					}
				}
				page = append(page, append([]byte(nil), key...), append([]byte(nil), value...))
				pageBytes += len(key) + len(value)
				return pageBytes < 4*restoreChunkBytes
			}
			var err error
			switch span {
			case spanLedger:
				err = scratch.ScanLedger(group, nextKey(after), nil, fn)
			case spanElems:
				err = scratch.ScanElems(group, nextKey(after), nil, fn)
			default:
				err = scratch.Scan(group, nextKey(after), nil, fn)
			}
			if err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			for i := 0; i+1 < len(page); i += 2 {
				if err := add(span, page[i], page[i+1]); err != nil {
					return err
				}
			}
			if pageBytes < 4*restoreChunkBytes {
				return nil
			}
		}
	}
	if err := scanPages(spanData, data); err != nil {
		return err
	}
	if err := scanPages(spanElems, data); err != nil {
		return err
	}
	if ledger != 0 {
		if err := scanPages(spanLedger, ledger); err != nil {
			return err
		}
		c, ok, err := kv.LedgerCounters(scratch, ledger)
		if err != nil {
			return err
		}
		if ok {
			chunk.LedgerCounters = &c
		}
	}
	if len(chunk.Pairs) > 0 || len(chunk.Ledger) > 0 || len(chunk.Elements) > 0 || chunk.LedgerCounters != nil || seq == 0 {
		if err := send(chunk); err != nil {
			return err
		}
	}
	return nil
}

// afterChunk, set by tests only (export_test.go), is called after each
// chunk a group applied (to interrupt a restore half-way).
var afterChunk atomic.Pointer[func(ctx context.Context, id string, seq uint64)]

// hiddenName is the name a keyspace has while it is restored.
func hiddenName(r *metadata.RestoreInfo) string { return r.Target + ".restore-" + r.ID }

// nextKey returns the smallest key after k (nil: from the start).
func nextKey(k []byte) []byte {
	if k == nil {
		return nil
	}
	return append(append([]byte(nil), k...), 0)
}

package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/meridian-db/meridian/backup"
	"github.com/meridian-db/meridian/kv"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/netsim"
	"github.com/meridian-db/meridian/storage"
	"github.com/meridian-db/meridian/transport"
)

// RestoreCheck is what VerifyByRestore found for one keyspace.
type RestoreCheck struct {
	Keyspace string `json:"keyspace"`
	Backup   string `json:"backup"`
	Keys     int64  `json:"keys"`
	// Mismatches lists keys whose restored record differs from the
	// backup's state, and elements ("element SUFFIX") of lists and sorted
	// sets that do (at most a few).
	Mismatches []string `json:"mismatches,omitempty"`
	Err        string   `json:"error,omitempty"`
}

// VerifyByRestore restores every keyspace of a target's newest backup
// into a scratch cluster of three in-process nodes (one per region of
// regions, default three), and compares every restored group's stored
// records and elements, byte for byte, with the state the backup
// describes (rebuilt separately from the backup). The cluster and its
// data are removed afterwards. Progress lines go to out.
func VerifyByRestore(ctx context.Context, from string, opts backup.Options, regions []string, out io.Writer) ([]RestoreCheck, error) {
	store, err := backup.OpenStore(from, opts)
	if err != nil {
		return nil, err
	}
	ms, _, err := store.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: %s holds no backup", backup.ErrNoBackup, store.T)
	}
	m := ms[len(ms)-1]
	dir, err := os.MkdirTemp("", "meridian-verify-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if len(regions) == 0 {
		regions = []string{"us-east", "eu-west", "ap-southeast"}
	}
	for _, ks := range m.Keyspaces {
		for _, r := range ks.Spec.Regions {
			if !contains(regions, r) {
				regions = append(regions, r)
			}
		}
	}
	fmt.Fprintf(out, "starting a scratch cluster of %d nodes (%v)\n", len(regions), regions)
	nodes, err := startScratch(ctx, filepath.Join(dir, "cluster"), regions)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	var out2 []RestoreCheck
	for _, kb := range m.Keyspaces {
		name := kb.Spec.Name
		chk := RestoreCheck{Keyspace: name, Backup: m.ID}
		fmt.Fprintf(out, "restoring %s from %s\n", name, m.ID)
		st, err := nodes[0].Restore(ctx, RestoreRequest{From: from, Options: opts, Keyspace: name, Backup: m.ID, ScratchDir: dir})
		if err != nil {
			chk.Err = err.Error()
			out2 = append(out2, chk)
			continue
		}
		chk.Keys = st.Keys
		if err := compareRestore(ctx, store, m, kb, nodes, dir, &chk); err != nil {
			chk.Err = err.Error()
		}
		out2 = append(out2, chk)
	}
	return out2, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// startScratch starts one node per region, in process, without emulated
// latency, and waits until they are ready.
func startScratch(ctx context.Context, dir string, regions []string) ([]*Node, error) {
	netw, err := netsim.New(netsim.Config{})
	if err != nil {
		return nil, err
	}
	var peers []transport.Peer
	var lns []net.Listener
	for i, r := range regions {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		peers = append(peers, transport.Peer{ID: uint64(i + 1), Region: r, Addr: ln.Addr().String()})
		netw.AddNode(uint64(i+1), r)
	}
	nodes := make([]*Node, len(regions))
	errs := make(chan error, len(regions))
	for i, p := range peers {
		go func() {
			n, err := Start(Config{ID: p.ID, Region: p.Region, DataDir: filepath.Join(dir, fmt.Sprintf("n%d", p.ID)), Listener: lns[i],
				ListenAddr: p.Addr, Peers: peers, Net: netw, Cluster: "meridian-verify"})
			nodes[i] = n
			errs <- err
		}()
	}
	var first error
	for range regions {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		for _, n := range nodes {
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			first = n.WaitReady(wctx)
			cancel()
			if first != nil {
				break
			}
		}
	}
	if first != nil {
		for _, n := range nodes {
			if n != nil {
				n.Close()
			}
		}
		return nil, first
	}
	return nodes, nil
}

// compareRestore compares the restored keyspace's groups, on the scratch
// nodes that hold them, with the backup's state rebuilt anew.
func compareRestore(ctx context.Context, store *backup.Store, m *backup.Manifest, kb backup.KeyspaceBackup, nodes []*Node, dir string, chk *RestoreCheck) error {
	sdir, err := os.MkdirTemp(dir, "expected-")
	if err != nil {
		return err
	}
	want, err := storage.Open(sdir, storage.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = want.Close() }()
	ks := nodes[0].Metadata().Keyspaces[kb.Spec.Name]
	if ks == nil {
		return fmt.Errorf("the restored keyspace %q is not in the scratch cluster", kb.Spec.Name)
	}
	for i, sh := range kb.Shards {
		var sources []*restoreGroup
		for _, gb := range sh.Groups {
			listed, err := store.ListSegments(ctx, gb.Group)
			if err != nil {
				return err
			}
			rg := &restoreGroup{gb: gb}
			rg.res, rg.err = store.Replay(ctx, want, gb, listed, m.Cut, m.Cluster)
			if rg.err != nil && !errors.Is(rg.err, backup.ErrWindow) {
				return rg.err
			}
			sources = append(sources, rg)
		}
		type check struct {
			group    uint64
			from     uint64
			tombless bool
		}
		var checks []check
		switch kb.Spec.Strategy {
		case metadata.Active:
			merged, _, err := mergeRegions(want, i, sources)
			if err != nil {
				return err
			}
			for _, rg := range ks.Shards[i].Regional {
				checks = append(checks, check{group: rg.Group, from: merged, tombless: true})
			}
		case metadata.Async:
			best, err := asyncSource(sources, kb.Epoch)
			if err != nil {
				return err
			}
			checks = append(checks, check{group: ks.Shards[i].Group, from: best.gb.Group})
		default:
			checks = append(checks, check{group: ks.Shards[i].Group, from: sources[0].gb.Group})
		}
		for _, c := range checks {
			// Records by key, and elements (of lists and sorted sets) by
			// suffix, marked "element ".
			expect := map[string][]byte{}
			err := want.Scan(c.from, nil, nil, func(k, v []byte) bool {
				if c.tombless {
					if live, err := kv.LiveActiveRecord(v); err == nil && !live {
						return true
					}
				}
				expect[string(k)] = bytes.Clone(v)
				return true
			})
			if err == nil {
				err = want.ScanElems(c.from, nil, nil, func(k, v []byte) bool {
					expect["element "+string(k)] = bytes.Clone(v)
					return true
				})
			}
			if err != nil {
				return err
			}
			holder := scratchHolder(nodes, c.group)
			if holder == nil {
				return fmt.Errorf("no scratch node holds group %d", c.group)
			}
			// The holder may still be applying the last chunks: wait for
			// its state to be whole.
			deadline := time.Now().Add(30 * time.Second)
			for {
				var diff []string
				got := 0
				compare := func(prefix string) func(k, v []byte) bool {
					return func(k, v []byte) bool {
						got++
						if w, ok := expect[prefix+string(k)]; !ok || !bytes.Equal(w, v) {
							diff = append(diff, prefix+string(k))
						}
						return len(diff) < 10
					}
				}
				err := holder.db.Scan(c.group, nil, nil, compare(""))
				if err == nil && len(diff) < 10 {
					err = holder.db.ScanElems(c.group, nil, nil, compare("element "))
				}
				if err != nil {
					return err
				}
				if len(diff) == 0 && got == len(expect) {
					break
				}
				if time.Now().After(deadline) {
					chk.Mismatches = append(chk.Mismatches, diff...)
					if got != len(expect) {
						chk.Mismatches = append(chk.Mismatches, fmt.Sprintf("group %d: %d keys and elements restored, %d in the backup", c.group, got, len(expect)))
					}
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return nil
}

// scratchHolder returns a scratch node hosting a group.
func scratchHolder(nodes []*Node, group uint64) *Node {
	for _, n := range nodes {
		if _, ok := n.host.Status(group); ok {
			return n
		}
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridian-db/meridian/httpapi"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// adminClient talks to a node's HTTP API, with the command's
// credentials (creds.go).
type adminClient struct {
	base     string
	http     *http.Client
	header   string // Authorization
	prepared bool
	prepErr  error
}

func newAdminClient(addr string) *adminClient {
	return &adminClient{base: baseURL(addr), http: &http.Client{Timeout: 30 * time.Second}}
}

// do sends a request and decodes a JSON answer into out; error answers
// become Go errors carrying the server's code and message.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	if err := c.prepare(ctx); err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// placementFlag adds --placement-wait to a command that places replicas.
func placementFlag(cmd *cobra.Command, wait *time.Duration) {
	cmd.Flags().DurationVar(wait, "placement-wait", 30*time.Second,
		fmt.Sprintf("wait this long for a live node in every region that needs replicas, then fail naming the missing ones (at most %v)", httpapi.MaxPlacementWait))
}

// placementPath adds the placement wait to a request path.
func placementPath(path string, wait time.Duration) (string, error) {
	if wait < 0 || wait > httpapi.MaxPlacementWait {
		return "", fmt.Errorf("--placement-wait must be between 0s and %v, got %v", httpapi.MaxPlacementWait, wait)
	}
	return path + "?placement_wait=" + url.QueryEscape(wait.String()), nil
}

// newPlacementClient is an admin client whose timeout leaves room for the
// placement wait.
func newPlacementClient(addr string, wait time.Duration) *adminClient {
	c := newAdminClient(addr)
	c.http.Timeout = wait + 30*time.Second
	return c
}

func addrFlag(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "addr", "127.0.0.1:8080", "HTTP address of any node (https:// with --certs-dir)")
	credentialFlags(cmd)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func statusCmd() *cobra.Command {
	var addr string
	var asJSON, waitReady bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: regions, nodes, round trips, keyspaces and their leaders",
		Long: `Show the cluster: regions, nodes, round trips, keyspaces and their leaders,
initial members that never joined, unreachable nodes, and keyspaces below
their replication goal.

With --wait-ready, first wait until every member (every initial member and
every node admitted since) is ready: joined, caught up with the metadata,
with every replica placed on it created. Progress goes to stderr; if the
members are not all ready within --timeout, it says who is not and why, and
exits with status 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := newAdminClient(addr)
			if waitReady {
				if timeout <= 0 {
					return fmt.Errorf("--timeout must be positive")
				}
				if err := waitClusterReady(cmd.Context(), c, cmd.ErrOrStderr(), timeout); err != nil {
					return err
				}
			}
			var st node.ClusterStatus
			if err := c.do(cmd.Context(), http.MethodGet, "/v1/cluster", nil, &st); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	addrFlag(cmd, &addr)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&waitReady, "wait-ready", false, "wait until every member is ready first")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "with --wait-ready: give up (exit status 1) after this long")
	return cmd
}

// waitClusterReady polls GET /v1/cluster/readiness until every member is
// ready, printing a line whenever the picture changes. The node asked may
// not answer at first (it is starting): that is waited for too.
func waitClusterReady(ctx context.Context, c *adminClient, out io.Writer, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	last := ""
	var lastCR node.ClusterReadiness
	var lastErr error
	for {
		cr, err := c.readiness(ctx)
		if ctx.Err() == nil { // an answer cut short by the timeout says nothing
			lastCR, lastErr = cr, err
		}
		var line string
		if err != nil {
			line = fmt.Sprintf("%s does not answer yet: %v", c.base, err)
		} else {
			line = readinessLine(cr)
		}
		if err == nil && cr.Ready {
			fmt.Fprintf(out, "%s (after %.1fs)\n", line, time.Since(start).Seconds())
			return nil
		}
		if line != last && ctx.Err() == nil {
			fmt.Fprintf(out, "%5.1fs  %s\n", time.Since(start).Seconds(), line)
			last = line
		}
		select {
		case <-ctx.Done():
			if lastErr == nil && len(lastCR.Members) == 0 {
				lastErr = fmt.Errorf("%s gave no answer", c.base)
			}
			return fmt.Errorf("the cluster was not ready after %v: %s", timeout, notReadyDetail(lastCR, lastErr))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// readiness asks GET /v1/cluster/readiness; a 503 answer is a valid one
// (someone is not ready).
func (c *adminClient) readiness(ctx context.Context) (node.ClusterReadiness, error) {
	var cr node.ClusterReadiness
	if err := c.prepare(ctx); err != nil {
		return cr, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/cluster/readiness", nil)
	if err != nil {
		return cr, err
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return cr, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return cr, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return cr, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, &cr); err != nil {
		return cr, fmt.Errorf("%s: not a readiness answer: %w", c.base, err)
	}
	return cr, nil
}

// readinessLine sums a readiness answer up: "4/6 members ready; waiting
// for node 5 (ap-southeast), node 6 (ap-southeast)".
func readinessLine(cr node.ClusterReadiness) string {
	ready := 0
	var waiting []string
	for _, m := range cr.Members {
		if m.Ready {
			ready++
		} else {
			waiting = append(waiting, fmt.Sprintf("node %d (%s)", m.ID, m.Region))
		}
	}
	line := fmt.Sprintf("%d/%d members ready", ready, len(cr.Members))
	if len(waiting) > 0 {
		line += "; waiting for " + strings.Join(waiting, ", ")
	}
	return line
}

// notReadyDetail names every member that is not ready and why.
func notReadyDetail(cr node.ClusterReadiness, err error) string {
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, m := range cr.Members {
		if !m.Ready {
			parts = append(parts, fmt.Sprintf("node %d (%s): %s", m.ID, m.Region, strings.Join(m.Reasons, "; ")))
		}
	}
	return strings.Join(parts, "; ")
}

func printStatus(out io.Writer, st node.ClusterStatus) {
	w := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintf(w, "answered by node %d (%s); metadata leader: node %d\n\n", st.Node, st.Region, st.SystemLeader)
	fmt.Fprintln(w, "NODE\tREGION\tZONE\tRAFT\tRESP\tHTTP\tINITIAL\tJOINED\tREACHABLE")
	for _, n := range st.Nodes {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%v\t%v\t%v\n", n.ID, n.Region, n.Zone, n.Addr, n.RESPAddr, n.HTTPAddr, n.Initial, n.Joined, n.Reachable)
	}
	fmt.Fprintln(w)
	if len(st.NotJoined) > 0 {
		fmt.Fprintf(w, "never joined (not started?): nodes %v\n", st.NotJoined)
	}
	if len(st.Unreachable) > 0 {
		fmt.Fprintf(w, "unreachable from node %d: nodes %v\n", st.Node, st.Unreachable)
	}
	for _, h := range st.UnderReplicated {
		fmt.Fprintf(w, "under-replicated: keyspace %s: %d of %d replicas not live", h.Keyspace, h.ReplicasDown, h.ReplicasPlaced)
		if len(h.RegionsDown) > 0 {
			fmt.Fprintf(w, "; no live replica in %s", strings.Join(h.RegionsDown, ", "))
		}
		fmt.Fprintln(w)
		for _, p := range h.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	if len(st.NotJoined)+len(st.Unreachable)+len(st.UnderReplicated) > 0 {
		fmt.Fprintln(w)
	}
	ids := make([]uint64, 0, len(st.Nodes))
	for _, n := range st.Nodes {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	fmt.Fprint(w, "RTT ms\t")
	for _, id := range ids {
		fmt.Fprintf(w, "%d\t", id)
	}
	fmt.Fprintln(w)
	for _, a := range ids {
		fmt.Fprintf(w, "%d\t", a)
		for _, b := range ids {
			if v, ok := st.RTTms[a][b]; ok {
				fmt.Fprintf(w, "%.1f\t", v)
			} else if a == b {
				fmt.Fprint(w, "-\t")
			} else {
				fmt.Fprint(w, "?\t")
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	for _, ks := range st.Keyspaces {
		fmt.Fprintf(w, "keyspace %s: %s, regions %v, home %s, %d shards\n", ks.Name, ks.Strategy, ks.Regions, ks.HomeRegion, len(ks.Shards))
		fmt.Fprintln(w, "  SHARD\tGROUP\tREPLICAS\tLEADER\tLEADER REGION\tTERM\tCOMMIT")
		for _, sh := range ks.Shards {
			fmt.Fprintf(w, "  %d\t%d\t%v\t%d\t%s\t%d\t%d\n", sh.Index, sh.Group, sh.Replicas, sh.Leader, sh.LeaderRegion, sh.Term, sh.Commit)
		}
	}
	if len(st.Streams) > 0 {
		fmt.Fprintf(w, "\nstreams sent by node %d\n", st.Node)
		fmt.Fprintln(w, "  KEYSPACE\tSHARD\tFROM\tTO\tACKED\tLAG ENTRIES\tLAG MS\tSTALLED")
		var stalls []string
		for _, s := range st.Streams {
			stalled := "-"
			if s.Stalled {
				stalled = (time.Duration(s.StalledForMS) * time.Millisecond).String()
				stalls = append(stalls, fmt.Sprintf("  %s shard %d %s -> %s stalled for %s: %s", s.Keyspace, s.Shard, s.FromRegion, s.ToRegion, stalled, s.StallReason))
			}
			fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\n", s.Keyspace, s.Shard, s.FromRegion, s.ToRegion, s.Acked, s.LagEntries, s.LagMS, stalled)
		}
		if len(stalls) > 0 {
			_ = w.Flush()
			fmt.Fprintln(out, "\nstalled streams")
			for _, l := range stalls {
				fmt.Fprintln(out, l)
			}
		}
	}
	_ = w.Flush()
}

func keyspaceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keyspace", Short: "Create, list and describe keyspaces"}
	var addr string
	var spec metadata.KeyspaceSpec
	var regions string
	var createWait time.Duration
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a keyspace",
		Long: `Create a keyspace. Its regions default to every region of the cluster's
members, started or not yet. If a region of the keyspace has no live node,
the node waits up to --placement-wait for one, then refuses, naming the
region and its nodes: a keyspace never spans fewer regions than asked.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Name = args[0]
			spec.Regions = splitList(regions)
			path, err := placementPath("/v1/keyspaces", createWait)
			if err != nil {
				return err
			}
			var ks metadata.Keyspace
			if err := newPlacementClient(addr, createWait).do(cmd.Context(), http.MethodPost, path, spec, &ks); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created keyspace %s: %s, regions %v, home %s, %d shards\n", ks.Name, ks.Strategy, ks.Regions, ks.HomeRegion, len(ks.Shards))
			return nil
		},
	}
	addrFlag(create, &addr)
	create.Flags().StringVar((*string)(&spec.Strategy), "strategy", "sync", "replication strategy: sync, async or active")
	create.Flags().StringVar(&regions, "regions", "", "comma-separated regions (default: all)")
	create.Flags().StringVar(&spec.HomeRegion, "home", "", "home region (default: the first of --regions)")
	create.Flags().IntVar(&spec.Shards, "shards", 4, "number of shards")
	create.Flags().IntVar(&spec.Replicas, "replicas", 3, "voters per shard (sync)")
	create.Flags().StringVar(&spec.Resolver, "resolver", "", "active: registered resolver for concurrent register writes (default last-writer-wins)")
	create.Flags().StringVar(&spec.Consistency, "consistency", "", "default read level: strong, bounded(D), session, prefix or eventual")
	create.Flags().Int64Var(&spec.RPOBudgetMS, "rpo-ms", 0, "async: refuse writes while a region lags more than this many ms (0: no budget)")
	placementFlag(create, &createWait)

	var listAddr string
	list := &cobra.Command{
		Use:   "list",
		Short: "List keyspaces",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out []metadata.Keyspace
			if err := newAdminClient(listAddr).do(cmd.Context(), http.MethodGet, "/v1/keyspaces", nil, &out); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSTRATEGY\tREGIONS\tHOME\tSHARDS")
			for _, ks := range out {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", ks.Name, ks.Strategy, strings.Join(ks.Regions, ","), ks.HomeRegion, len(ks.Shards))
			}
			return w.Flush()
		},
	}
	addrFlag(list, &listAddr)

	var descAddr string
	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "Describe a keyspace: policy, shards, replicas and leaders",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out json.RawMessage
			if err := newAdminClient(descAddr).do(cmd.Context(), http.MethodGet, "/v1/keyspaces/"+args[0], nil, &out); err != nil {
				return err
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "  "); err != nil {
				return err
			}
			pretty.WriteByte('\n')
			_, err := pretty.WriteTo(cmd.OutOrStdout())
			return err
		},
	}
	addrFlag(describe, &descAddr)

	var alterAddr, addRegion, removeRegion string
	var alterWait time.Duration
	alter := &cobra.Command{
		Use:   "alter NAME (--add-region REGION | --remove-region REGION)",
		Short: "Add a region to an async keyspace (seeded from the primary) or remove one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (addRegion == "") == (removeRegion == "") {
				return fmt.Errorf("give exactly one of --add-region and --remove-region")
			}
			var ks metadata.Keyspace
			body := httpapi.AlterRequest{AddRegion: addRegion, RemoveRegion: removeRegion}
			path, err := placementPath("/v1/keyspaces/"+url.PathEscape(args[0]), alterWait)
			if err != nil {
				return err
			}
			c := newPlacementClient(alterAddr, alterWait)
			if err := c.do(cmd.Context(), http.MethodPatch, path, body, &ks); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "keyspace %s: regions %v, primary %s\n", ks.Name, ks.Regions, ks.HomeRegion)
			if addRegion == "" {
				return nil
			}
			return followResync(cmd.Context(), c, out, ks.Name, addRegion)
		},
	}
	addrFlag(alter, &alterAddr)
	alter.Flags().StringVar(&addRegion, "add-region", "", "region to add")
	alter.Flags().StringVar(&removeRegion, "remove-region", "", "replica region to remove")
	placementFlag(alter, &alterWait)
	cmd.AddCommand(create, list, describe, alter)
	return cmd
}

// followResync prints the progress of a new region's seeding until every
// stream into it follows normally.
func followResync(ctx context.Context, c *adminClient, out io.Writer, keyspace, region string) error {
	for {
		var st node.ClusterStatus
		if err := c.do(ctx, http.MethodGet, "/v1/cluster", nil, &st); err != nil {
			return err
		}
		streams, following, keys, bytes := 0, 0, int64(0), int64(0)
		for _, s := range st.Streams {
			if s.Keyspace != keyspace || s.ToRegion != region {
				continue
			}
			streams++
			keys += s.ResyncKeys
			bytes += s.ResyncBytes
			if !s.Resyncing && s.Acked > 0 {
				following++
			}
		}
		fmt.Fprintf(out, "seeding %s: %d of %d shard streams following, %d keys / %d bytes shipped\n", region, following, streams, keys, bytes)
		if streams > 0 && following == streams {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func switchoverCmd() *cobra.Command {
	var addr, to string
	cmd := &cobra.Command{
		Use:   "switchover KEYSPACE --to REGION",
		Short: "Move an async keyspace's primary to another region, losing nothing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res node.SwitchoverResult
			if err := newAdminClient(addr).do(cmd.Context(), http.MethodPost, "/v1/keyspaces/"+args[0]+"/switchover", httpapi.PrimaryRequest{To: to}, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "keyspace %s: primary %s -> %s, epoch %d; writes paused %.1f ms (drain %.1f ms)\n", res.Keyspace, res.From, res.To, res.Epoch, res.FencedMS, res.DrainMS)
			if len(res.Resynced) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "regions that had not caught up and are being resynced: %v\n", res.Resynced)
			}
			return nil
		},
	}
	addrFlag(cmd, &addr)
	cmd.Flags().StringVar(&to, "to", "", "the new primary region")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func failoverCmd() *cobra.Command {
	var addr, to string
	var force bool
	cmd := &cobra.Command{
		Use:   "failover KEYSPACE --to REGION",
		Short: "Make another region an async keyspace's primary when the primary region is lost",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res node.FailoverResult
			if err := newAdminClient(addr).do(cmd.Context(), http.MethodPost, "/v1/keyspaces/"+args[0]+"/failover", httpapi.PrimaryRequest{To: to, Force: force}, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "keyspace %s: primary %s -> %s, epoch %d, in %.1f ms; writes resumed after %.1f ms (once the old primary's lease ran out)\n",
				res.Keyspace, res.From, res.To, res.Epoch, res.TookMS, res.ServingMS)
			for _, f := range res.Forks {
				fmt.Fprintf(cmd.OutOrStdout(), "  shard %d: %s has the old primary's log up to index %d\n", f.Shard, res.To, f.Index)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "writes the old primary acknowledged after these points will be listed by `meridian lost-writes %s` when it returns\n", res.Keyspace)
			return nil
		},
	}
	addrFlag(cmd, &addr)
	cmd.Flags().StringVar(&to, "to", "", "the new primary region")
	cmd.Flags().BoolVar(&force, "force", false, "fail over even though the primary region answers")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func lostWritesCmd() *cobra.Command {
	var addr string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "lost-writes KEYSPACE",
		Short: "List the writes a former primary acknowledged that a failover left behind",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res httpapi.LostWritesResponse
			if err := newAdminClient(addr).do(cmd.Context(), http.MethodGet, "/v1/keyspaces/"+args[0]+"/lost-writes", nil, &res); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			for _, f := range res.Forks {
				state := "pending (old primary not back yet)"
				if f.Reported {
					state = fmt.Sprintf("reported, %d writes", f.LostWrites)
				}
				fmt.Fprintf(w, "fork: epoch %d, shard %d, %s after index %d: %s\n", f.Epoch, f.Shard, f.Region, f.Index, state)
			}
			fmt.Fprintln(w, "EPOCH\tSHARD\tREGION\tINDEX\tTIME\tOP\tKEY\tARGS")
			for _, l := range res.Writes {
				args := make([]string, len(l.Args))
				for i, a := range l.Args {
					args[i] = strconv.Quote(string(a))
				}
				fmt.Fprintf(w, "%d\t%d\t%s\t%d\t%s\t%s\t%q\t%s\n", l.Epoch, l.Shard, l.Region, l.Index,
					time.UnixMilli(l.TimeMS).UTC().Format(time.RFC3339Nano), l.Op, l.Key, strings.Join(args, " "))
			}
			return w.Flush()
		},
	}
	addrFlag(cmd, &addr)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func conflictsCmd() *cobra.Command {
	var addr, key string
	var since time.Duration
	var follow, asJSON bool
	cmd := &cobra.Command{
		Use:   "conflicts KEYSPACE",
		Short: "Show the conflicts an active keyspace merged, as the node's region recorded them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if since < 0 {
				return fmt.Errorf("--since must not be negative")
			}
			c := newAdminClient(addr)
			after := map[uint64]uint64{}
			out := cmd.OutOrStdout()
			for first := true; ; first = false {
				q := url.Values{}
				if key != "" {
					q.Set("key", key)
				}
				if since > 0 {
					q.Set("since_ms", strconv.FormatInt(time.Now().Add(-since).UnixMilli(), 10))
				}
				var parts []string
				for g, s := range after {
					parts = append(parts, fmt.Sprintf("%d:%d", g, s))
				}
				if len(parts) > 0 {
					q.Set("after", strings.Join(parts, ","))
				}
				var page node.ConflictPage
				if err := c.do(cmd.Context(), http.MethodGet, "/v1/keyspaces/"+url.PathEscape(args[0])+"/conflicts?"+q.Encode(), nil, &page); err != nil {
					return err
				}
				if asJSON {
					for _, e := range page.Conflicts {
						if err := printJSON(out, e); err != nil {
							return err
						}
					}
				} else {
					if first {
						fmt.Fprintf(out, "%d conflicts recorded in this region\n", page.Recorded)
					}
					for _, e := range page.Conflicts {
						fmt.Fprintf(out, "%s  shard %d  key %q", time.UnixMilli(e.TimeMS).UTC().Format(time.RFC3339Nano), e.Shard, e.Key)
						if len(e.Field) > 0 {
							fmt.Fprintf(out, " field %q", e.Field)
						}
						fmt.Fprintf(out, "  rule %s  winner %q from %s\n", e.Rule, e.Winner.Value, e.Winner.Region)
						for _, v := range e.Versions {
							fmt.Fprintf(out, "    %q from %s at %v\n", v.Value, v.Region, v.Time)
						}
					}
				}
				for g, s := range page.After {
					after[g] = s
				}
				if !follow {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	addrFlag(cmd, &addr)
	cmd.Flags().StringVar(&key, "key", "", "only this key's conflicts")
	cmd.Flags().DurationVar(&since, "since", 0, "only conflicts recorded in this last period (e.g. 10m)")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new conflicts as they are recorded")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per conflict")
	return cmd
}

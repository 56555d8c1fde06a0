package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// adminClient talks to a node's HTTP API.
type adminClient struct {
	base string
	http *http.Client
}

func newAdminClient(addr string) *adminClient {
	return &adminClient{base: baseURL(addr), http: &http.Client{Timeout: 30 * time.Second}}
}

// do sends a request and decodes a JSON answer into out; error answers
// become Go errors carrying the server's code and message.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
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

func addrFlag(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "addr", "127.0.0.1:8080", "HTTP address of any node")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func statusCmd() *cobra.Command {
	var addr string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: regions, nodes, round trips, keyspaces and their leaders",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st node.ClusterStatus
			if err := newAdminClient(addr).do(cmd.Context(), http.MethodGet, "/v1/cluster", nil, &st); err != nil {
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
	return cmd
}

func printStatus(out io.Writer, st node.ClusterStatus) {
	w := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintf(w, "answered by node %d (%s); metadata leader: node %d\n\n", st.Node, st.Region, st.SystemLeader)
	fmt.Fprintln(w, "NODE\tREGION\tZONE\tRAFT\tRESP\tHTTP\tREACHABLE")
	for _, n := range st.Nodes {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%v\n", n.ID, n.Region, n.Zone, n.Addr, n.RESPAddr, n.HTTPAddr, n.Reachable)
	}
	fmt.Fprintln(w)
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
		fmt.Fprintln(w, "  KEYSPACE\tSHARD\tFROM\tTO\tACKED\tLAG ENTRIES\tLAG MS")
		for _, s := range st.Streams {
			fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%d\t%d\t%d\n", s.Keyspace, s.Shard, s.FromRegion, s.ToRegion, s.Acked, s.LagEntries, s.LagMS)
		}
	}
	_ = w.Flush()
}

func keyspaceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keyspace", Short: "Create, list and describe keyspaces"}
	var addr string
	var spec metadata.KeyspaceSpec
	var regions string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a keyspace",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Name = args[0]
			spec.Regions = splitList(regions)
			var ks metadata.Keyspace
			if err := newAdminClient(addr).do(cmd.Context(), http.MethodPost, "/v1/keyspaces", spec, &ks); err != nil {
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
	cmd.AddCommand(create, list, describe)
	return cmd
}

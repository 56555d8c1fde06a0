package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridian-db/meridian/httpapi"
	"github.com/meridian-db/meridian/node"
)

func userCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the cluster's users (cluster admin)",
		Long: `Manage the cluster's users; the rules are Redis's ACL syntax:

  meridian user set alice on '>s3cret' '~orders' '~tenant-*' +@read +@write
  meridian user set ops on '>pw' allkeys +@admin      # cluster admin
  meridian user set alice '>new-pw' '<s3cret'         # rotate a password
  meridian user set alice '(~logs +@write)'           # one more grant
  meridian user get alice | list | del alice

Users are kept in the metadata: the same in every region. The root user is
built in and authenticates by client certificate only.`,
	}
	var addr string
	set := &cobra.Command{
		Use:   "set USER RULE...",
		Short: "Make or change a user with ACL rules",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var u httpapi.User
			if err := newAdminClient(addr).do(cmd.Context(), http.MethodPut, "/v1/users/"+url.PathEscape(args[0]), httpapi.UserRequest{Rules: args[1:]}, &u); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), u.Rules)
			return nil
		},
	}
	addrFlag(set, &addr)
	var getAddr string
	get := &cobra.Command{
		Use:   "get USER",
		Short: "Show a user (no password, no token secret)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var u httpapi.User
			if err := newAdminClient(getAddr).do(cmd.Context(), http.MethodGet, "/v1/users/"+url.PathEscape(args[0]), nil, &u); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), u)
		},
	}
	addrFlag(get, &getAddr)
	var listAddr string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var us []httpapi.User
			if err := newAdminClient(listAddr).do(cmd.Context(), http.MethodGet, "/v1/users", nil, &us); err != nil {
				return err
			}
			for _, u := range us {
				fmt.Fprintln(cmd.OutOrStdout(), u.Rules)
			}
			return nil
		},
	}
	addrFlag(list, &listAddr)
	var delAddr string
	del := &cobra.Command{
		Use:   "del USER",
		Short: "Remove a user",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := newAdminClient(delAddr).do(cmd.Context(), http.MethodDelete, "/v1/users/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s removed\n", args[0])
			return nil
		},
	}
	addrFlag(del, &delAddr)
	cmd.AddCommand(set, get, list, del)
	return cmd
}

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Bearer tokens for the HTTP API",
	}
	var addr, forUser string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create",
		Short: "Make a bearer token (your own; another user's as cluster admin); it is shown once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out httpapi.TokenResponse
			req := httpapi.TokenRequest{User: forUser}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			if err := newAdminClient(addr).do(cmd.Context(), http.MethodPost, "/v1/auth/tokens", req, &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s of %s, valid until %s (use: --token or MERIDIAN_TOKEN, or Authorization: Bearer)\n",
				out.Record.ID, out.User, time.UnixMilli(out.Record.ExpiresMS).UTC().Format(time.RFC3339))
			return nil
		},
	}
	addrFlag(create, &addr)
	create.Flags().StringVar(&forUser, "for", "", "the user the token is for (default: yourself)")
	create.Flags().DurationVar(&ttl, "ttl", node.DefaultTokenTTL, fmt.Sprintf("validity (at most %v)", node.MaxTokenTTL))
	var revokeAddr, revokeUser string
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/v1/auth/tokens/" + url.PathEscape(args[0])
			if revokeUser != "" {
				path += "?user=" + url.QueryEscape(revokeUser)
			}
			if err := newAdminClient(revokeAddr).do(cmd.Context(), http.MethodDelete, path, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return nil
		},
	}
	addrFlag(revoke, &revokeAddr)
	revoke.Flags().StringVar(&revokeUser, "for", "", "whose token (default: yours)")
	cmd.AddCommand(create, revoke)
	return cmd
}

func auditCmd() *cobra.Command {
	var addr string
	var since time.Duration
	var asJSON, nodeOnly bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the admin actions of every node: who, what, when, from where, result (cluster admin)",
		Long: `Show the audit log: every admin action (keyspace changes, switchovers and
failovers, user management, lost writes, conflicts, pprof, netsim), allowed
or refused, with who made it, from where, and the result. Each node keeps
the actions it served; the node at --addr asks every other node for its
records (over the node-to-node connections) and merges them by time,
naming any node that did not answer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			recs, errs := gatherAudit(cmd.Context(), addr, since, nodeOnly)
			for _, err := range errs {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
			}
			if recs == nil && len(errs) > 0 {
				return errs[0]
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), recs)
			}
			printAudit(cmd.OutOrStdout(), recs)
			return nil
		},
	}
	addrFlag(cmd, &addr)
	cmd.Flags().DurationVar(&since, "since", 24*time.Hour, "records of this last period")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&nodeOnly, "node-only", false, "only the node at --addr")
	return cmd
}

// gatherAudit reads the audit log through the node at addr: the
// cluster's, which the node gathers from every node, or with nodeOnly the
// node's own. A node whose records are missing or cut is reported in
// errs.
func gatherAudit(ctx context.Context, addr string, since time.Duration, nodeOnly bool) ([]node.AuditRecord, []error) {
	c := newAdminClient(addr)
	path := "/v1/audit?since=" + url.QueryEscape(since.String())
	if nodeOnly {
		path += "&scope=node"
	}
	var ca node.ClusterAudit
	if err := c.do(ctx, http.MethodGet, path, nil, &ca); err != nil {
		return nil, []error{err}
	}
	var errs []error
	for _, m := range ca.Missing {
		errs = append(errs, fmt.Errorf("node %d's records are missing: %s", m.Node, m.Error))
	}
	for _, tr := range ca.Truncated {
		errs = append(errs, fmt.Errorf("node %d left out its %d oldest records (give a shorter --since)", tr.Node, tr.Dropped))
	}
	return ca.Records, errs
}

func printAudit(w io.Writer, recs []node.AuditRecord) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tNODE\tWHO\tFROM\tACTION\tKEYSPACE\tRESULT\tDETAIL")
	for _, r := range recs {
		who := r.Who
		if r.Via != "" {
			who += " (" + r.Via + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s %s\t%s\t%s\t%s\t%s\n", time.UnixMilli(r.TimeMS).UTC().Format(time.RFC3339Nano),
			r.Node, who, r.Frontend, r.From, r.Action, r.Keyspace, r.Result, r.Detail)
	}
	_ = tw.Flush()
}

package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridian-db/meridian/node"
	"github.com/meridian-db/meridian/pki"
)

func certCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Make the certificates that secure a cluster",
		Long: `Make the certificates that secure a cluster (see SECURITY.md).

  meridian cert create-ca --certs-dir ca --cluster prod
  meridian cert create-node --certs-dir ca --out-dir n1 --id 1 --host 10.0.0.1,db1.example.com
  meridian cert create-client root --certs-dir ca --out-dir admin
  meridian start --certs-dir n1 ...

A certificates directory has mode 0700, keys 0600. Node certificates name
their node and cluster (meridian://CLUSTER/node/ID) and carry the node's
addresses; client certificates name a user (meridian://CLUSTER/user/NAME),
"root" being the built-in user with every permission. Keep ca.key off the
nodes once their certificates exist.

To rotate the CA: create-ca --rotate (both CAs trusted), copy ca.crt to
every node and client, issue and install new certificates, then prune-ca
and copy ca.crt again. Nodes reload their files on SIGHUP and when they
change; connections are made again with the new certificates.`,
	}
	var dir, caKey string
	common := func(c *cobra.Command) {
		c.Flags().StringVar(&dir, "certs-dir", "certs", "the CA's directory (ca.crt, and ca.key unless --ca-key)")
		c.Flags().StringVar(&caKey, "ca-key", "", "the CA's key (default CERTS-DIR/ca.key)")
	}

	var cluster string
	var lifetime time.Duration
	var rotate, overwrite bool
	createCA := &cobra.Command{
		Use:   "create-ca",
		Short: "Make a cluster's certificate authority",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := pki.CreateCA(pki.CAOptions{Dir: dir, KeyPath: caKey, Cluster: cluster, Lifetime: lifetime, Rotate: rotate, Overwrite: overwrite})
			if err != nil {
				return err
			}
			id, _ := pki.IdentityOf(ca)
			fmt.Fprintf(cmd.OutOrStdout(), "CA of cluster %s in %s (expires %s)\n", id.Cluster, dir, ca.NotAfter.UTC().Format(time.DateOnly))
			if rotate {
				fmt.Fprintln(cmd.OutOrStdout(), "The bundle trusts the new CA and the old ones: copy ca.crt everywhere, issue new certificates, then prune-ca.")
			}
			return nil
		},
	}
	common(createCA)
	createCA.Flags().StringVar(&cluster, "cluster", "", `the cluster's name or id (default "meridian", or with --rotate the CA's)`)
	createCA.Flags().DurationVar(&lifetime, "lifetime", pki.DefaultCALifetime, "validity of the CA certificate")
	createCA.Flags().BoolVar(&rotate, "rotate", false, "a new CA, added to the bundle in front of the old (which stays trusted until prune-ca)")
	createCA.Flags().BoolVar(&overwrite, "overwrite", false, "replace an existing CA (every certificate it issued stops being trusted)")

	var id uint64
	var hosts []string
	var outDir, clusterID, peers string
	var certLifetime time.Duration
	var certOverwrite bool
	createNode := &cobra.Command{
		Use:   "create-node",
		Short: "Issue a node's certificate (its id, cluster and addresses)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == 0 {
				return fmt.Errorf("--id is required")
			}
			cl, err := certCluster(dir, caKey, clusterID, peers)
			if err != nil {
				return err
			}
			c, err := pki.CreateNode(pki.CertOptions{Dir: dir, CAKeyPath: caKey, OutDir: outDir, Cluster: cl, Hosts: hosts,
				Lifetime: certLifetime, Overwrite: certOverwrite}, id)
			if err != nil {
				return err
			}
			ident, _ := pki.IdentityOf(c)
			fmt.Fprintf(cmd.OutOrStdout(), "%s in %s: %s, hosts %s (expires %s)\n", pki.NodeCertFile, or(outDir, dir), ident,
				strings.Join(hosts, ","), c.NotAfter.UTC().Format(time.DateOnly))
			return nil
		},
	}
	common(createNode)
	createNode.Flags().Uint64Var(&id, "id", 0, "the node's id (required)")
	createNode.Flags().StringSliceVar(&hosts, "host", nil, "the node's addresses and host names, as clients reach it (required; repeat or separate with commas)")
	createNode.Flags().StringVar(&outDir, "out-dir", "", "where the certificate, its key and the CA bundle go (default --certs-dir)")
	createNode.Flags().StringVar(&clusterID, "cluster-id", "", "the cluster's id, for a node joining a running cluster (default: the CA's cluster name, or the id --peers gives)")
	createNode.Flags().StringVar(&peers, "peers", "", "the initial members (ID=REGION@HOST:PORT,...), to name the cluster's id (with the CA's cluster name)")
	createNode.Flags().DurationVar(&certLifetime, "lifetime", pki.DefaultCertLifetime, "validity of the certificate")
	createNode.Flags().BoolVar(&certOverwrite, "overwrite", false, "replace an existing certificate (a running node reloads it)")

	createClient := &cobra.Command{
		Use:   "create-client USER",
		Short: "Issue a user's client certificate (root: every permission)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := pki.CreateClient(pki.CertOptions{Dir: dir, CAKeyPath: caKey, OutDir: outDir, Lifetime: certLifetime, Overwrite: certOverwrite}, args[0])
			if err != nil {
				return err
			}
			ident, _ := pki.IdentityOf(c)
			fmt.Fprintf(cmd.OutOrStdout(), "%s in %s: %s (expires %s)\n", pki.ClientCertFile(args[0]), or(outDir, dir), ident, c.NotAfter.UTC().Format(time.DateOnly))
			return nil
		},
	}
	common(createClient)
	createClient.Flags().StringVar(&outDir, "out-dir", "", "where the certificate, its key and the CA bundle go (default --certs-dir)")
	createClient.Flags().DurationVar(&certLifetime, "lifetime", pki.DefaultCertLifetime, "validity of the certificate")
	createClient.Flags().BoolVar(&certOverwrite, "overwrite", false, "replace an existing certificate")

	prune := &cobra.Command{
		Use:   "prune-ca",
		Short: "Trust only the CA of ca.key: the end of a CA rotation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := pki.PruneCA(dir, caKey)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d CA certificate(s) removed from %s/%s; copy it to every node and client\n", n, dir, pki.CACertFile)
			return nil
		},
	}
	common(prune)

	list := &cobra.Command{
		Use:   "list",
		Short: "List a directory's certificates: identity, hosts, expiry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			certs, err := pki.Describe(dir)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FILE\tIDENTITY\tHOSTS\tEXPIRES")
			for _, c := range certs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.File, c.Identity, strings.Join(append(c.IPs, c.DNSNames...), ","), c.NotAfter.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&dir, "certs-dir", "certs", "the directory")
	cmd.AddCommand(createCA, createNode, createClient, prune, list)
	return cmd
}

// certCluster is the cluster a node certificate names: the id given,
// the id of the initial members given (with the CA's cluster name), or ""
// for the CA's cluster name.
func certCluster(dir, caKey, clusterID, peers string) (string, error) {
	if clusterID != "" && peers != "" {
		return "", fmt.Errorf("give --cluster-id or --peers, not both")
	}
	if peers == "" {
		return clusterID, nil
	}
	ps, err := parsePeers(peers)
	if err != nil {
		return "", err
	}
	ca, err := pki.CAIdentity(dir, caKey)
	if err != nil {
		return "", err
	}
	return node.ClusterID(ca.ClusterName(), ps), nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

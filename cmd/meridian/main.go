// Command meridian is the Meridian database: one binary for a node, the
// administration commands and the demo. This file only parses flags and
// wires packages together.
package main

import (
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meridian-db/meridian/demo"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "meridian",
		Short:         "Meridian: a multi-region database",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(demoCmd(), startCmd(), statusCmd(), keyspaceCmd(), switchoverCmd(), failoverCmd(), lostWritesCmd(), conflictsCmd(), benchCmd(), configCmd(),
		certCmd(), userCmd(), tokenCmd(), auditCmd(), backupCmd(), restoreCmd())
	return root
}

func demoCmd() *cobra.Command {
	var (
		regions  string
		perNode  int
		latency  string
		dataDir  string
		basePort int
		verbose  bool
		insecure bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole multi-region cluster in one process on an emulated world network",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opts := demo.Options{
				Regions: splitList(regions), NodesPerRegion: perNode, Latency: latency,
				DataDir: dataDir, BasePort: basePort, Insecure: insecure,
			}
			if verbose {
				opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			}
			return demo.Run(ctx, opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&regions, "regions", "us-east,eu-west,ap-southeast", "comma-separated regions (names from the latency matrix)")
	cmd.Flags().IntVar(&perNode, "nodes-per-region", 1, "nodes in each region")
	cmd.Flags().StringVar(&latency, "latency", "world", "emulated latency: none, world, or a matrix file in the world-rtt.json format")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep data here (default: a temporary directory removed at exit)")
	cmd.Flags().IntVar(&basePort, "base-port", 7379, "first RESP port (one per node, counting up); 0 picks free ports")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log node events to stderr")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "no certificates, no users: plaintext and no authentication (the demo is secure by default)")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meridian-db/meridian/config"
)

func configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Configuration files for meridian start --config",
	}
	var format string
	example := &cobra.Command{
		Use:   "example",
		Short: "Print a configuration file with every key explained and today's defaults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := config.Example(config.Format(format))
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(text)
			return err
		},
	}
	example.Flags().StringVar(&format, "format", string(config.YAML), "yaml or toml")
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Check a configuration file as meridian start would (without flags)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := config.Load(args[0])
			if err != nil {
				return err
			}
			if err := f.Validate(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (node %d in %s)\n", args[0], f.Node.ID, f.Node.Region)
			return nil
		},
	}
	cmd.AddCommand(example, check)
	return cmd
}

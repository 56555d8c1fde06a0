package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meridian-db/meridian/backup"
	"github.com/meridian-db/meridian/metadata"
	"github.com/meridian-db/meridian/node"
)

// targetFlags are how the CLI reaches a backup target: the S3 endpoint
// and credentials (flags, else the environment: MERIDIAN_S3_ENDPOINT,
// MERIDIAN_S3_ACCESS_KEY / AWS_ACCESS_KEY_ID, MERIDIAN_S3_SECRET_KEY /
// AWS_SECRET_ACCESS_KEY) and the encryption key (--key-file, else
// MERIDIAN_BACKUP_KEY). Credentials on the command line are visible to
// other users of the machine (ps): prefer the environment.
type targetFlags struct {
	endpoint, accessKey, secretKey, region, keyFile string
	insecure                                        bool
}

func (f *targetFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.endpoint, "s3-endpoint", "", "S3 endpoint host:port (default $MERIDIAN_S3_ENDPOINT, else s3.amazonaws.com)")
	cmd.Flags().StringVar(&f.accessKey, "s3-access-key", "", "S3 access key (default $MERIDIAN_S3_ACCESS_KEY or $AWS_ACCESS_KEY_ID; the environment is safer)")
	cmd.Flags().StringVar(&f.secretKey, "s3-secret-key", "", "S3 secret key (default $MERIDIAN_S3_SECRET_KEY or $AWS_SECRET_ACCESS_KEY; the environment is safer)")
	cmd.Flags().StringVar(&f.region, "s3-region", "", "S3 region")
	cmd.Flags().BoolVar(&f.insecure, "s3-insecure", false, "talk plain HTTP to the S3 endpoint")
	cmd.Flags().StringVar(&f.keyFile, "key-file", "", "encryption key file: 32 bytes, as 64 hex digits or base64 (default $MERIDIAN_BACKUP_KEY)")
}

// options returns the target options; withEnv fills what is empty from
// the environment (the CLI reads targets itself), otherwise the node
// that does the work uses its own.
func (f *targetFlags) options(withEnv bool) (backup.Options, error) {
	o := backup.Options{Endpoint: f.endpoint, AccessKey: f.accessKey, SecretKey: f.secretKey, Region: f.region, Insecure: f.insecure}
	var err error
	if f.keyFile != "" {
		o.Key, err = backup.KeyFromFile(f.keyFile)
	} else {
		o.Key, err = backup.KeyFromEnv("MERIDIAN_BACKUP_KEY")
	}
	if err != nil {
		return o, err
	}
	if withEnv {
		o = o.WithEnv()
	}
	return o, nil
}

func backupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up keyspaces, list, verify and prune backups, archive logs continuously",
		Long: `Backups are cuts of keyspaces at one hybrid time, written to a directory
(file:///path) or S3-compatible object storage (s3://bucket/prefix). A full
backup writes every group's data; an incremental one only the log since the
previous backup. With a schedule, every group's log is also archived
continuously, so a keyspace can be restored to any moment (meridian restore
--at) up to a few seconds ago. Backups and restores need the admin permission.`,
	}
	cmd.AddCommand(backupCreateCmd(), backupListCmd(), backupVerifyCmd(), backupScheduleCmd(), backupPruneCmd(), backupArchivesCmd())
	return cmd
}

func backupCreateCmd() *cobra.Command {
	var addr, keyspaces string
	var full, asJSON bool
	var tf targetFlags
	var to string
	cmd := &cobra.Command{
		Use:   "create --to URL [--keyspace KS,...] [--full]",
		Short: "Take a backup (incremental on the target's latest one unless --full), showing progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return errors.New("--to URL is required (file:///path or s3://bucket/prefix)")
			}
			opts, err := tf.options(false)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c := newAdminClient(addr)
			var job node.BackupJob
			req := node.BackupRequest{Target: to, Options: opts, Keyspaces: splitList(keyspaces), Full: full}
			if err := c.do(ctx, "POST", "/v1/backups", req, &job); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for !job.Done {
				select {
				case <-ctx.Done():
					fmt.Fprintf(out, "\nthe backup goes on in the cluster (job %s); it records nothing until it is whole\n", job.ID)
					return ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
				if err := c.do(ctx, "GET", "/v1/backups/jobs/"+job.ID, nil, &job); err != nil {
					return err
				}
				if !asJSON {
					fmt.Fprintf(out, "\r%s", progressLine(job.Progress))
				}
			}
			if !asJSON {
				fmt.Fprintln(out)
			}
			if job.Err != "" {
				return fmt.Errorf("backup failed (nothing recorded): %s", job.Err)
			}
			if asJSON {
				return printJSON(out, job.Manifest)
			}
			m := job.Manifest
			secs := float64(m.DurationMS) / 1000
			fmt.Fprintf(out, "backup %s (%s", m.ID, m.Kind)
			if m.Parent != "" {
				fmt.Fprintf(out, " on %s", m.Parent)
			}
			fmt.Fprintf(out, "): cut at %s, keyspaces %s\n", m.CutTime, strings.Join(m.KeyspaceNames(), ","))
			fmt.Fprintf(out, "  %s written (%s referenced), %d keys, %d log entries in %.1fs: %s/s, %.0f keys/s\n",
				humanBytes(m.NewBytes), humanBytes(m.Bytes), m.Keys, m.Entries, secs, humanBytes(int64(float64(m.NewBytes)/max(secs, 0.001))), float64(m.Keys)/max(secs, 0.001))
			return nil
		},
	}
	addrFlag(cmd, &addr)
	cmd.Flags().StringVar(&to, "to", "", "backup target: file:///path or s3://bucket/prefix")
	cmd.Flags().StringVar(&keyspaces, "keyspace", "", "comma-separated keyspaces (default: all)")
	cmd.Flags().BoolVar(&full, "full", false, "a full backup even if the target holds one to build on")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the manifest as JSON")
	tf.add(cmd)
	return cmd
}

func progressLine(p node.BackupProgress) string {
	secs := float64(p.ElapsedMS) / 1000
	return fmt.Sprintf("%-8s groups %d/%d  %s  %d keys  %d entries  %s/s   ", p.Phase, p.GroupsDone, p.Groups,
		humanBytes(p.Bytes), p.Keys, p.Entries, humanBytes(int64(float64(p.Bytes)/max(secs, 0.001))))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func openTargetCLI(url string, tf *targetFlags) (*backup.Store, error) {
	opts, err := tf.options(true)
	if err != nil {
		return nil, err
	}
	return backup.OpenStore(url, opts)
}

func backupListCmd() *cobra.Command {
	var tf targetFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list URL",
		Short: "List the backups of a target and the window each keyspace can be restored to",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := openTargetCLI(args[0], &tf)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if _, err := store.ReadFormat(ctx); err != nil {
				return err
			}
			ms, bad, err := store.Manifests(ctx)
			if err != nil {
				return err
			}
			windows, err := backup.KeyspaceWindows(ctx, store, ms)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, map[string]any{"backups": ms, "unreadable": errStrings(bad), "windows": windows})
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BACKUP\tKIND\tCUT\tKEYSPACES\tSIZE\tWRITTEN\tKEYS")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", m.ID, m.Kind, m.CutTime, strings.Join(m.KeyspaceNames(), ","), humanBytes(m.Bytes), humanBytes(m.NewBytes), m.Keys)
			}
			_ = tw.Flush()
			for id, err := range bad {
				fmt.Fprintf(out, "unreadable backup %s: %v\n", id, err)
			}
			fmt.Fprintln(out, "\nrestorable windows (meridian restore --at TIME):")
			for ks, ws := range windows {
				for _, w := range mergeWindows(ws) {
					fmt.Fprintf(out, "  %-20s %s .. %s\n", ks, w.From.Time().Format(time.RFC3339Nano), w.To.Time().Format(time.RFC3339Nano))
				}
			}
			return nil
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// mergeWindows joins overlapping windows (they are oldest first).
func mergeWindows(ws []backup.Window) []backup.Window {
	var out []backup.Window
	for _, w := range ws {
		if n := len(out); n > 0 && !out[n-1].To.Less(w.From) {
			if out[n-1].To.Less(w.To) {
				out[n-1].To = w.To
			}
			continue
		}
		out = append(out, w)
	}
	return out
}

func errStrings(m map[string]error) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v.Error()
	}
	return out
}

func backupVerifyCmd() *cobra.Command {
	var tf targetFlags
	var restore, asJSON bool
	cmd := &cobra.Command{
		Use:   "verify URL [--restore]",
		Short: "Check every object of a target (checksums, chains of incrementals and log segments); exit status 1 if anything is wrong",
		Long: `Check every object of a target: every manifest, each object it names
(present, size and SHA-256 as recorded, its own checksum, contents as the
manifest says), the chain of each backup's log from its base past its cut,
and the archived log segments (checksums, holes). Problems name the object.
With --restore, also restore the newest backup into a scratch cluster of
in-process nodes and compare every restored record with the backup's.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := openTargetCLI(args[0], &tf)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			rep, err := backup.Verify(ctx, store)
			if err != nil {
				return err
			}
			var checks []node.RestoreCheck
			if restore && rep.OK() {
				opts, _ := tf.options(true)
				if checks, err = node.VerifyByRestore(ctx, args[0], opts, nil, out); err != nil {
					return err
				}
			}
			if asJSON {
				if err := printJSON(out, map[string]any{"verify": rep, "restores": checks}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "%d backups, %d objects (%s), %d archived segments checked\n", rep.Backups, rep.Objects, humanBytes(rep.Bytes), rep.Segments)
				for _, p := range rep.Problems {
					fmt.Fprintf(out, "PROBLEM %s: %s\n", p.Object, p.Err)
				}
				for _, c := range checks {
					switch {
					case c.Err != "":
						fmt.Fprintf(out, "RESTORE %s from %s failed: %s\n", c.Keyspace, c.Backup, c.Err)
					case len(c.Mismatches) > 0:
						fmt.Fprintf(out, "RESTORE %s from %s differs: %v\n", c.Keyspace, c.Backup, c.Mismatches)
					default:
						fmt.Fprintf(out, "restored %s from %s into a scratch cluster: %d keys, identical\n", c.Keyspace, c.Backup, c.Keys)
					}
				}
			}
			bad := !rep.OK()
			for _, c := range checks {
				bad = bad || c.Err != "" || len(c.Mismatches) > 0
			}
			if bad {
				return errors.New("verify found problems")
			}
			if !asJSON {
				fmt.Fprintln(out, "OK")
			}
			return nil
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&restore, "restore", false, "also restore the newest backup into a scratch in-process cluster and compare")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func backupScheduleCmd() *cobra.Command {
	var addr, to, keyspaces string
	var full, incr, retainFor time.Duration
	var retainCount int
	var noArchive, off, show bool
	cmd := &cobra.Command{
		Use:   "schedule --to URL [--keyspace KS,...] [--full-every D] [--incremental-every D] [--retain-count N] [--retain-for D] | --off | --show",
		Short: "Archive every group's log continuously to a target and take backups on a schedule",
		Long: `Set the cluster's backup schedule: every group's leader ships its log to the
target continuously (the RPO is seconds; meridian_backup_archive_lag_seconds
on each node), and the metadata leader takes full and incremental backups
at the given intervals and applies the retention after each. Every node
needs the target's credentials and key in its own environment
(MERIDIAN_S3_*, MERIDIAN_BACKUP_KEY or its --backup-key-file).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := newAdminClient(addr)
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			switch {
			case show:
				var s metadata.BackupSchedule
				if err := c.do(ctx, "GET", "/v1/backup/schedule", nil, &s); err != nil {
					return err
				}
				return printJSON(out, s)
			case off:
				if err := c.do(ctx, "DELETE", "/v1/backup/schedule", nil, nil); err != nil {
					return err
				}
				fmt.Fprintln(out, "backup schedule removed: archiving stops")
				return nil
			case to == "":
				return errors.New("--to URL is required (or --off, --show)")
			}
			s := metadata.BackupSchedule{Target: to, Keyspaces: splitList(keyspaces), Archive: !noArchive,
				FullEveryMS: full.Milliseconds(), IncrementalEveryMS: incr.Milliseconds(), RetainCount: retainCount, RetainMS: retainFor.Milliseconds()}
			var got metadata.BackupSchedule
			if err := c.do(ctx, "PUT", "/v1/backup/schedule", s, &got); err != nil {
				return err
			}
			return printJSON(out, got)
		},
	}
	addrFlag(cmd, &addr)
	cmd.Flags().StringVar(&to, "to", "", "backup target: file:///path or s3://bucket/prefix")
	cmd.Flags().StringVar(&keyspaces, "keyspace", "", "comma-separated keyspaces (default: all)")
	cmd.Flags().DurationVar(&full, "full-every", 24*time.Hour, "take a full backup this often (0: never)")
	cmd.Flags().DurationVar(&incr, "incremental-every", time.Hour, "take an incremental backup this often (0: never)")
	cmd.Flags().IntVar(&retainCount, "retain-count", 0, "keep the newest N backups (0: no limit by count)")
	cmd.Flags().DurationVar(&retainFor, "retain-for", 0, "keep backups taken within this long (0: no limit by age)")
	cmd.Flags().BoolVar(&noArchive, "no-archive", false, "do not archive the logs (backups only)")
	cmd.Flags().BoolVar(&off, "off", false, "remove the schedule")
	cmd.Flags().BoolVar(&show, "show", false, "print the schedule")
	return cmd
}

func backupPruneCmd() *cobra.Command {
	var tf targetFlags
	var retainCount int
	var retainFor, grace time.Duration
	cmd := &cobra.Command{
		Use:   "prune URL --retain-count N | --retain-for D",
		Short: "Delete the backups the retention does not keep, and what only they needed (never what a kept backup needs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if retainCount <= 0 && retainFor <= 0 {
				return errors.New("give --retain-count or --retain-for")
			}
			store, err := openTargetCLI(args[0], &tf)
			if err != nil {
				return err
			}
			if _, err := store.ReadFormat(cmd.Context()); err != nil {
				return err
			}
			rep, err := backup.Prune(cmd.Context(), store, backup.Retention{KeepLast: retainCount, KeepWithin: retainFor, Grace: grace}, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kept %d backups, deleted %d (%v) and %d objects (%s)\n", len(rep.Kept), len(rep.Manifests), rep.Manifests, rep.Objects, humanBytes(rep.Bytes))
			return nil
		},
	}
	tf.add(cmd)
	cmd.Flags().IntVar(&retainCount, "retain-count", 0, "keep the newest N backups")
	cmd.Flags().DurationVar(&retainFor, "retain-for", 0, "keep backups taken within this long")
	cmd.Flags().DurationVar(&grace, "grace", backup.DefaultGrace, "objects no backup names are deleted once this old (protects backups in progress)")
	return cmd
}

func backupArchivesCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "archives",
		Short: "Show the log archives a node ships (the groups it leads) and their lag (the RPO)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var as []node.ArchiveStatus
			if err := newAdminClient(addr).do(cmd.Context(), "GET", "/v1/backup/archives", nil, &as); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEYSPACE\tSHARD\tREGION\tGROUP\tARCHIVED\tAPPLIED\tLAG\tBYTES\tGAPS\tERROR")
			for _, a := range as {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%dms\t%s\t%d\t%s\n", a.Keyspace, a.Shard, a.Region, a.Group, a.Archived, a.Applied, a.LagMS, humanBytes(a.Bytes), a.Gaps, a.Err)
			}
			return tw.Flush()
		},
	}
	addrFlag(cmd, &addr)
	return cmd
}

func restoreCmd() *cobra.Command {
	var addr, from, keyspace, at, as, id, resume, cancelID string
	var replace, yes, asJSON bool
	var tf targetFlags
	cmd := &cobra.Command{
		Use:   "restore --from URL --keyspace KS [--at TIME] [--as NEWNAME] [--replace]",
		Short: "Restore a keyspace from backups into the running cluster, as it was at any time of the window",
		Long: `Restore a keyspace as it was at --at (RFC 3339, Unix seconds or
milliseconds; default: the newest backup's cut) into the running cluster,
under --as (default: its own name). The keyspace is built hidden and appears
whole, in one step, when the restore finishes; replacing an existing keyspace
needs --replace (and confirmation, or --yes). An interrupted restore leaves
nothing visible: finish it with --resume ID or drop it with --cancel ID.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := newAdminClient(addr)
			out := cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cancelID != "" {
				if err := c.do(ctx, "DELETE", "/v1/restores/"+cancelID, nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(out, "restore %s cancelled: nothing of it remains\n", cancelID)
				return nil
			}
			if from == "" || keyspace == "" && resume == "" {
				return errors.New("--from URL and --keyspace are required")
			}
			target := as
			if target == "" {
				target = keyspace
			}
			if replace && !yes && resume == "" {
				fmt.Fprintf(out, "This replaces keyspace %q by its restored self: its current data is deleted when the restore finishes. Type the keyspace's name to go on: ", target)
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(line) != target {
					return errors.New("not confirmed")
				}
			}
			opts, err := tf.options(false)
			if err != nil {
				return err
			}
			req := node.RestoreRequest{From: from, Options: opts, Keyspace: keyspace, At: at, As: as, Replace: replace, Backup: id, Resume: resume}
			var st node.RestoreStatus
			if err := c.do(ctx, "POST", "/v1/restores", req, &st); err != nil {
				return err
			}
			return followRestore(ctx, c, out, st, asJSON)
		},
	}
	addrFlag(cmd, &addr)
	cmd.Flags().StringVar(&from, "from", "", "backup target: file:///path or s3://bucket/prefix")
	cmd.Flags().StringVar(&keyspace, "keyspace", "", "the keyspace to restore (its name in the backup)")
	cmd.Flags().StringVar(&at, "at", "", "the time to restore to (RFC 3339, Unix s or ms); default: the newest backup's cut")
	cmd.Flags().StringVar(&as, "as", "", "the name the restored keyspace takes (default: --keyspace)")
	cmd.Flags().StringVar(&id, "backup", "", "restore from this backup (default: the newest that fits --at)")
	cmd.Flags().BoolVar(&replace, "replace", false, "replace an existing keyspace of that name")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask to confirm --replace")
	cmd.Flags().StringVar(&resume, "resume", "", "finish an interrupted restore")
	cmd.Flags().StringVar(&cancelID, "cancel", "", "cancel a restore: its hidden keyspace is removed")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the final status as JSON")
	tf.add(cmd)
	return cmd
}

func followRestore(ctx context.Context, c *adminClient, out io.Writer, st node.RestoreStatus, asJSON bool) error {
	if !asJSON {
		fmt.Fprintf(out, "restore %s of %s started (cancel: meridian restore --cancel %s)\n", st.ID, st.Keyspace, st.ID)
	}
	for !st.Done {
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "\nthe restore goes on in the cluster: follow it again with its id %s, or cancel it with --cancel %s\n", st.ID, st.ID)
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if err := c.do(ctx, "GET", "/v1/restores/"+st.ID, nil, &st); err != nil {
			return err
		}
		if !asJSON {
			secs := float64(st.ElapsedMS) / 1000
			fmt.Fprintf(out, "\r%-10s groups %d/%d  %s read  %d entries replayed  %d keys  %d chunks  %.1fs   ",
				st.Phase, st.GroupsDone, st.Groups, humanBytes(st.Bytes), st.Entries, st.Keys, st.Chunks, secs)
		}
	}
	if asJSON {
		if err := printJSON(out, st); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(out)
	}
	if st.Err != "" {
		return fmt.Errorf("restore %s %s: %s (resume: --resume %s, drop: --cancel %s)", st.ID, st.Phase, st.Err, st.ID, st.ID)
	}
	if !asJSON {
		fmt.Fprintf(out, "restored %s as %s at %s from backup %s: %d keys in %.1fs\n", st.Keyspace, st.Target, st.At, st.Backup, st.Keys, float64(st.ElapsedMS)/1000)
		if st.Epoch != 0 {
			fmt.Fprintf(out, "  async: the primary at that time was at epoch %d\n", st.Epoch)
		}
		for _, cut := range st.Cuts {
			if cut.Used {
				fmt.Fprintf(out, "  shard %d %s group %d at log index %d (stamp %s)\n", cut.Shard, cut.Region, cut.Group, cut.Index, cut.Stamp)
			}
		}
	}
	return nil
}

package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/client"
	"github.com/spf13/cobra"
)

// rostersCmd keeps the school's registered classes: what a nightly export
// from the school's records would feed.
func (a *app) rostersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rosters",
		Short: "List and import registered classes with their official rosters",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the registered classes the token may see",
		Long:  "List the registered classes the token may see, with their subject and official roster.\n\n" + exitCodeHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			rs, err := c.ListRosters(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"items": nonNil(rs)})
			}
			if len(rs) == 0 {
				fmt.Fprintln(a.err, "no registered classes")
				return nil
			}
			tw := a.table()
			fmt.Fprintln(tw, "CLASS\tSUBJECT\tSTUDENTS\tROSTER")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.ClassID, r.Subject, len(r.Students), strings.Join(r.Students, ","))
			}
			return tw.Flush()
		},
	})

	var file string
	var dryRun bool
	imp := &cobra.Command{
		Use:   "import -f FILE",
		Short: "Register classes from a roster file (admin)",
		Long: `Register classes from a roster file ("-f -" reads stdin): CSV with the
columns class, subject and student, in any order.

  class,subject,student
  cs101-a,cs101,alice
  cs101-a,cs101,bob

The server checks every line first. If any is bad nothing is registered, each
bad line is printed, and the exit code is 2. Otherwise each class in the file
gets exactly the students listed for it; sending the same file again changes
nothing. --dry-run checks and reports without registering anything.

` + exitCodeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return withCode(exitUsage, errors.New("rosters import needs -f FILE (or -f - for stdin)"))
			}
			raw, err := a.readFile(file)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.ImportRosters(cmd.Context(), raw, dryRun)
			var ce *client.Error
			if errors.As(err, &ce) {
				for _, d := range ce.Details {
					if d.Line > 0 {
						fmt.Fprintf(a.err, "%s line %d: %s\n", displayName(file), d.Line, d.Message)
					} else {
						fmt.Fprintf(a.err, "%s: %s\n", displayName(file), d.Message)
					}
				}
			}
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(res)
			}
			verb := "registered"
			if res.DryRun {
				verb = "checked, nothing registered"
			}
			fmt.Fprintf(a.out, "%d classes, %d students %s\n", res.Classes, res.Students, verb)
			for _, g := range []struct {
				what string
				ids  []string
			}{{"new", res.Created}, {"changed", res.Updated}, {"unchanged", res.Unchanged}} {
				if len(g.ids) > 0 {
					fmt.Fprintf(a.out, "  %s: %s\n", g.what, strings.Join(g.ids, ", "))
				}
			}
			return nil
		},
	}
	imp.Flags().StringVarP(&file, "filename", "f", "", "the roster file (CSV); - for stdin")
	imp.Flags().BoolVar(&dryRun, "dry-run", false, "check the file and report, without registering anything")
	imp.MarkFlagFilename("filename", "csv")
	cmd.AddCommand(imp)
	return cmd
}

// tokenCmd gives users tokens, for scripts that set teachers up.
func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Issue API tokens (admin)",
		Args:  cobra.NoArgs,
	}
	var description string
	var expires time.Duration
	issue := &cobra.Command{
		Use:   "issue USER",
		Short: "Issue a new token for a user and print it",
		Long: `Issue a new token for a user and print it on its own line (with -o json, the
token and its id, for revoking it later). The token is shown this once: the
server keeps only its SHA-256.

` + exitCodeHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if expires < 0 {
				return withCode(exitUsage, fmt.Errorf("--expires %s: want a positive duration, or 0 for none", expires))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			tok, err := c.IssueToken(cmd.Context(), args[0], description, expires)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(tok)
			}
			fmt.Fprintln(a.out, tok.Secret)
			return nil
		},
	}
	issue.Flags().StringVar(&description, "description", "issued with homeroomctl", "what the token is for, shown when tokens are listed")
	issue.Flags().DurationVar(&expires, "expires", 0, "how long the token is valid, e.g. 720h; 0 for no expiry")
	cmd.AddCommand(issue)
	return cmd
}

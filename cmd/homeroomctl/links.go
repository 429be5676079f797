package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"time"

	"github.com/homeroom/homeroom/pkg/client"
	"github.com/spf13/cobra"
)

// linksCmd issues the students' personal sign-in links, for a script that
// mails them or prints a sheet, and a teacher's own links to help.
func (a *app) linksCmd() *cobra.Command {
	var students []string
	var teacher bool
	cmd := &cobra.Command{
		Use:   "links CLASS",
		Short: "Issue the students' personal sign-in links of a class that is Up",
		Long: `Issue a personal sign-in link for every student of a class that is Up, or for
the students named with --student, and print them: a table (student, expiry,
link), CSV with -o csv (student,holder,url,expiresAt) or JSON with -o json.

A link signs its student in to their own sandbox. It is shown only now: the
server keeps only its hash. Issuing a student's link again ends their earlier
link and signs them out of every browser that used it; give them the new one.
Links end when the class goes Down or runs out of time, at the latest after
12 hours.

With --teacher the links are your own, to open those students' sandboxes and
help them (each opening is audited); the students' links stay as they are.

A class that is not Up, or a student who is not in the class, is refused
(exit 2); each such student is named.

` + exitCodeHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClasses,
		Annotations:       map[string]string{outputsAnnotation: "table,csv,json"},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			links, err := c.IssueLinks(cmd.Context(), args[0], students, teacher)
			var ce *client.Error
			if errors.As(err, &ce) {
				for _, d := range ce.Details {
					if d.Value != "" {
						fmt.Fprintf(a.err, "student %q: %s\n", d.Value, d.Message)
					} else {
						fmt.Fprintln(a.err, d.Message)
					}
				}
			}
			if err != nil {
				return err
			}
			if err := a.printLinks(links); err != nil {
				return err
			}
			switch {
			case teacher:
				fmt.Fprintf(a.err, "%d %s of yours to open these sandboxes; the students' own links are unchanged\n", len(links), plural(len(links), "link"))
			default:
				fmt.Fprintf(a.err, "%d %s issued, shown only now; any earlier link of these students no longer signs in\n", len(links), plural(len(links), "link"))
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&students, "student", nil, "only this student (repeat it, or separate by commas); default: every student of the class")
	cmd.Flags().BoolVar(&teacher, "teacher", false, "issue your own links to open the students' sandboxes to help, leaving theirs as they are")
	return cmd
}

func (a *app) printLinks(links []client.Link) error {
	switch a.output {
	case "json":
		return a.printJSON(map[string]any{"items": nonNil(links)})
	case "csv":
		w := csv.NewWriter(a.out)
		w.Write([]string{"student", "holder", "url", "expiresAt"})
		for _, l := range links {
			w.Write([]string{l.Student, l.Holder, l.URL, l.ExpiresAt.UTC().Format(time.RFC3339)})
		}
		w.Flush()
		return w.Error()
	}
	tw := a.table()
	fmt.Fprintln(tw, "STUDENT\tEXPIRES\tURL")
	for _, l := range links {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Student, l.ExpiresAt.UTC().Format(time.RFC3339), l.URL)
	}
	return tw.Flush()
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/homeroom/homeroom/pkg/client"
	"github.com/spf13/cobra"
)

// linksCmd issues the students' personal sign-in links, for a script that
// mails them or prints a sheet, and a teacher's own links to help.
func (a *app) linksCmd() *cobra.Command {
	var students []string
	var teacher, list bool
	cmd := &cobra.Command{
		Use:   "links CLASS",
		Short: "Issue the students' personal sign-in links of a class that is Up, or list the live ones",
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

With --list nothing is issued: it prints the links that can still sign
someone in (of the students named with --student, or all; a class that is
not Up has none), without the links themselves: a table (student, holder,
issued, issued by, expiry), CSV with -o csv
(student,holder,issuedAt,issuedBy,expiresAt) or JSON with -o json. The holder
is the student for their own link, or the teacher a link to help was issued
to. Issuing links again signs out only the students listed with their own.

` + exitCodeHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClasses,
		Annotations:       map[string]string{outputsAnnotation: "table,csv,json"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				return a.listLinks(cmd, args[0], students, teacher)
			}
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
	cmd.Flags().BoolVar(&list, "list", false, "issue nothing: list the links that can still sign someone in, without the links themselves")
	return cmd
}

// listLinks prints the live links of class, of students when named.
func (a *app) listLinks(cmd *cobra.Command, class string, students []string, teacher bool) error {
	if teacher {
		return withCode(exitUsage, errors.New("--list lists the students' links and teachers' alike; leave out --teacher"))
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	live, err := c.ListLinks(cmd.Context(), class)
	if err != nil {
		return err
	}
	if len(students) > 0 {
		live = slices.DeleteFunc(live, func(l client.LiveLink) bool { return !slices.Contains(students, l.Student) })
	}
	switch a.output {
	case "json":
		return a.printJSON(map[string]any{"items": nonNil(live)})
	case "csv":
		w := csv.NewWriter(a.out)
		w.Write([]string{"student", "holder", "issuedAt", "issuedBy", "expiresAt"})
		for _, l := range live {
			w.Write([]string{l.Student, l.Holder, l.IssuedAt.UTC().Format(time.RFC3339), l.IssuedBy, l.ExpiresAt.UTC().Format(time.RFC3339)})
		}
		w.Flush()
		return w.Error()
	}
	if len(live) == 0 {
		fmt.Fprintln(a.err, "no live links: none issued in this Up, or the class is not Up")
		return nil
	}
	tw := a.table()
	fmt.Fprintln(tw, "STUDENT\tHOLDER\tISSUED\tISSUED BY\tEXPIRES")
	for _, l := range live {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Student, l.Holder, l.IssuedAt.UTC().Format(time.RFC3339), l.IssuedBy, l.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
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

package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/homeroom/homeroom/pkg/client"
	"github.com/spf13/cobra"
)

// feedbackWidth is how much of a grader's feedback the table shows: its
// first line, cut to this many characters.
const feedbackWidth = 60

// gradesCmd prints the grades of a run: a table for a teacher, CSV for a
// gradebook import, JSON for a script.
func (a *app) gradesCmd() *cobra.Command {
	var run string
	cmd := &cobra.Command{
		Use:   "grades CLASS",
		Short: "Show the grades of a class's last Down run, or of --run",
		Long: `Show the grades of a class's last Down run, or of the run named with --run (see:
homeroomctl runs CLASS). A run is graded after its Down completed when the
policy names a grader for the class's template; each student the run collected
is pending, graded, or "grading failed" (the grader timed out, crashed, or wrote
no valid grade).

The table has each student's state, score (points of the maximum) and the first
line of the grader's feedback, or why grading failed. -o csv prints
student,score,max for a gradebook import (score and max empty for a student
without a grade); -o json the whole gradebook with every test's points and
message.

A class with no completed Down run, or a run that was never graded, is refused
(exit 2); homeroomctl regrade grades a run again, or for the first time.

` + exitCodeHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClasses,
		Annotations:       map[string]string{outputsAnnotation: "table,csv,json"},
		RunE: func(cmd *cobra.Command, args []string) error {
			class := args[0]
			c, err := a.client()
			if err != nil {
				return err
			}
			run, err := gradedRun(cmd.Context(), c, class, run)
			if err != nil {
				return err
			}
			if a.output == "csv" {
				return notGradedHint(c.GradesCSV(cmd.Context(), class, run, a.out), class, run)
			}
			book, err := c.Grades(cmd.Context(), class, run)
			if err != nil {
				return notGradedHint(err, class, run)
			}
			if a.json() {
				return a.printJSON(book)
			}
			return a.printGrades(book)
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "the run (default: the class's last Down run; see: homeroomctl runs CLASS)")
	return cmd
}

// regradeCmd starts the next grading attempt of a run.
func (a *app) regradeCmd() *cobra.Command {
	var run string
	cmd := &cobra.Command{
		Use:   "regrade CLASS",
		Short: "Grade a class's last Down run again, or --run, with the policy's grader as it is now",
		Long: `Grade a class's last Down run again, or the run named with --run, and print the
new attempt's number. Every student the run collected is graded again by the
grader the policy names now for the run's template: after a grader was fixed,
or added to a template that had none. The grades of earlier attempts are kept.
Graders run in the controller; homeroomctl grades shows the grades arrive.

A run whose template has no grader (no_grader), an autosave or a run that
collected nobody (not_gradable) is refused (exit 2).

` + exitCodeHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClasses,
		RunE: func(cmd *cobra.Command, args []string) error {
			class := args[0]
			c, err := a.client()
			if err != nil {
				return err
			}
			run, err := gradedRun(cmd.Context(), c, class, run)
			if err != nil {
				return err
			}
			book, err := c.Regrade(cmd.Context(), class, run)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(book)
			}
			fmt.Fprintf(a.out, "run %s of %s: grading attempt %d started for %d %s\n", book.RunID, class, book.Attempt, len(book.Items), plural(len(book.Items), "student"))
			fmt.Fprintf(a.err, "see: homeroomctl grades %s --run %s\n", class, book.RunID)
			return nil
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "the run (default: the class's last Down run; see: homeroomctl runs CLASS)")
	return cmd
}

// gradedRun is the run grades and regrade act on: run when given, else
// the class's last Down run once it completed (the one the controller
// grades and the class's Graded condition speaks of).
func gradedRun(ctx context.Context, c *client.Client, class, run string) (string, error) {
	if run != "" {
		return run, nil
	}
	cl, err := c.GetClass(ctx, class)
	if err != nil {
		return "", err
	}
	switch r := cl.Status.Run; {
	case r == nil:
		return "", withCode(exitRefused, fmt.Errorf("class %s has no completed run: it has not been taken Down (see: homeroomctl runs %s)", class, class))
	case r.CompletedAt == nil:
		return "", withCode(exitRefused, fmt.Errorf("class %s has no completed run yet: its Down (run %s) is still collecting; --run names an earlier run (see: homeroomctl runs %s)", class, r.ID, class))
	default:
		return r.ID, nil
	}
}

// notGradedHint adds to a not_graded refusal how to grade the run.
func notGradedHint(err error, class, run string) error {
	var ae *client.Error
	if errors.As(err, &ae) && ae.Code == "not_graded" {
		return fmt.Errorf("%w; homeroomctl regrade %s --run %s grades it once the policy has a grader for its template", err, class, run)
	}
	return err
}

func (a *app) printGrades(book *client.Gradebook) error {
	counts := map[string]int{}
	tw := a.table()
	fmt.Fprintln(tw, "STUDENT\tSTATE\tSCORE\tFEEDBACK")
	for _, it := range book.Items {
		counts[it.State]++
		score, text := "-", it.Feedback
		if it.State == client.GradeGraded && it.Score != nil && it.MaxScore != nil {
			score = points(*it.Score) + "/" + points(*it.MaxScore)
		}
		if it.State == client.GradeFailed {
			text = it.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", it.Student, it.State, score, dash(firstLine(text, feedbackWidth)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.err, "run %s of %s, attempt %d: %d graded, %d grading failed, %d pending\n", book.RunID, book.ClassID, book.Attempt,
		counts[client.GradeGraded], counts[client.GradeFailed], counts[client.GradePending])
	return nil
}

func points(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// firstLine is the first non-blank line of s cut to max characters, as a
// table cell. A grader's text may run the student's code and hold anything:
// control characters (a terminal's escape sequences among them) become "?"
// and other white space a space, so that neither the terminal nor the
// table's columns act on them.
func firstLine(s string, max int) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	rs := []rune(strings.TrimSpace(line))
	for i, r := range rs {
		switch {
		case unicode.IsSpace(r):
			rs[i] = ' '
		case !unicode.IsPrint(r):
			rs[i] = '?'
		}
	}
	if len(rs) > max {
		return string(rs[:max-1]) + "…"
	}
	return string(rs)
}

package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/homeroom/homeroom/pkg/api"
)

// studentCmd groups what a teacher asks for one student: of an Up class,
// or a late hand-in of a Down class.
func (a *app) studentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "student",
		Short: "Act for one student: restart their sandbox, collect their work now, give extra time, or a late hand-in after a Down",
	}
	cmd.AddCommand(a.studentExtendCmd(), a.studentLateCmd(),
		a.studentActionCmd("restart", "Make one student's sandbox again from its template, keeping their work",
			"restarted: the controller makes the sandbox again, the student's work volumes kept"),
		a.studentActionCmd("collect", "Collect one student's work now, as a run of kind student (an early hand-in)",
			"asked: the controller collects the work as a run of its own; homeroomctl runs CLASS lists it"),
	)
	return cmd
}

func (a *app) studentActionCmd(verb, short, done string) *cobra.Command {
	return &cobra.Command{
		Use:               verb + " CLASS STUDENT",
		Short:             short,
		Long:              short + ".\n\nThe class must be Up and the student on its roster; nothing is written otherwise.\n\n" + exitCodeHelp,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: a.completeClasses,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cl, err := c.StudentAction(cmd.Context(), args[0], args[1], verb, nil)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(cl)
			}
			fmt.Fprintf(a.out, "student %s of class %s %s\n", args[1], args[0], done)
			return nil
		},
	}
}

func (a *app) studentExtendCmd() *cobra.Command {
	return a.studentUntilCmd("extend", "Give one student extra time: their sandbox stays Up past the class's Down, and is collected at its end",
		`Give one student extra time: their sandbox stays Up past the class's Down until then,
and is collected at its end, in the Down's run. Asked while the class is Up, or while the
student's extra time runs, to move it. At most 24 hours ahead.`,
		"extra time", func(d api.StudentDesire) *time.Time { return d.Until })
}

func (a *app) studentLateCmd() *cobra.Command {
	return a.studentUntilCmd("late", "Give one student of a Down class a late hand-in: their sandbox back with their work, collected at its end",
		`Give one student of a Down class a late hand-in: their sandbox is made again with their
last collected work in it until then, they sign in with a new link (homeroomctl links), and it is
collected at its end as a run of kind late (graded like a Down's) and removed. Asked again
while it runs, it moves the end. At most 24 hours ahead.`,
		"a late hand-in", func(d api.StudentDesire) *time.Time { return d.LateUntil })
}

// studentUntilCmd is a request about one student that runs until a time:
// extra time or a late hand-in.
func (a *app) studentUntilCmd(verb, short, long, what string, end func(api.StudentDesire) *time.Time) *cobra.Command {
	var minutes int
	var until string
	cmd := &cobra.Command{
		Use:               verb + " CLASS STUDENT (--minutes N | --until TIME)",
		Short:             short,
		Long:              long + "\n\n" + exitCodeHelp,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: a.completeClasses,
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{}
			switch {
			case (minutes == 0) == (until == ""):
				return withCode(exitUsage, errors.New("give --minutes or --until"))
			case minutes != 0:
				body["minutes"] = minutes
			default:
				t, err := time.Parse(time.RFC3339, until)
				if err != nil {
					return withCode(exitUsage, fmt.Errorf("--until %q: an RFC 3339 time such as 2026-12-01T11:30:00+01:00", until))
				}
				body["until"] = t
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			cl, err := c.StudentAction(cmd.Context(), args[0], args[1], verb, body)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(cl)
			}
			fmt.Fprintf(a.out, "student %s of class %s has %s until %s\n", args[1], args[0], what, end(cl.PerStudent[args[1]]).Local().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().IntVar(&minutes, "minutes", 0, "from now, in minutes")
	cmd.Flags().StringVar(&until, "until", "", "until this RFC 3339 time")
	return cmd
}

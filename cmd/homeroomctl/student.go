package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// studentCmd groups what a teacher asks for one student of an Up class.
func (a *app) studentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "student",
		Short: "Act for one student of an Up class: restart their sandbox, collect their work now",
	}
	cmd.AddCommand(
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
			cl, err := c.StudentAction(cmd.Context(), args[0], args[1], verb)
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

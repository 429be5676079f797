package main

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/client"
)

func (a *app) scheduleCmd() *cobra.Command {
	var file string
	var clear bool
	var days int
	cmd := &cobra.Command{
		Use:   "schedule CLASS [-f FILE | --clear]",
		Short: "Show a class's timetable and its next sessions, or set it",
		Long: `Show a class's timetable and its next sessions in the class's time zone, with
when the controller will start bringing the class Up for each (readyBeforeSeconds
plus how long its last Ups took).

With -f, set the timetable from a YAML or JSON file ("-" reads stdin):

  timezone: Europe/Berlin
  weekly:
    - {days: [mon, wed], start: "09:00", end: "10:30"}
  sessions:
    - {start: 2026-12-05T09:00:00+01:00, end: 2026-12-05T12:00:00+01:00}
  except: [2026-12-23]
  readyBeforeSeconds: 300

With --clear, remove it: the class then stays as a teacher leaves it. The class
is written only if no one changed it since it was read.

` + exitCodeHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClasses,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" && clear {
				return withCode(exitUsage, errors.New("give -f or --clear, not both"))
			}
			if days < 1 || days > 31 {
				return withCode(exitUsage, fmt.Errorf("--days %d: give 1 to 31", days))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			cl, err := c.GetClass(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if file != "" || clear {
				var sch *api.Schedule
				if file != "" {
					raw, err := a.readFile(file)
					if err != nil {
						return err
					}
					if sch, err = parseSchedule(raw); err != nil {
						return withCode(exitUsage, fmt.Errorf("%s: %w", displayName(file), err))
					}
				}
				spec := cl.Spec
				spec.Schedule = sch
				if cl, err = c.PutClassIfVersion(cmd.Context(), cl.ID, spec, cl.Version); err != nil {
					if client.IsPreconditionFailed(err) {
						return withCode(exitRefused, fmt.Errorf("class %s changed while its timetable was being set, so nothing was written: try again", args[0]))
					}
					return err
				}
			}
			v, err := c.GetSchedule(cmd.Context(), cl.ID, days)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(v)
			}
			return a.printSchedule(cl, v, days)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the timetable, YAML or JSON; - for stdin")
	cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the class's timetable")
	cmd.Flags().IntVar(&days, "days", 7, "how many days of sessions to show")
	return cmd
}

// parseSchedule reads a timetable, refusing unknown fields. The server
// validates what it means.
func parseSchedule(raw []byte) (*api.Schedule, error) {
	var s api.Schedule
	dec := yaml.NewDecoder(bytes.NewReader(raw)) // YAML reads JSON too
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

func (a *app) printSchedule(cl *client.Class, v *client.ScheduleView, days int) error {
	if v.Schedule == nil {
		fmt.Fprintf(a.out, "class %s has no timetable: it is Up or Down as its teachers set it.\n", cl.ID)
		return nil
	}
	loc, err := time.LoadLocation(v.Schedule.Timezone)
	if err != nil {
		loc = time.UTC
	}
	fmt.Fprintf(a.out, "class %s, time zone %s: ready %s before each session; brought Up %s before (its last Ups: %s).\n",
		cl.ID, v.Schedule.Timezone, v.Schedule.ReadyBefore(), time.Duration(v.LeadSeconds*float64(time.Second)).Round(time.Second), upsHuman(cl.Status.UpSeconds))
	if len(v.Sessions) == 0 {
		fmt.Fprintf(a.out, "no session in the next %d days.\n", days)
		return nil
	}
	fmt.Fprintln(a.out)
	tw := a.table()
	fmt.Fprintln(tw, "DAY\tSTART\tEND\tUP FROM\t")
	for _, s := range v.Sessions {
		note := ""
		if s.Now {
			note = "now"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Start.In(loc).Format("Mon 2006-01-02"), s.Start.In(loc).Format("15:04"),
			s.End.In(loc).Format("15:04"), s.UpFrom.In(loc).Format("15:04:05"), note)
	}
	return tw.Flush()
}

func upsHuman(ups []float64) string {
	if len(ups) == 0 {
		return "none yet, estimated from its size"
	}
	var b bytes.Buffer
	for i, u := range ups {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%.0f s", u)
	}
	return b.String()
}

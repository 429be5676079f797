package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/timetable"
)

type ttOptions struct {
	students int
	ahead    time.Duration
}

type ttResult struct {
	o ttOptions
	// bell is the session's start; upFrom when the controller was to
	// start bringing the class Up; ready when the bench saw it Up.
	bell, set, ready time.Time
	lead             time.Duration
	took             time.Duration
}

// bellLateness schedules one session for a class of o.tt.students, o.tt.ahead
// from now, with the default readyBeforeSeconds, and measures when the class
// is ready relative to the session's start: the timetable's promise is
// ready at or before the bell.
func bellLateness(ctx context.Context, o options) (*ttResult, error) {
	begin := time.Now()
	sys, err := startSystem(ctx, o, sysConfig{controller: true, policy: benchPolicy})
	if err != nil {
		return nil, err
	}
	defer sys.stop()
	n := o.tt.students
	id := fmt.Sprintf("bench-bell-%d", time.Now().Unix()%100000)
	students := roster(n)
	bell := time.Now().Add(o.tt.ahead).Truncate(time.Second)
	sch := &api.Schedule{Timezone: "UTC", Sessions: []api.Session{{Start: bell, End: bell.Add(10 * time.Minute)}}}
	set := time.Now()
	if _, err := sys.api.call(ctx, http.MethodPut, "/api/v1/classes/"+id, map[string]any{
		"subject": "bench", "template": "sandbox", "students": students, "ttlSeconds": 7200, "schedule": sch,
	}, nil); err != nil {
		return nil, err
	}
	defer sys.api.deleteClass(context.WithoutCancel(ctx), id)
	r := &ttResult{o: o.tt, bell: bell, set: set, lead: timetable.Lead(sch, nil, n)}
	if _, err := sys.api.follow(ctx, id, set, func(cl *api.Class) bool {
		return cl.Status.Phase == api.PhaseUp && cl.Status.ObservedGeneration == cl.Generation
	}); err != nil {
		return nil, fmt.Errorf("waiting for the class at its bell: %w", err)
	}
	r.ready = time.Now()
	// Nothing was written into the sandboxes: each is collected empty.
	if _, err := sys.api.downAndWait(ctx, id, n, 0); err != nil {
		return nil, fmt.Errorf("down: %w", err)
	}
	r.took = time.Since(begin)
	return r, nil
}

func (r *ttResult) report(w io.Writer, machine string) {
	late := r.ready.Sub(r.bell)
	fmt.Fprintf(w, "\nA class of %d with a session starting %s after its timetable was set (%s)\n\n", r.o.students, r.bell.Sub(r.set).Round(time.Second), machine)
	fmt.Fprintf(w, "  lead (readyBeforeSeconds and the estimated Up): %s\n", r.lead)
	fmt.Fprintf(w, "  ready %.1f s after the timetable was set; lateness at the bell: %+.1f s\n", r.ready.Sub(r.set).Seconds(), late.Seconds())
	fmt.Fprintf(w, "The timetable part took %s.\n", r.took.Round(time.Second))
	fmt.Fprintln(w, `
The bench sets a timetable with one session a little ahead and the default readyBeforeSeconds,
and follows the class by long poll until it is Up with every student running; lateness is that
moment less the session's start (negative: early). Nobody asks for Up: the controller does.`)
	fmt.Fprintln(w, "\nTargets:")
	verdict := "PASS"
	if late > 0 {
		verdict = "MISS"
	}
	fmt.Fprintf(w, "  %s  a class of %d ready at or before its bell: lateness %+.1f s\n", verdict, r.o.students, late.Seconds())
}

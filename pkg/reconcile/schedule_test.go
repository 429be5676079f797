package reconcile_test

import (
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
)

// TestTheTimetableBringsAClassUpAndDown runs a lesson at 10:00–11:00 UTC on
// the fake clock (which starts at 09:00): the class is Up before its bell,
// Down with its work collected after its end, and a teacher's Down in the
// lesson holds until the next lesson.
func TestTheTimetableBringsAClassUpAndDown(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseDown, "alice", "bob")
	lesson := api.Session{Start: clockStart.Add(time.Hour), End: clockStart.Add(2 * time.Hour)}
	next := api.Session{Start: clockStart.Add(25 * time.Hour), End: clockStart.Add(26 * time.Hour)}
	since := clockStart.Add(-time.Hour)
	e.store.edit(classID, func(c *api.Class) {
		c.Spec.Schedule = &api.Schedule{Timezone: "UTC", Sessions: []api.Session{lesson, next}}
		c.ScheduledSince, c.DesiredAt = &since, &since
	})
	// 09:00: an hour early, nothing to do; woken when the window opens
	// (5 min readyBefore and an estimated 20.6 s Up, in whole seconds,
	// before 10:00).
	res := e.mustConverge()
	if c := e.class(); c.DesiredPhase != api.PhaseDown {
		t.Fatalf("an hour before: desired %s", c.DesiredPhase)
	}
	open := lesson.Start.Add(-5*time.Minute - 20*time.Second)
	if want := open.Sub(e.now()); res.RequeueAfter <= 0 || res.RequeueAfter > want {
		t.Fatalf("RequeueAfter %s, want at most %s (the window's opening)", res.RequeueAfter, want)
	}
	e.advance(open.Sub(e.now()))
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	c := e.class()
	if c.DesiredPhase != api.PhaseUp || c.Status.Phase != api.PhaseUp || c.Bell == nil || !c.Bell.Equal(lesson.Start) {
		t.Fatalf("at the window: desired %s phase %s bell %v, want Up for %s", c.DesiredPhase, c.Status.Phase, c.Bell, lesson.Start)
	}
	if !e.now().Before(lesson.Start) {
		t.Fatalf("ready at %s, not before the bell %s", e.now(), lesson.Start)
	}
	if len(c.Status.UpSeconds) != 1 || c.Status.UpSeconds[0] <= 0 {
		t.Errorf("upSeconds %v, want the Up's duration", c.Status.UpSeconds)
	}
	// A teacher takes the class Down in the lesson: it stays Down.
	e.advance(lesson.Start.Add(10 * time.Minute).Sub(e.now()))
	e.store.edit(classID, func(c *api.Class) {
		at := e.now()
		c.DesiredPhase, c.DesiredAt = api.PhaseDown, &at
	})
	e.mustConverge()
	e.advance(20 * time.Minute)
	e.mustConverge()
	if c := e.class(); c.DesiredPhase != api.PhaseDown || c.Status.Phase != api.PhaseDown {
		t.Fatalf("after the teacher's Down: desired %s phase %s", c.DesiredPhase, c.Status.Phase)
	}
	for _, s := range []string{"alice", "bob"} {
		e.checkCollected(t, e.class(), s)
	}
	// A teacher's Up after the lesson; the next lesson's end takes it Down.
	e.advance(lesson.End.Add(time.Hour).Sub(e.now()))
	e.store.edit(classID, func(c *api.Class) {
		at := e.now()
		c.DesiredPhase, c.DesiredAt, c.UpSince = api.PhaseUp, &at, &at
	})
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	if c := e.class(); c.DesiredPhase != api.PhaseUp || c.Status.Phase != api.PhaseUp {
		t.Fatalf("the teacher's Up between lessons: desired %s phase %s", c.DesiredPhase, c.Status.Phase)
	}
	e.advance(next.End.Add(time.Second).Sub(e.now()))
	e.mustConverge()
	c = e.class()
	if c.DesiredPhase != api.PhaseDown || c.DownReason != api.ReasonScheduled || c.Status.Phase != api.PhaseDown {
		t.Fatalf("after the next lesson: desired %s (%s) phase %s, want Down (Scheduled)", c.DesiredPhase, c.DownReason, c.Status.Phase)
	}
	for _, s := range []string{"alice", "bob"} {
		e.checkCollected(t, c, s)
	}
}

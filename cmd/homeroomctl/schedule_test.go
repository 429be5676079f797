package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestScheduleSetShowClearAndRoundTrip: a timetable set from a file shows its
// next sessions in the class's zone, survives get -o yaml | apply, and bad
// timetables are refused with the server's reason and nothing written.
func TestScheduleSetShowClearAndRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.runStdin(classYAML, "apply", "-f", "-").want(t, exitOK, "created")
	// Every day, so that the next week always holds sessions.
	file := filepath.Join(t.TempDir(), "timetable.yaml")
	os.WriteFile(file, []byte("timezone: Europe/Berlin\nweekly:\n  - {days: [mon, tue, wed, thu, fri, sat, sun], start: \"09:00\", end: \"10:30\"}\nreadyBeforeSeconds: 600\n"), 0o644)
	r := e.run("schedule", "cs101-a", "-f", file)
	r.want(t, exitOK, "time zone Europe/Berlin", "ready 10m0s before each session", "DAY", "09:00", "10:30")
	if n := strings.Count(r.out, "09:00 "); n < 7 {
		t.Errorf("%d sessions shown, want a week's:\n%s", n, r.out)
	}
	cl, err := e.store.Get(context.Background(), "cs101-a")
	if err != nil || cl.Spec.Schedule == nil || cl.Spec.Schedule.Timezone != "Europe/Berlin" || cl.Spec.TTLSeconds != 7200 || len(cl.Spec.Students) != 3 {
		t.Fatalf("stored: %+v %v", cl, err)
	}
	// get -o yaml | apply keeps the timetable and writes nothing.
	got := e.run("get", "cs101-a", "-o", "yaml")
	got.want(t, exitOK, "schedule:", "timezone: Europe/Berlin", "scheduledSince:")
	e.runStdin(got.out, "apply", "-f", "-").want(t, exitOK, "configured (generation "+strconv.FormatInt(cl.Generation, 10)+")")
	if after, _ := e.store.Get(context.Background(), "cs101-a"); after.Spec.Schedule == nil || after.Generation != cl.Generation {
		t.Fatalf("apply of get's output changed the timetable: %+v", after.Spec.Schedule)
	}
	// JSON output for scripts: the sessions with when the Up starts.
	j := e.run("schedule", "cs101-a", "-o", "json")
	j.want(t, exitOK, `"upFrom"`, `"leadSeconds"`)

	// Bad timetables: the server's reason (exit 2), or the file's (exit 1); nothing written.
	os.WriteFile(file, []byte("timezone: Mars/Olympus\n"), 0o644)
	e.run("schedule", "cs101-a", "-f", file).want(t, exitRefused, "invalid_schedule", "Mars/Olympus")
	os.WriteFile(file, []byte("timezone: UTC\nweekly: [{days: [mon], start: \"10:30\", end: \"09:00\"}]\n"), 0o644)
	e.run("schedule", "cs101-a", "-f", file).want(t, exitRefused, "not after start")
	os.WriteFile(file, []byte("timezone: UTC\nlessons: []\n"), 0o644)
	e.run("schedule", "cs101-a", "-f", file).want(t, exitUsage, "lessons")
	if after, _ := e.store.Get(context.Background(), "cs101-a"); after.Spec.Schedule.Timezone != "Europe/Berlin" || after.Generation != cl.Generation {
		t.Fatalf("a refused timetable was written: %+v", after.Spec.Schedule)
	}

	e.run("schedule", "cs101-a", "--clear").want(t, exitOK, "has no timetable")
	if after, _ := e.store.Get(context.Background(), "cs101-a"); after.Spec.Schedule != nil || after.ScheduledSince != nil {
		t.Fatalf("after --clear: %+v since %v", after.Spec.Schedule, after.ScheduledSince)
	}
}

// TestStudentCommands: restart, collect and extend one student, and give
// one a late hand-in after the Down, recorded as
// the class's desired state; refusals say why, exit 1 or 2.
func TestStudentCommands(t *testing.T) {
	e := newEnv(t)
	e.runStdin(classYAML, "apply", "-f", "-").want(t, exitOK, "created")
	e.run("student", "restart", "cs101-a", "alice").want(t, exitRefused, "class_not_up")
	e.run("up", "cs101-a").want(t, exitOK)
	e.run("student", "restart", "cs101-a", "alice").want(t, exitOK, "student alice of class cs101-a restarted")
	e.run("student", "collect", "cs101-a", "bob").want(t, exitOK, "student bob of class cs101-a asked")
	e.run("student", "extend", "cs101-a", "carol", "--minutes", "30").want(t, exitOK, "student carol of class cs101-a has extra time until")
	e.run("student", "extend", "cs101-a", "carol").want(t, exitUsage, "--minutes or --until")
	e.run("student", "extend", "cs101-a", "carol", "--until", "soon").want(t, exitUsage, "RFC 3339")
	e.run("student", "collect", "cs101-a", "mallory").want(t, exitRefused, "not_in_class")
	cl, err := e.store.Get(context.Background(), "cs101-a")
	if err != nil {
		t.Fatal(err)
	}
	if cl.PerStudent["alice"].RestartAt == nil || cl.PerStudent["bob"].CollectAt == nil || cl.PerStudent["carol"].Until == nil || len(cl.PerStudent) != 3 {
		t.Errorf("perStudent %+v", cl.PerStudent)
	}
	e.run("student", "late", "cs101-a", "bob", "--minutes", "20").want(t, exitRefused, "class_up")
	e.run("down", "cs101-a").want(t, exitOK)
	e.run("student", "late", "cs101-a", "bob", "--minutes", "20").want(t, exitOK, "student bob of class cs101-a has a late hand-in until")
	if cl, err = e.store.Get(context.Background(), "cs101-a"); err != nil || cl.PerStudent["bob"].LateUntil == nil {
		t.Errorf("bob's late hand-in: %+v %v", cl.PerStudent["bob"], err)
	}
}

package timetable

import (
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// berlin: lessons on Monday and Wednesday, 09:00 to 10:30 in Berlin.
func berlin() *api.Schedule {
	return &api.Schedule{Timezone: "Europe/Berlin", Weekly: []api.WeeklySession{{Days: []string{"mon", "wed"}, Start: "09:00", End: "10:30"}}}
}

func TestWeeklyLessonsKeepTheirWallClockTimeAcrossDaylightSaving(t *testing.T) {
	// Berlin moves its clocks forward on Sunday 2027-03-28.
	got := Sessions(berlin(), at(t, "2027-03-22T00:00:00Z"), at(t, "2027-03-30T00:00:00Z"))
	want := []string{"2027-03-22T08:00:00Z", "2027-03-24T08:00:00Z", "2027-03-29T07:00:00Z"}
	if len(got) != len(want) {
		t.Fatalf("sessions: %v, want starts %v", got, want)
	}
	for i, w := range want {
		if !got[i].Start.Equal(at(t, w)) || got[i].End.Sub(got[i].Start) != 90*time.Minute {
			t.Errorf("session %d: %s–%s, want a 90 min lesson from %s", i, got[i].Start.UTC(), got[i].End.UTC(), w)
		}
	}
	// The first lesson after the change opens its window at 06:55 UTC, an
	// hour earlier than the winter's: a fixed offset would open it late.
	lead := 5 * time.Minute
	lastDown := at(t, "2027-03-24T09:30:00Z")
	if ev, ok := Decide(berlin(), lead, lastDown, time.Time{}, time.Time{}, at(t, "2027-03-29T06:54:59Z")); ok {
		t.Fatalf("before the window: %+v", ev)
	}
	ev, ok := Decide(berlin(), lead, lastDown, time.Time{}, time.Time{}, at(t, "2027-03-29T06:55:00Z"))
	if !ok || ev.Phase != api.PhaseUp || !ev.Bell.Equal(at(t, "2027-03-29T07:00:00Z")) {
		t.Fatalf("at the window: %+v %v, want Up for the 07:00 UTC bell", ev, ok)
	}
	if next := Next(berlin(), lead, at(t, "2027-03-27T12:00:00Z")); !next.Equal(at(t, "2027-03-29T06:55:00Z")) {
		t.Errorf("next event after Saturday: %s", next)
	}
}

func TestAMissedStartStartsAtOnceAndAnEndedSessionIsNotStarted(t *testing.T) {
	lead := 5 * time.Minute
	lastDown := at(t, "2026-11-25T09:30:00Z") // Wednesday's lesson ended
	// The controller was down from 07:00 to 08:20 UTC on Monday 30th.
	ev, ok := Decide(berlin(), lead, lastDown, time.Time{}, time.Time{}, at(t, "2026-11-30T08:20:00Z"))
	if !ok || ev.Phase != api.PhaseUp || !ev.Bell.Equal(at(t, "2026-11-30T08:00:00Z")) {
		t.Fatalf("late: %+v %v, want Up for the 08:00 UTC bell at once", ev, ok)
	}
	// Down until 09:45 UTC: the lesson ended at 09:30.
	ev, ok = Decide(berlin(), lead, lastDown, time.Time{}, time.Time{}, at(t, "2026-11-30T09:45:00Z"))
	if !ok || ev.Phase != api.PhaseDown || !ev.At.Equal(at(t, "2026-11-30T09:30:00Z")) {
		t.Fatalf("after the end: %+v %v, want the 09:30 Down, not an Up", ev, ok)
	}
}

func TestATeachersActionHoldsUntilTheScheduleNextChanges(t *testing.T) {
	lead := 5 * time.Minute
	up := at(t, "2026-11-30T07:55:00Z")
	// The schedule brought the class Up; a teacher takes it Down at 08:10.
	teacherDown := at(t, "2026-11-30T08:10:00Z")
	if ev, ok := Decide(berlin(), lead, teacherDown, time.Time{}, time.Time{}, at(t, "2026-11-30T08:20:00Z")); ok {
		t.Fatalf("the teacher's Down must hold in the session: %+v", ev)
	}
	// The session's end is the schedule's next event (Down), then
	// Wednesday's lesson brings it Up again.
	if ev, ok := Decide(berlin(), lead, teacherDown, time.Time{}, time.Time{}, at(t, "2026-11-30T09:31:00Z")); !ok || ev.Phase != api.PhaseDown {
		t.Fatalf("after the end: %+v %v", ev, ok)
	}
	if ev, ok := Decide(berlin(), lead, teacherDown, time.Time{}, time.Time{}, at(t, "2026-12-02T07:55:00Z")); !ok || ev.Phase != api.PhaseUp {
		t.Fatalf("Wednesday: %+v %v, want Up", ev, ok)
	}
	// A teacher's Up after the lesson holds until the next event: Wednesday's
	// opening (Up again), then its end takes the class Down.
	teacherUp := at(t, "2026-11-30T13:00:00Z")
	if ev, ok := Decide(berlin(), lead, teacherUp, time.Time{}, time.Time{}, at(t, "2026-12-01T20:00:00Z")); ok {
		t.Fatalf("the teacher's Up must hold between lessons: %+v", ev)
	}
	if ev, ok := Decide(berlin(), lead, teacherUp, time.Time{}, time.Time{}, at(t, "2026-12-02T09:30:00Z")); !ok || ev.Phase != api.PhaseDown {
		t.Fatalf("at Wednesday's end: %+v %v, want Down", ev, ok)
	}
	_ = up
}

func TestASetScheduleActsOnAnOpenWindowOnly(t *testing.T) {
	lead := 5 * time.Minute
	teacherUp := at(t, "2026-11-29T10:00:00Z")
	// Set during Monday's lesson: Up at once, for its bell.
	set := at(t, "2026-11-30T08:40:00Z")
	ev, ok := Decide(berlin(), lead, teacherUp, set, time.Time{}, set.Add(time.Second))
	if !ok || ev.Phase != api.PhaseUp || !ev.At.Equal(set) || !ev.Bell.Equal(at(t, "2026-11-30T08:00:00Z")) {
		t.Fatalf("set in a lesson: %+v %v", ev, ok)
	}
	// A class created with its timetable (no change of phase yet) during a
	// lesson: Up at once.
	if ev, ok := Decide(berlin(), lead, time.Time{}, set, time.Time{}, set.Add(time.Second)); !ok || ev.Phase != api.PhaseUp {
		t.Fatalf("created in a lesson: %+v %v", ev, ok)
	}
	// Set outside a lesson: the teacher's Up of yesterday holds, and the
	// lessons before the schedule was set do not count.
	set = at(t, "2026-11-30T12:00:00Z")
	if ev, ok := Decide(berlin(), lead, teacherUp, set, time.Time{}, set.Add(time.Minute)); ok {
		t.Fatalf("set between lessons: %+v", ev)
	}
}

func TestBackToBackLessonsAreOneWindowAndExceptionsSkipALesson(t *testing.T) {
	s := &api.Schedule{Timezone: "UTC", Weekly: []api.WeeklySession{
		{Days: []string{"mon"}, Start: "09:00", End: "10:30"},
		{Days: []string{"mon"}, Start: "10:35", End: "12:00"},
	}, Except: []string{"2026-12-07"}}
	ws := Windows(s, 10*time.Minute, at(t, "2026-11-30T00:00:00Z"), at(t, "2026-12-08T00:00:00Z"))
	if len(ws) != 1 || !ws[0].From.Equal(at(t, "2026-11-30T08:50:00Z")) || !ws[0].To.Equal(at(t, "2026-11-30T12:00:00Z")) {
		t.Fatalf("windows: %+v, want one 08:50–12:00 on the 30th and none on the 7th", ws)
	}
	ev, ok := Decide(s, 10*time.Minute, at(t, "2026-11-29T00:00:00Z"), time.Time{}, time.Time{}, at(t, "2026-11-30T10:32:00Z"))
	if !ok || ev.Phase != api.PhaseUp {
		t.Fatalf("between the two lessons: %+v %v, want still Up", ev, ok)
	}
}

func TestLeadLearnsFromTheLastUps(t *testing.T) {
	s := berlin()
	if got := Lead(s, nil, 100); got != 5*time.Minute+50*time.Second {
		t.Errorf("estimate for 100 students: %s", got)
	}
	if got := Lead(s, []float64{20, 40, 30}, 100); got != 5*time.Minute+50*time.Second {
		t.Errorf("learned (40 s with a quarter more): %s", got)
	}
	zero := int64(0)
	s.ReadyBeforeSeconds = &zero
	if got := Lead(s, []float64{8}, 100); got != 10*time.Second {
		t.Errorf("readyBefore 0 and an 8 s Up: %s", got)
	}
}

func TestValidateNamesTheProblem(t *testing.T) {
	now := at(t, "2026-11-30T12:00:00Z")
	neg := int64(-1)
	cases := []struct {
		name string
		s    api.Schedule
		ttl  int64
		want string
	}{
		{"unknown zone", api.Schedule{Timezone: "Mars/Olympus"}, 0, `timezone "Mars/Olympus" is not a known time zone`},
		{"no zone", api.Schedule{}, 0, "timezone is required"},
		{"end before start", api.Schedule{Timezone: "UTC", Weekly: []api.WeeklySession{{Days: []string{"mon"}, Start: "10:30", End: "09:00"}}}, 0, "weekly[0]: end 09:00 is not after start 10:30"},
		{"bad day", api.Schedule{Timezone: "UTC", Weekly: []api.WeeklySession{{Days: []string{"monday"}, Start: "09:00", End: "10:00"}}}, 0, `"monday" is not a day`},
		{"bad time", api.Schedule{Timezone: "UTC", Weekly: []api.WeeklySession{{Days: []string{"mon"}, Start: "9am", End: "10:00"}}}, 0, `"9am" is not a time of day`},
		{"weekly overlap", api.Schedule{Timezone: "UTC", Weekly: []api.WeeklySession{
			{Days: []string{"mon", "tue"}, Start: "09:00", End: "10:00"}, {Days: []string{"tue"}, Start: "09:30", End: "11:00"}}}, 0, "weekly[1] overlaps schedule.weekly[0] on tue"},
		{"session end before start", api.Schedule{Timezone: "UTC", Sessions: []api.Session{{Start: now.Add(2 * time.Hour), End: now.Add(time.Hour)}}}, 0, "sessions[0]: end"},
		{"session overlaps a lesson", api.Schedule{Timezone: "UTC", Weekly: []api.WeeklySession{{Days: []string{"tue"}, Start: "09:00", End: "10:00"}},
			Sessions: []api.Session{{Start: at(t, "2026-12-01T09:30:00Z"), End: at(t, "2026-12-01T11:00:00Z")}}}, 0, "overlapping sessions"},
		{"sessions overlap", api.Schedule{Timezone: "UTC", Sessions: []api.Session{
			{Start: at(t, "2026-12-01T09:30:00Z"), End: at(t, "2026-12-01T11:00:00Z")}, {Start: at(t, "2026-12-01T10:30:00Z"), End: at(t, "2026-12-01T12:00:00Z")}}}, 0, "overlapping sessions"},
		{"longer than the ttl", api.Schedule{Timezone: "UTC", Weekly: []api.WeeklySession{{Days: []string{"mon"}, Start: "09:00", End: "10:30"}}}, 3600, "longer than the class's ttlSeconds (3600)"},
		{"a year ahead", api.Schedule{Timezone: "UTC", Sessions: []api.Session{{Start: now.AddDate(2, 0, 0), End: now.AddDate(2, 0, 0).Add(time.Hour)}}}, 0, "more than a year ahead"},
		{"negative lead", api.Schedule{Timezone: "UTC", ReadyBeforeSeconds: &neg}, 0, "readyBeforeSeconds is -1"},
		{"bad exception", api.Schedule{Timezone: "UTC", Except: []string{"24.12.2026"}}, 0, `"24.12.2026" is not a date`},
	}
	for _, tc := range cases {
		err := Validate(&tc.s, tc.ttl, now)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	ok := api.Schedule{Timezone: "Europe/Berlin", Weekly: berlin().Weekly,
		Sessions: []api.Session{{Start: at(t, "2026-12-05T09:00:00Z"), End: at(t, "2026-12-05T12:00:00Z")}}, Except: []string{"2026-12-23"}}
	if err := Validate(&ok, 4*3600, now); err != nil {
		t.Errorf("a good schedule: %v", err)
	}
}

// Package timetable decides, from a class's schedule and the clock, when the
// class should be Up. It does no I/O: the controller gives it the time and
// the class, and writes what it decides.
//
// A schedule is a list of sessions (weekly lessons in local time, and
// one-off sessions). The class should be ready by each session's start, so
// its window opens a lead earlier (readyBeforeSeconds plus how long the
// class takes to come Up) and closes at the session's end; windows that
// touch or overlap are one window, so back-to-back lessons keep the class
// Up. The opening and the closing of a window are the schedule's events.
//
// The latest event wins: a teacher's Up or Down is an event too, and holds
// until the schedule's next event. A controller that was down at a start
// acts at once when it comes back (the window is still open); a session
// that ended meanwhile is not started (its window closed).
package timetable

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	// Time zones are compiled in: the controller runs in a scratch image
	// without a zoneinfo database.
	_ "time/tzdata"

	"github.com/homeroom/homeroom/pkg/api"
)

// Bounds on a schedule, so that one spec cannot make each pass expand an
// unbounded list.
const (
	MaxWeekly         = 50
	MaxSessions       = 500
	MaxExcept         = 400
	MaxReadyBefore    = 3600
	maxSessionLength  = 24 * time.Hour
	dateLayout        = "2006-01-02"
	lookAhead         = 8 * 24 * time.Hour
	defaultUpBase     = 20 * time.Second
	defaultUpPerChild = 300 * time.Millisecond
	maxUpLead         = 30 * time.Minute
)

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// Window is one span in which the class should be Up: From is a lead
// before the first session's start (Bell), To the last session's end.
type Window struct {
	From, To time.Time
	// Bell is the start of the window's first session.
	Bell time.Time
}

// Event is a change of desired phase the schedule asks for.
type Event struct {
	At    time.Time
	Phase api.Phase
	// Bell is the session start an Up is for (zero for a Down).
	Bell time.Time
}

// Session is one occurrence of a lesson.
type Session struct{ Start, End time.Time }

// Lead is how long before a session's start its window opens: the
// schedule's readyBefore plus the time the class is expected to take to
// come Up. That is the longest of its last Ups with a quarter more, or an
// estimate from its size before it has come Up once.
func Lead(s *api.Schedule, upSeconds []float64, students int) time.Duration {
	up := defaultUpBase + time.Duration(students)*defaultUpPerChild
	if len(upSeconds) > 0 {
		up = time.Duration(slices.Max(upSeconds) * 1.25 * float64(time.Second))
	}
	// Whole seconds: an event's time is stored, and must compare equal
	// when read back.
	return s.ReadyBefore() + min(max(up, 0), maxUpLead).Truncate(time.Second)
}

// Sessions lists the schedule's sessions that end after from and start
// before to, in order of start.
func Sessions(s *api.Schedule, from, to time.Time) []Session {
	if s == nil {
		return nil
	}
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil {
		return nil // Validate refuses such a schedule before it is stored
	}
	except := map[string]bool{}
	for _, d := range s.Except {
		except[d] = true
	}
	var out []Session
	// Walk local dates from the day before from to the day after to: a
	// lesson is at most a day long.
	d := from.In(loc).AddDate(0, 0, -1)
	day := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
	for ; day.Before(to.Add(24 * time.Hour)); day = day.AddDate(0, 0, 1) {
		if except[day.Format(dateLayout)] {
			continue
		}
		for _, w := range s.Weekly {
			if !onDay(w.Days, day.Weekday()) {
				continue
			}
			sh, sm, _ := clock(w.Start)
			eh, em, _ := clock(w.End)
			// time.Date resolves a wall time a daylight-saving change
			// skips or repeats to one of the two offsets: a lesson at such
			// a time moves by that hour, once.
			st := time.Date(day.Year(), day.Month(), day.Day(), sh, sm, 0, 0, loc)
			en := time.Date(day.Year(), day.Month(), day.Day(), eh, em, 0, 0, loc)
			out = append(out, Session{st, en})
		}
	}
	for _, o := range s.Sessions {
		out = append(out, Session{o.Start, o.End})
	}
	out = slices.DeleteFunc(out, func(o Session) bool { return !o.End.After(from) || !o.Start.Before(to) })
	slices.SortFunc(out, func(a, b Session) int { return a.Start.Compare(b.Start) })
	return out
}

// Windows lists the spans, with lead, in which the class should be Up, for
// sessions that end after from and start before to.
func Windows(s *api.Schedule, lead time.Duration, from, to time.Time) []Window {
	var out []Window
	// A window that opens at to is one of them.
	for _, o := range Sessions(s, from, to.Add(lead+time.Nanosecond)) {
		w := Window{From: o.Start.Add(-lead), To: o.End, Bell: o.Start}
		if n := len(out); n > 0 && !w.From.After(out[n-1].To) {
			out[n-1].To = later(out[n-1].To, w.To)
			continue
		}
		out = append(out, w)
	}
	return out
}

// Decide returns the schedule's latest event at now, if it is later than
// the last change of desired phase (desiredAt) and than the time the
// schedule was set (setAt). A schedule set during an open window counts as
// that window opening at setAt: the class comes Up at once. A window opens
// once: served is the bell of the session whose window last brought the
// class Up, and its opening is not an event again, however the lead moved
// since (the class's Up times are learned as it comes Up, and a teacher's
// Down just after must hold). ok is false when the latest event is the
// teacher's: nothing to change.
func Decide(s *api.Schedule, lead time.Duration, desiredAt, setAt, served, now time.Time) (ev Event, ok bool) {
	if s == nil {
		return Event{}, false
	}
	cut := later(desiredAt, setAt)
	consider := func(e Event) {
		counts := e.At.After(cut) || (e.At.Equal(setAt) && setAt.After(desiredAt))
		if counts && !e.At.After(now) && (!ok || !e.At.Before(ev.At)) {
			ev, ok = e, true
		}
	}
	// Windows that closed before cut hold no event that counts; a year back
	// is as far as a class can have been forgotten (the TTL cap).
	from := later(cut, now.Add(-api.MaxTTLSeconds*time.Second))
	for _, w := range Windows(s, lead, from, now) {
		if !w.Bell.Equal(served) {
			consider(Event{At: w.From, Phase: api.PhaseUp, Bell: w.Bell})
		}
		consider(Event{At: w.To, Phase: api.PhaseDown})
		if setAt.After(desiredAt) && !setAt.Before(w.From) && setAt.Before(w.To) {
			consider(Event{At: setAt, Phase: api.PhaseUp, Bell: w.Bell})
		}
	}
	return ev, ok
}

// Next is the schedule's first event after now, or zero when it has none
// within the next eight days.
func Next(s *api.Schedule, lead time.Duration, now time.Time) time.Time {
	var next time.Time
	for _, w := range Windows(s, lead, now, now.Add(lookAhead)) {
		for _, t := range []time.Time{w.From, w.To} {
			if t.After(now) && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	return next
}

// Validate checks a schedule for a class with ttlSeconds (0: none) at now.
// Its errors name the field at fault.
func Validate(s *api.Schedule, ttlSeconds int64, now time.Time) error {
	if s == nil {
		return nil
	}
	if s.Timezone == "" {
		return fmt.Errorf("schedule.timezone is required, an IANA name such as Europe/Berlin")
	}
	if _, err := time.LoadLocation(s.Timezone); err != nil || strings.EqualFold(s.Timezone, "local") {
		return fmt.Errorf("schedule.timezone %q is not a known time zone (an IANA name such as Europe/Berlin)", s.Timezone)
	}
	if len(s.Weekly) > MaxWeekly || len(s.Sessions) > MaxSessions || len(s.Except) > MaxExcept {
		return fmt.Errorf("schedule has %d weekly entries, %d sessions and %d exceptions: at most %d, %d and %d are allowed",
			len(s.Weekly), len(s.Sessions), len(s.Except), MaxWeekly, MaxSessions, MaxExcept)
	}
	if rb := s.ReadyBeforeSeconds; rb != nil && (*rb < 0 || *rb > MaxReadyBefore) {
		return fmt.Errorf("schedule.readyBeforeSeconds is %d, it must be between 0 and %d", *rb, MaxReadyBefore)
	}
	for i, w := range s.Weekly {
		field := fmt.Sprintf("schedule.weekly[%d]", i)
		if len(w.Days) == 0 {
			return fmt.Errorf("%s.days must name at least one day (mon … sun)", field)
		}
		seen := map[string]bool{}
		for _, d := range w.Days {
			if _, ok := dayNames[d]; !ok {
				return fmt.Errorf("%s.days: %q is not a day, use mon, tue, wed, thu, fri, sat or sun", field, d)
			}
			if seen[d] {
				return fmt.Errorf("%s.days names %s twice", field, d)
			}
			seen[d] = true
		}
		sh, sm, err := clock(w.Start)
		if err != nil {
			return fmt.Errorf("%s.start: %w", field, err)
		}
		eh, em, err := clock(w.End)
		if err != nil {
			return fmt.Errorf("%s.end: %w", field, err)
		}
		if eh*60+em <= sh*60+sm {
			return fmt.Errorf("%s: end %s is not after start %s (a lesson ends on the day it starts)", field, w.End, w.Start)
		}
		for j, o := range s.Weekly[:i] {
			if shared := sharedDay(o.Days, w.Days); shared != "" && clockOverlap(o, w) {
				return fmt.Errorf("%s overlaps schedule.weekly[%d] on %s (%s–%s and %s–%s)", field, j, shared, w.Start, w.End, o.Start, o.End)
			}
		}
	}
	for _, d := range s.Except {
		if _, err := time.Parse(dateLayout, d); err != nil {
			return fmt.Errorf("schedule.except: %q is not a date such as 2026-12-24", d)
		}
	}
	lead := s.ReadyBefore()
	for i, o := range s.Sessions {
		field := fmt.Sprintf("schedule.sessions[%d]", i)
		switch {
		case o.Start.IsZero() || o.End.IsZero():
			return fmt.Errorf("%s needs a start and an end (RFC 3339 times)", field)
		case !o.End.After(o.Start):
			return fmt.Errorf("%s: end %s is not after start %s", field, o.End.Format(time.RFC3339), o.Start.Format(time.RFC3339))
		case o.End.Sub(o.Start) > maxSessionLength:
			return fmt.Errorf("%s lasts %s, at most %s is allowed", field, o.End.Sub(o.Start), maxSessionLength)
		case o.Start.After(now.Add(api.MaxTTLSeconds * time.Second)):
			return fmt.Errorf("%s starts %s, more than a year ahead (the TTL cap)", field, o.Start.Format(time.RFC3339))
		}
	}
	// Overlaps among all sessions, weekly ones included, over the span the
	// one-off sessions cover and a week (every weekly pairing occurs).
	from, to := now, now.Add(7*24*time.Hour)
	for _, o := range s.Sessions {
		from, to = earlier(from, o.Start), later(to, o.End)
	}
	all := Sessions(s, from, to)
	for i := 1; i < len(all); i++ {
		if all[i].Start.Before(all[i-1].End) {
			return fmt.Errorf("schedule has overlapping sessions: %s–%s and %s–%s", stamp(all[i-1].Start), stamp(all[i-1].End), stamp(all[i].Start), stamp(all[i].End))
		}
	}
	if ttlSeconds > 0 {
		ttl := time.Duration(ttlSeconds) * time.Second
		for _, o := range all {
			if o.End.Sub(o.Start)+lead > ttl {
				return fmt.Errorf("schedule: the session %s–%s with readyBeforeSeconds is longer than the class's ttlSeconds (%d): the TTL would take the class Down during it",
					stamp(o.Start), stamp(o.End), ttlSeconds)
			}
		}
	}
	return nil
}

// Normalize puts a schedule's times in the form they are stored in (UTC,
// whole seconds), so that writing the same schedule twice changes nothing.
func Normalize(s *api.Schedule) {
	if s == nil {
		return
	}
	for i := range s.Sessions {
		s.Sessions[i].Start = s.Sessions[i].Start.UTC().Truncate(time.Second)
		s.Sessions[i].End = s.Sessions[i].End.UTC().Truncate(time.Second)
	}
}

func clock(s string) (h, m int, err error) {
	hh, mm, ok := strings.Cut(s, ":")
	if ok && len(hh) == 2 && len(mm) == 2 {
		h, err1 := strconv.Atoi(hh)
		m, err2 := strconv.Atoi(mm)
		if err1 == nil && err2 == nil && h >= 0 && h < 24 && m >= 0 && m < 60 {
			return h, m, nil
		}
	}
	return 0, 0, fmt.Errorf("%q is not a time of day such as 09:00", s)
}

func onDay(days []string, wd time.Weekday) bool {
	for _, d := range days {
		if dayNames[d] == wd {
			return true
		}
	}
	return false
}

func sharedDay(a, b []string) string {
	for _, d := range a {
		if slices.Contains(b, d) {
			return d
		}
	}
	return ""
}

func clockOverlap(a, b api.WeeklySession) bool {
	mins := func(s string) int { h, m, _ := clock(s); return h*60 + m }
	return mins(a.Start) < mins(b.End) && mins(b.Start) < mins(a.End)
}

func stamp(t time.Time) string { return t.Format("2006-01-02 15:04 MST") }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if b.IsZero() || a.Before(b) {
		return a
	}
	return b
}

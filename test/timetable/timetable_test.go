// Package timetable tests a class's timetable end to end: the real
// binaries, the real daemon and the embedded store and object store.
package timetable

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
)

// TestASessionAMinuteAhead: a class with one session starting a minute from
// now is Up before its bell without anyone asking, and Down with every
// student's work collected after its end; the controller reports how early
// it was ready.
func TestASessionAMinuteAhead(t *testing.T) {
	s := start(t, "timed")
	d, id := s.d, s.id

	bell := time.Now().Add(time.Minute).Truncate(time.Second)
	end := bell.Add(40 * time.Second)
	spec := map[string]any{"subject": "cs", "template": "sandbox", "students": []string{"amy", "ben"},
		"schedule": map[string]any{"timezone": "Europe/Berlin", "readyBeforeSeconds": 15,
			"sessions": []map[string]string{{"start": bell.Format(time.RFC3339), "end": end.Format(time.RFC3339)}}}}
	if code := s.call("PUT", "/api/v1/classes/"+id, spec, nil); code != http.StatusCreated {
		t.Fatalf("put: %d", code)
	}
	if c := s.get(); c.DesiredPhase != api.PhaseDown {
		t.Fatalf("a minute ahead the class is %s", c.DesiredPhase)
	}

	up := s.waitFor("Up", 2*time.Minute, upToDate)
	readyAt := time.Now()
	if !readyAt.Before(bell) {
		t.Fatalf("ready at %s, after the bell at %s", readyAt.Format(time.RFC3339Nano), bell.Format(time.RFC3339))
	}
	if up.Bell == nil || !up.Bell.Equal(bell) || len(up.Status.UpSeconds) != 1 {
		t.Errorf("Up for bell %v with upSeconds %v, want bell %s and one Up's duration", up.Bell, up.Status.UpSeconds, bell)
	}
	t.Logf("ready %s before the bell", bell.Sub(readyAt).Round(time.Millisecond))
	testenv.SaveFile(t, d, id, "amy", "answer.txt", "42\n")
	testenv.SaveFile(t, d, id, "ben", "answer.txt", "41\n")

	down := s.waitFor("Down after the session", 3*time.Minute, func(c api.Class) bool {
		return c.Status.Phase == api.PhaseDown && c.Status.Run != nil && c.Status.Run.CompletedAt != nil
	})
	if down.DesiredPhase != api.PhaseDown || down.DownReason != api.ReasonScheduled {
		t.Errorf("desired %s (%q), want Down (Scheduled)", down.DesiredPhase, down.DownReason)
	}
	if !down.Status.Run.StartedAt.After(end.Add(-time.Second)) {
		t.Errorf("the run started at %s, before the session's end %s", down.Status.Run.StartedAt, end)
	}
	for student, want := range map[string]string{"amy": "42\n", "ben": "41\n"} {
		req, _ := http.NewRequest("GET", s.URL+"/api/v1/classes/"+id+"/artifacts/"+student+"/files/workspace/answer.txt", nil)
		req.Header.Set("Authorization", "Bearer "+s.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != want {
			t.Errorf("%s's collected answer: %d %q, want %q", student, resp.StatusCode, got, want)
		}
	}
	if cs, err := d.ListContainers(context.Background(), id); err != nil || len(cs) != 0 {
		t.Errorf("%d containers left after the session (%v)", len(cs), err)
	}

	// The controller measured the class early: one observation, at or
	// below zero seconds late.
	m := metrics(t, s.ControllerURL+"/metrics")
	if m["homeroom_schedule_lateness_seconds_count"] != 1 || m[`homeroom_schedule_lateness_seconds_bucket{le="0"}`] != 1 {
		t.Errorf("lateness: count %v, at or below 0: %v", m["homeroom_schedule_lateness_seconds_count"], m[`homeroom_schedule_lateness_seconds_bucket{le="0"}`])
	}
	if m[`homeroom_schedule_changes_total{phase="Up"}`] != 1 || m[`homeroom_schedule_changes_total{phase="Down"}`] != 1 {
		t.Errorf("schedule changes: %v Up, %v Down, want one each", m[`homeroom_schedule_changes_total{phase="Up"}`], m[`homeroom_schedule_changes_total{phase="Down"}`])
	}
}

// TestOneStudentRestartAndHandIn: against the real daemon, a restart makes
// the student's sandbox again with their files, and an early hand-in makes
// a run of its own (kind student) holding their work, the sandbox left
// running.
func TestOneStudentRestartAndHandIn(t *testing.T) {
	s := start(t, "one-student")
	d, id := s.d, s.id
	s.up("amy", "ben")
	testenv.SaveFile(t, d, id, "amy", "notes.txt", "amy's notes\n")
	testenv.SaveFile(t, d, id, "ben", "answer.txt", "42\n")
	inspect := func(student string) string {
		info, err := d.InspectContainer(context.Background(), api.ContainerName(id, student))
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}
	amyBefore, benBefore := inspect("amy"), inspect("ben")

	if code := s.call("POST", "/api/v1/classes/"+id+"/students/amy/restart", nil, nil); code != http.StatusAccepted {
		t.Fatalf("restart: %d", code)
	}
	s.waitFor("amy's sandbox made again", 2*time.Minute, func(c api.Class) bool {
		info, err := d.InspectContainer(context.Background(), api.ContainerName(id, "amy"))
		return err == nil && info.ID != amyBefore && info.State.Running && upToDate(c)
	})
	if inspect("ben") != benBefore {
		t.Error("ben's sandbox was made again too")
	}
	if notes := s.served("amy", "notes.txt"); notes != "amy's notes\n" {
		t.Errorf("amy's notes after the restart: %q", notes)
	}

	if code := s.call("POST", "/api/v1/classes/"+id+"/students/ben/collect", nil, nil); code != http.StatusAccepted {
		t.Fatalf("collect: %d", code)
	}
	c := s.waitFor("ben's hand-in", 2*time.Minute, func(c api.Class) bool { return c.Status.HandIns["ben"].RunID != "" })
	run := c.Status.HandIns["ben"].RunID
	runs := s.runs()
	if r, found := runs[run]; !found {
		t.Errorf("run %s not among the class's runs %+v", run, runs)
	} else if r.Kind != "student" || r.Students != 1 {
		t.Errorf("the hand-in's run: %+v", r)
	}
	var got []byte
	if code := s.call("GET", "/api/v1/classes/"+id+"/artifacts/ben/files/workspace/answer.txt?run="+run, nil, &got); code != http.StatusOK || string(got) != "42\n" {
		t.Errorf("ben's handed-in answer: %d %q", code, got)
	}
	if inspect("ben") != benBefore {
		t.Error("ben's sandbox changed with his hand-in")
	}
	if info, _ := d.InspectContainer(context.Background(), api.ContainerName(id, "ben")); !info.State.Running {
		t.Error("ben's sandbox stopped with his hand-in")
	}
}

// TestOneStudentWithExtraTime: against the real daemon, at the class's Down
// the other student is collected and removed while the extended one works
// on alone, and is collected when their time is up, in the same run.
func TestOneStudentWithExtraTime(t *testing.T) {
	s := start(t, "extra")
	d, id := s.d, s.id
	s.up("amy", "ben")
	testenv.SaveFile(t, d, id, "amy", "answer.txt", "amy's answer\n")
	testenv.SaveFile(t, d, id, "ben", "answer.txt", "ben's answer\n")
	until := time.Now().Add(25 * time.Second).Truncate(time.Second)
	if code := s.call("POST", "/api/v1/classes/"+id+"/students/amy/extend", map[string]any{"until": until}, nil); code != http.StatusAccepted {
		t.Fatalf("extend: %d", code)
	}
	s.call("POST", "/api/v1/classes/"+id+"/down", nil, nil)

	alone := s.waitFor("ben collected, amy working on", 2*time.Minute, func(c api.Class) bool {
		r := api.FindCondition(c.Status.Conditions, api.ConditionReady)
		return r != nil && r.Reason == "StudentsExtended"
	})
	if time.Now().After(until) {
		t.Fatalf("the others were collected only after amy's time was up (%s)", until)
	}
	if _, err := d.InspectContainer(context.Background(), api.ContainerName(id, "ben")); err == nil {
		t.Error("ben's sandbox is still there during amy's extra time")
	}
	if info, err := d.InspectContainer(context.Background(), api.ContainerName(id, "amy")); err != nil || !info.State.Running {
		t.Fatalf("amy's sandbox during her extra time: %v", err)
	}
	testenv.SaveFile(t, d, id, "amy", "answer.txt", "amy's answer, finished late\n")
	run := alone.Status.Run.ID

	down := s.waitFor("Down after amy's time", 2*time.Minute, func(c api.Class) bool {
		return c.Status.Phase == api.PhaseDown && c.Status.Run != nil && c.Status.Run.CompletedAt != nil
	})
	if down.Status.Run.ID != run || down.Status.Run.CompletedAt.Before(until) {
		t.Errorf("the run %s completed at %s, want run %s completed after %s", down.Status.Run.ID, down.Status.Run.CompletedAt, run, until)
	}
	for student, want := range map[string]string{"amy": "amy's answer, finished late\n", "ben": "ben's answer\n"} {
		var got []byte
		if code := s.call("GET", "/api/v1/classes/"+id+"/artifacts/"+student+"/files/workspace/answer.txt?run="+run, nil, &got); code != http.StatusOK || string(got) != want {
			t.Errorf("%s's collected answer: %d %q, want %q", student, code, got, want)
		}
	}
}

// TestALateHandIn: against the real daemon, after a Down one student is
// given a late hand-in: their sandbox comes back with the work the Down
// collected, theirs to change (the sandbox's user owns it), and at its end
// it is collected into a run of kind late of its own and removed; the
// Down's run and the other student are left as they were.
func TestALateHandIn(t *testing.T) {
	s := start(t, "late")
	d, id := s.d, s.id
	s.up("amy", "ben")
	testenv.SaveFile(t, d, id, "amy", "essay/draft.txt", "amy's draft\n")
	testenv.SaveFile(t, d, id, "ben", "answer.txt", "42\n")
	s.call("POST", "/api/v1/classes/"+id+"/down", nil, nil)
	down := s.waitFor("Down", 2*time.Minute, func(c api.Class) bool {
		return c.Status.Phase == api.PhaseDown && c.Status.Run != nil && c.Status.Run.CompletedAt != nil
	})
	downRun := down.Status.Run.ID

	late := "/api/v1/classes/" + id + "/students/amy/late"
	if code := s.call("POST", late, map[string]any{"minutes": 30}, nil); code != http.StatusAccepted {
		t.Fatalf("late: %d", code)
	}
	s.waitFor("amy's late sandbox", 2*time.Minute, func(c api.Class) bool {
		r := api.FindCondition(c.Status.Conditions, api.ConditionReady)
		info, err := d.InspectContainer(context.Background(), api.ContainerName(id, "amy"))
		return r != nil && r.Reason == "LateHandIns" && err == nil && info.State.Running && info.Config.Labels[api.LabelLate] != ""
	})
	if _, err := d.InspectContainer(context.Background(), api.ContainerName(id, "ben")); err == nil {
		t.Error("ben's sandbox came back with amy's late hand-in")
	}
	if draft := s.served("amy", "essay/draft.txt"); draft != "amy's draft\n" {
		t.Errorf("amy's restored draft: %q", draft)
	}
	// The sandbox's user changes restored files and makes new ones beside
	// them: a restore owned by root would refuse both.
	testenv.SaveFile(t, d, id, "amy", "essay/draft.txt", "amy's essay, finished late\n")
	testenv.SaveFile(t, d, id, "amy", "essay/sources.txt", "a book\n")

	// The end moved to now: she hands in.
	if code := s.call("POST", late, map[string]any{"until": time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)}, nil); code != http.StatusAccepted {
		t.Fatalf("moving the late hand-in's end: %d", code)
	}
	c := s.waitFor("amy's late hand-in collected", 2*time.Minute, func(c api.Class) bool {
		return c.Status.Late["amy"].RunID != "" && c.Status.Phase == api.PhaseDown
	})
	run := c.Status.Late["amy"].RunID
	if c.Status.Run.ID != downRun || run == downRun {
		t.Errorf("runs after the late hand-in: the Down's %s (was %s), the late one %s", c.Status.Run.ID, downRun, run)
	}
	runs := s.runs()
	if runs[run].Kind != "late" || runs[run].Students != 1 || runs[downRun].Kind != "down" {
		t.Errorf("runs %+v, want %s late of one student and %s down", runs, run, downRun)
	}
	for _, f := range []struct{ run, path, want string }{
		{run, "essay/draft.txt", "amy's essay, finished late\n"},
		{run, "essay/sources.txt", "a book\n"},
		{downRun, "essay/draft.txt", "amy's draft\n"},
	} {
		var got []byte
		if code := s.call("GET", "/api/v1/classes/"+id+"/artifacts/amy/files/workspace/"+f.path+"?run="+f.run, nil, &got); code != http.StatusOK || string(got) != f.want {
			t.Errorf("amy's %s in run %s: %d %q, want %q", f.path, f.run, code, got, f.want)
		}
	}
	if _, err := d.InspectContainer(context.Background(), api.ContainerName(id, "amy")); err == nil {
		t.Error("amy's late sandbox is still there")
	}
	s.waitFor("the class network gone", time.Minute, func(api.Class) bool {
		nets, err := d.ListNetworks(context.Background(), id)
		return err == nil && len(nets) == 0
	})
}

// system is Homeroom on embedded services and the real daemon, with one
// class of a test.
type system struct {
	*testenv.System
	t  *testing.T
	d  *dockerx.Client
	id string
}

func start(t *testing.T, id string) *system {
	d := testenv.Docker(t)
	// Registered first, so run last: after the controller is stopped, or
	// it could make again what the cleanup removes.
	testenv.CleanupClass(t, d, id)
	sys := testenv.StartSystem(t, "hr-timetable-no-router")
	t.Cleanup(sys.Kill)
	return &system{System: sys, t: t, d: d, id: id}
}

func (s *system) call(method, path string, body, out any) int {
	return s.Call(s.t, s.AdminToken, method, path, body, out)
}

func (s *system) get() api.Class {
	var c api.Class
	if code := s.call("GET", "/api/v1/classes/"+s.id, nil, &c); code != http.StatusOK {
		s.t.Fatalf("get class: %d", code)
	}
	return c
}

// up creates the class with students and brings it Up, waiting until it is.
func (s *system) up(students ...string) {
	s.t.Helper()
	if code := s.call("PUT", "/api/v1/classes/"+s.id, map[string]any{"subject": "cs", "template": "sandbox", "students": students}, nil); code != http.StatusCreated {
		s.t.Fatalf("put: %d", code)
	}
	s.call("POST", "/api/v1/classes/"+s.id+"/up", nil, nil)
	s.waitFor("Up", 2*time.Minute, upToDate)
}

// served is the file at name in student's sandbox, as its lab serves it
// on the class network, once it does (within 30 s).
func (s *system) served(student, name string) string {
	s.t.Helper()
	info, err := s.d.InspectContainer(context.Background(), api.ContainerName(s.id, student))
	if err != nil {
		s.t.Fatal(err)
	}
	ip := info.NetworkSettings.Networks[api.NetworkName(s.id)].IPAddress
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + ip + ":8080/files/" + name)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s's sandbox never served %s: %v", student, name, err)
		}
	}
}

// runSummary is one run as GET …/runs lists it.
type runSummary struct {
	Kind     string `json:"kind"`
	Students int    `json:"students"`
}

// runs lists the class's runs by id.
func (s *system) runs() map[string]runSummary {
	s.t.Helper()
	var list struct {
		Items []struct {
			RunID string `json:"runId"`
			runSummary
		} `json:"items"`
	}
	if code := s.call("GET", "/api/v1/classes/"+s.id+"/runs", nil, &list); code != http.StatusOK {
		s.t.Fatalf("list runs: %d", code)
	}
	out := map[string]runSummary{}
	for _, r := range list.Items {
		out[r.RunID] = r.runSummary
	}
	return out
}

// upToDate: the class is Up for its latest generation.
func upToDate(c api.Class) bool {
	return c.Status.Phase == api.PhaseUp && c.Status.ObservedGeneration == c.Generation
}

// waitFor reads the class until ok says so, or fails the test at timeout.
func (s *system) waitFor(what string, timeout time.Duration, ok func(api.Class) bool) api.Class {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := s.get()
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s not within %v: desired %s, %+v", what, timeout, c.DesiredPhase, c.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// metrics reads a Prometheus text page into series → value.
func metrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// Package grading tests grading end to end: the real binaries, the real
// daemon, the embedded store and object store, and the example graders.
package grading

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
)

const fileGrader = "homeroom/grader-file:dev"

// policyFor is a policy with three templates of the lab image, each with a
// grader: "sandbox" with the example file grader expecting answer,
// "hostile" with a grader that misbehaves in a way chosen by the student's
// id, and "slow" with one that takes a few seconds.
func policyFor(answer, bashImage string) string {
	sandbox := `
    image: ` + testenv.SandboxImage + `
    port: 8080
    user: "65534:65534"
    collectPaths: [/workspace]
    memoryMiB: 128
    cpus: 0.5
    pids: 64
    readOnlyRootFS: true`
	return `templates:
  - name: sandbox` + sandbox + `
    grader:
      image: ` + fileGrader + `
      command: [/grader-file, --expect, "workspace/answer.txt=` + answer + `", --expect, workspace/name.txt=homeroom]
      timeoutSeconds: 60
  - name: hostile` + sandbox + `
    grader:
      image: ` + bashImage + `
      timeoutSeconds: 8
      memoryMiB: 64
      pids: 32
      command:
        - bash
        - -c
        - |
` + indent(hostileScript, "          ") + `
  - name: absent` + sandbox + `
    grader: {image: "homeroom/no-such-grader:1", command: [/grade]}
  - name: slow` + sandbox + `
    grader:
      image: ` + bashImage + `
      timeoutSeconds: 60
      command: [bash, -c, 'sleep 4; echo "{\"score\": 1, \"maxScore\": 1}" > $HOMEROOM_GRADE']
`
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// hostileScript grades "honest" properly, after checking that it cannot
// change the submission nor reach the network; every other student gets a
// grader that fails in its own way.
const hostileScript = `case $HOMEROOM_STUDENT_ID in
honest)
  if echo x > /submission/workspace/notes.txt 2>/dev/null || touch /submission/new 2>/dev/null; then exit 9; fi
  if (exec 3<>/dev/tcp/1.1.1.1/80) 2>/dev/null; then exit 10; fi
  test "$(cat /submission/workspace/notes.txt)" = "notes of honest" || exit 11
  echo '{"score": 3, "maxScore": 4, "feedback": "well done", "tests": [{"name": "notes", "score": 3, "maxScore": 4, "message": "ok"}]}' > $HOMEROOM_GRADE ;;
slow) sleep 600 ;;
crash) echo "the grader broke" >&2; exit 3 ;;
huge) head -c 10485760 /dev/zero | tr "\0" x; head -c 10485760 /dev/zero | tr "\0" x > $HOMEROOM_GRADE ;;
garbage) echo "Traceback (most recent call last):" > $HOMEROOM_GRADE ;;
bomb) b() { b | b & }; b; sleep 600 ;;
esac`

type system struct {
	*testenv.System
	t *testing.T
	d *dockerx.Client
}

func (s *system) call(method, path string, body, out any) int {
	return s.Call(s.t, s.AdminToken, method, path, body, out)
}

func (s *system) class(id string) api.Class {
	var c api.Class
	if code := s.call("GET", "/api/v1/classes/"+id, nil, &c); code != http.StatusOK {
		s.t.Fatalf("get class %s: %d", id, code)
	}
	return c
}

func (s *system) waitFor(id, what string, timeout time.Duration, ok func(api.Class) bool) api.Class {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := s.class(id)
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("class %s: %s not within %v: %+v", id, what, timeout, c.Status)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *system) up(id, template string, students []string) {
	s.t.Helper()
	testenv.CleanupClass(s.t, s.d, id)
	if code := s.call("PUT", "/api/v1/classes/"+id, map[string]any{"subject": "cs", "template": template, "students": students}, nil); code/100 != 2 {
		s.t.Fatalf("put class %s: %d", id, code)
	}
	s.call("POST", "/api/v1/classes/"+id+"/up", nil, nil)
}

func (s *system) waitUp(id string) {
	s.waitFor(id, "Up", 2*time.Minute, func(c api.Class) bool {
		return c.Status.Phase == api.PhaseUp && c.Status.ObservedGeneration == c.Generation
	})
}

// save writes files into a student's workspace through the sandbox.
func (s *system) save(id, student string, files map[string]string) {
	s.t.Helper()
	for name, body := range files {
		testenv.SaveFile(s.t, s.d, id, student, name, body)
	}
}

func (s *system) down(id string) string {
	s.t.Helper()
	s.call("POST", "/api/v1/classes/"+id+"/down", nil, nil)
	c := s.waitFor(id, "Down", 3*time.Minute, func(c api.Class) bool {
		return c.Status.Phase == api.PhaseDown && c.Status.Run != nil && c.Status.Run.CompletedAt != nil
	})
	return c.Status.Run.ID
}

// graded waits for the Graded condition of attempt n to say grading is
// over, and returns the gradebook.
func (s *system) graded(id, run string, attempt int) api.Gradebook {
	s.t.Helper()
	s.waitFor(id, fmt.Sprintf("grading attempt %d done", attempt), 3*time.Minute, func(c api.Class) bool {
		g := api.FindCondition(c.Status.Conditions, api.ConditionGraded)
		return g != nil && g.Reason != "Grading" && strings.Contains(g.Message, fmt.Sprintf("(attempt %d)", attempt))
	})
	var book api.Gradebook
	if code := s.call("GET", "/api/v1/classes/"+id+"/runs/"+run+"/grades", nil, &book); code != http.StatusOK {
		s.t.Fatalf("grades: %d", code)
	}
	return book
}

func items(book api.Gradebook) map[string]api.GradebookItem {
	out := map[string]api.GradebookItem{}
	for _, it := range book.Items {
		out[it.Student] = it
	}
	return out
}

func images(t *testing.T, d *dockerx.Client) string {
	testenv.NotebookImage(t, d)
	if _, err := d.API().ImageInspect(context.Background(), fileGrader); err != nil {
		testenv.Unavailable(t, "image %s (make images builds it): %v", fileGrader, err)
	}
	tmpl, _ := policy.Default().Template("notebook")
	return tmpl.Image
}

func start(t *testing.T, answer string) (*system, string) {
	d := testenv.Docker(t)
	bash := images(t, d)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(policyFor(answer, bash)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := policy.Load(pol); err != nil {
		t.Fatal(err)
	}
	sys := testenv.StartSystem(t, "hr-grading-no-router", "HOMEROOM_POLICY="+pol)
	t.Cleanup(func() { sys.Kill() })
	return &system{System: sys, t: t, d: d}, pol
}

// A class of five hands in different answers; the example grader gives
// each the score their answers earn. After the grader is changed, a
// regrade gives new scores and keeps the first attempt's grades.
func TestGradesEachStudent(t *testing.T) {
	s, pol := start(t, "42")
	const id = "grade-five"
	students := []string{"amy", "ben", "cat", "dan", "eve"}
	s.up(id, "sandbox", students)
	s.waitUp(id)
	s.save(id, "amy", map[string]string{"answer.txt": "42\n", "name.txt": "homeroom"})
	s.save(id, "ben", map[string]string{"answer.txt": "41", "name.txt": "homeroom"})
	s.save(id, "cat", map[string]string{"notes.txt": "I forgot"})
	s.save(id, "dan", map[string]string{"answer.txt": "  42 ", "name.txt": "home room"})
	s.save(id, "eve", map[string]string{"answer.txt": "42", "name.txt": "homeroom\n"})
	run := s.down(id)

	book := s.graded(id, run, 1)
	want := map[string]float64{"amy": 2, "ben": 1, "cat": 0, "dan": 1, "eve": 2}
	got := items(book)
	for st, score := range want {
		it := got[st]
		if it.State != api.GradeGraded || it.Score == nil || *it.Score != score || it.MaxScore == nil || *it.MaxScore != 2 {
			t.Errorf("%s: %+v, want graded %g of 2", st, it, score)
		}
		if len(it.Tests) != 2 {
			t.Errorf("%s: tests %+v", st, it.Tests)
		}
	}
	if strings.Contains(got["ben"].Feedback+fmt.Sprint(got["ben"].Tests), "42") {
		t.Errorf("ben's feedback gives the expected answer away: %q %+v", got["ben"].Feedback, got["ben"].Tests)
	}
	c := s.class(id)
	if g := api.FindCondition(c.Status.Conditions, api.ConditionGraded); g == nil || g.Status != "True" || g.Message != "5 of 5 students graded (attempt 1)" {
		t.Errorf("Graded = %+v", g)
	}

	// The CSV a gradebook imports.
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/classes/"+id+"/runs/"+run+"/grades", nil)
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	req.Header.Set("Accept", "text/csv, application/json;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("csv: %v, %s", err, resp.Header.Get("Content-Type"))
	}
	wantRows := [][]string{{"student", "score", "max"}, {"amy", "2", "2"}, {"ben", "1", "2"}, {"cat", "0", "2"}, {"dan", "1", "2"}, {"eve", "2", "2"}}
	if fmt.Sprint(rows) != fmt.Sprint(wantRows) {
		t.Errorf("csv rows = %v, want %v", rows, wantRows)
	}

	// Each grade is stored beside the student's manifest.
	art := s.Artifacts(t)
	var first api.GradeRecord
	if err := art.GetJSON(context.Background(), api.GradeAttemptKey(id, run, "ben", 1), &first); err != nil {
		t.Fatal(err)
	}
	if first.State != api.GradeGraded || first.Grade.Score != 1 || first.Image != fileGrader {
		t.Errorf("ben's first grade record: %+v", first)
	}

	// The grader is changed (the expected answer was wrong), the system
	// restarted on the new policy, and the run graded again.
	s.Kill()
	b, _ := os.ReadFile(pol)
	os.WriteFile(pol, bytes.Replace(b, []byte("answer.txt=42"), []byte("answer.txt=41"), 1), 0o600)
	s.Start(t)
	var again api.Gradebook
	if code := s.call("POST", "/api/v1/classes/"+id+"/runs/"+run+"/grade", nil, &again); code != http.StatusAccepted || again.Attempt != 2 {
		t.Fatalf("regrade: %d %+v", code, again)
	}
	var audit struct {
		Items []api.AuditEntry `json:"items"`
	}
	if code := s.call("GET", "/api/v1/audit?action=run.grade&classId="+id, nil, &audit); code != http.StatusOK ||
		len(audit.Items) != 1 || audit.Items[0].Target != "class/"+id+"/run/"+run+"/attempt/2" {
		t.Errorf("the regrade is not in the audit trail: %d %+v", code, audit.Items)
	}
	book = s.graded(id, run, 2)
	got = items(book)
	want = map[string]float64{"amy": 1, "ben": 2, "cat": 0, "dan": 0, "eve": 1}
	for st, score := range want {
		if it := got[st]; it.State != api.GradeGraded || it.Attempt != 2 || *it.Score != score {
			t.Errorf("%s after the regrade: %+v, want %g", st, it, score)
		}
	}
	var kept api.GradeRecord
	if err := art.GetJSON(context.Background(), api.GradeAttemptKey(id, run, "ben", 1), &kept); err != nil || kept.Grade.Score != 1 || kept.Attempt != 1 {
		t.Errorf("the first attempt is not kept: %+v %v", kept, err)
	}
	var latest api.GradeRecord
	if err := art.GetJSON(context.Background(), api.GradeKey(id, run, "ben"), &latest); err != nil || latest.Attempt != 2 || latest.Grade.Score != 2 {
		t.Errorf("grade.json is not the latest attempt: %+v %v", latest, err)
	}
	if left := graders(t, s.d, id); len(left) != 0 {
		t.Errorf("graders left behind: %v", left)
	}
}

// Graders that time out, crash, write 10 MB or garbage, or fork without
// bound fail only their own student's grading, with the reason; the honest
// grader beside them grades, and could neither change the submission nor
// reach the network.
func TestHostileGradersFailOnlyTheirStudent(t *testing.T) {
	s, _ := start(t, "42")
	const id = "grade-hostile"
	students := []string{"honest", "slow", "crash", "huge", "garbage", "bomb"}
	s.up(id, "hostile", students)
	s.waitUp(id)
	for _, st := range students {
		s.save(id, st, map[string]string{"notes.txt": "notes of " + st})
	}
	run := s.down(id)
	book := s.graded(id, run, 1)
	got := items(book)
	if it := got["honest"]; it.State != api.GradeGraded || *it.Score != 3 || it.Feedback != "well done" {
		t.Errorf("honest: %+v", it)
	}
	wantReason := map[string]string{
		"slow":    "did not finish within 8s",
		"crash":   "exited with code 3; its last output:\nthe grader broke",
		"huge":    "is 10485760 bytes, more than 1048576",
		"garbage": "grade.json is not JSON",
		"bomb":    "did not finish within 8s",
	}
	for st, reason := range wantReason {
		if it := got[st]; it.State != api.GradeFailed || !strings.Contains(it.Reason, reason) || it.Score != nil {
			t.Errorf("%s: %+v, want grading failed with %q", st, it, reason)
		}
	}
	c := s.class(id)
	if g := api.FindCondition(c.Status.Conditions, api.ConditionGraded); g == nil || g.Status != "False" || g.Reason != "GradingFailed" ||
		g.Message != "1 of 6 students graded; grading failed for 5 (attempt 1)" {
		t.Errorf("Graded = %+v", g)
	}
	if left := graders(t, s.d, id); len(left) != 0 {
		t.Errorf("graders left behind: %v", left)
	}

	// A grader image the daemon does not have fails the grading with a
	// reason, once, instead of being tried again for ever.
	const absent = "grade-absent"
	s.up(absent, "absent", []string{"ada"})
	s.waitUp(absent)
	run = s.down(absent)
	if it := items(s.graded(absent, run, 1))["ada"]; it.State != api.GradeFailed ||
		!strings.Contains(it.Reason, "the grader's image homeroom/no-such-grader:1 is not on the daemon") {
		t.Errorf("ada: %+v", it)
	}
	// The controller lived through it all.
	testenv.WaitHTTP(t, s.ControllerURL+"/healthz")
}

// A controller killed while graders run is followed by one that takes the
// graders up where they are: every student is graded, and no grader is
// started twice.
func TestGradingResumesAfterTheControllerIsKilled(t *testing.T) {
	s, _ := start(t, "42")
	const id = "grade-kill"
	students := []string{"kim", "lee", "max"}
	s.up(id, "slow", students)
	s.waitUp(id)
	for _, st := range students {
		s.save(id, st, map[string]string{"notes.txt": st})
	}
	since := time.Now()
	run := s.down(id)
	deadline := time.Now().Add(time.Minute)
	for {
		if running := graders(t, s.d, id); strings.Contains(strings.Join(running, ","), " running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no grader ever ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.RestartController(t)
	book := s.graded(id, run, 1)
	for _, it := range book.Items {
		if it.State != api.GradeGraded || *it.Score != 1 {
			t.Errorf("%s: %+v", it.Student, it)
		}
	}
	starts := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, errs := s.d.API().Events(ctx, events.ListOptions{
		Since: since.Format(time.RFC3339Nano), Until: time.Now().Format(time.RFC3339Nano),
		Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("event", "start"),
			filters.Arg("label", api.LabelGrading+"="+api.GradingID(id, run))),
	})
	for done := false; !done; {
		select {
		case m, ok := <-msgs:
			if !ok {
				done = true
				break
			}
			starts[m.Actor.Attributes[api.LabelGradeStudent]]++
		case err := <-errs:
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			done = true
		}
	}
	for _, st := range students {
		if starts[st] != 1 {
			t.Errorf("%s's grader started %d times, want once (all: %v)", st, starts[st], starts)
		}
	}
}

// graders lists the grader containers of a class's runs.
func graders(t *testing.T, d *dockerx.Client, classID string) []string {
	cs, err := d.ListGraders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		if strings.HasPrefix(c.Labels[api.LabelGrading], classID+"/") {
			out = append(out, c.Names[0]+" "+c.State)
		}
	}
	return out
}

package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
)

// gradedPolicy has the built-in sandbox template, without a grader, and
// "graded", the same with one.
const gradedPolicy = `templates:
  - name: sandbox
    image: homeroom/sandbox:dev
    port: 8080
    collectPaths: [/workspace]
    memoryMiB: 128
    cpus: 0.5
    pids: 64
  - name: graded
    image: homeroom/sandbox:dev
    port: 8080
    collectPaths: [/workspace]
    memoryMiB: 128
    cpus: 0.5
    pids: 64
    grader:
      image: homeroom/grader-file:dev
      command: [/grader-file]
`

// setRun writes the class's last Down run into its status, completed at
// done unless done is zero, as the controller does.
func (e *env) setRun(id, run string, done time.Time) {
	e.t.Helper()
	ctx := context.Background()
	cur, err := e.store.Get(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	st := cur.Status
	st.Phase, st.ObservedGeneration = api.PhaseDown, cur.Generation
	st.Run = &api.DownRun{ID: run, StartedAt: done.Add(-time.Minute)}
	if !done.IsZero() {
		st.Run.CompletedAt = &done
	}
	if _, err := e.store.UpdateStatus(ctx, id, cur.Version, st); err != nil {
		e.t.Fatal(err)
	}
}

// grade records a student's outcome of an attempt as the controller's
// grader does: in the grading, and as a grade record beside the manifest.
func (e *env) grade(class, run, student string, attempt int, g *api.Grade, reason string) {
	e.t.Helper()
	ctx := context.Background()
	r := api.GradingStudent{State: api.GradeFailed, Attempt: attempt, Reason: reason}
	rec := api.GradeRecord{SchemaVersion: 1, ClassID: class, RunID: run, StudentID: student, Attempt: attempt,
		State: api.GradeFailed, Reason: reason, Image: "homeroom/grader-file:dev", StartedAt: time.Now(), FinishedAt: time.Now()}
	if g != nil {
		r = api.GradingStudent{State: api.GradeGraded, Attempt: attempt, Score: &g.Score, MaxScore: &g.MaxScore}
		rec.State, rec.Reason, rec.Grade = api.GradeGraded, "", g
	}
	if _, err := e.art.PutJSON(ctx, api.GradeAttemptKey(class, run, student, attempt), rec); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.RecordGrade(ctx, api.GradingID(class, run), student, r); err != nil {
		e.t.Fatal(err)
	}
}

// A teacher reads the grades of the class's last Down run as a table, a
// script as JSON or CSV for a gradebook import; regrade starts the next
// attempt. A class without a completed run, a run never graded and one
// whose template has no grader are refused, each saying so.
func TestGradesAndRegrade(t *testing.T) {
	pol, err := policy.Parse([]byte(gradedPolicy))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, pol)
	ctx := context.Background()
	e.runStdin("id: cs101-a\nsubject: cs101\ntemplate: graded\nstudents: [alice, bob, carol, dan]\n", "apply", "-f", "-").want(t, exitOK)

	// Argument errors.
	e.run("grades").want(t, exitUsage, "accepts 1 arg")
	e.run("regrade").want(t, exitUsage, "accepts 1 arg")
	e.run("grades", "cs101-a", "extra").want(t, exitUsage, "accepts 1 arg")
	e.run("grades", "cs101-a", "-o", "yaml").want(t, exitUsage, "want table, csv or json")
	e.run("regrade", "cs101-a", "-o", "csv").want(t, exitUsage, "want table or json")
	e.run("grades", "cs101-a", "--nope").want(t, exitUsage, "unknown flag")
	e.run("grades", "--help").want(t, exitOK, "Exit codes:", "--run", "gradebook import")
	e.run("regrade", "--help").want(t, exitOK, "Exit codes:", "--run", "no_grader")
	e.run("__complete", "grades", "cs101-a", "-o", "").want(t, exitOK, "csv")

	// No completed run yet.
	e.run("grades", "cs101-a").want(t, exitRefused, "class cs101-a has no completed run", "homeroomctl runs cs101-a")
	e.run("regrade", "cs101-a").want(t, exitRefused, "class cs101-a has no completed run")
	e.run("grades", "nope").want(t, exitRefused, "not_found")

	// Run A was made with sandbox, which has no grader.
	started := time.Date(2026, 11, 29, 13, 50, 50, 0, time.UTC)
	e.collected("cs101-a", runA, "alice", map[string]string{"hello.py": "print(1)\n"})
	if _, err := e.art.WriteRunIndex(ctx, "cs101-a", runA, []string{"alice"}, started, started.Add(time.Minute), artifacts.RunInfo{}); err != nil {
		t.Fatal(err)
	}
	e.setRun("cs101-a", runA, started.Add(time.Minute))
	e.run("grades", "cs101-a").want(t, exitRefused, "not_graded", "homeroomctl regrade cs101-a --run "+runA)
	e.run("grades", "cs101-a", "-o", "csv").want(t, exitRefused, "not_graded")
	e.run("regrade", "cs101-a").want(t, exitRefused, "no_grader", "409")

	// Run B, made with graded, is under way.
	for _, s := range []string{"alice", "bob", "carol"} {
		e.collectedAs("cs101-a", runB, s, "graded", map[string]string{"answer.txt": "42\n"})
	}
	e.setRun("cs101-a", runB, time.Time{})
	e.run("grades", "cs101-a").want(t, exitRefused, "no completed run yet", "run "+runB+") is still collecting", "--run")
	// An earlier run is still named with --run.
	e.run("grades", "cs101-a", "--run", runA).want(t, exitRefused, "not_graded")

	// Run B completes; dan was not collected.
	done := started.Add(24 * time.Hour)
	if _, err := e.art.WriteRunIndex(ctx, "cs101-a", runB, []string{"alice", "bob", "carol", "dan"}, done.Add(-time.Minute), done, artifacts.RunInfo{}); err != nil {
		t.Fatal(err)
	}
	e.setRun("cs101-a", runB, done)
	r := e.run("regrade", "cs101-a")
	r.want(t, exitOK, "run "+runB+" of cs101-a: grading attempt 1 started for 3 students", "homeroomctl grades cs101-a --run "+runB)

	long := "Your answer is right and the file is named as asked; the tests below say what else was checked."
	e.grade("cs101-a", runB, "alice", 1, &api.Grade{Score: 3, MaxScore: 4, Feedback: "\n" + long + "\nmore",
		Tests: []api.GradeTest{{Name: "answer", Score: 3, MaxScore: 3, Message: "ok"}, {Name: "name", Score: 0, MaxScore: 1, Message: "missing"}}}, "")
	e.grade("cs101-a", runB, "bob", 1, nil, "\x1b[31mthe grader crashed\tafter 2 s\x1b[0m\nlast log lines: …")

	r = e.run("grades", "cs101-a")
	r.want(t, exitOK, "STUDENT", "STATE", "SCORE", "FEEDBACK", "attempt 1: 1 graded, 1 grading failed, 1 pending")
	if strings.ContainsAny(r.out, "\x1b\t") {
		t.Errorf("control characters from a grader reached the terminal: %q", r.out)
	}
	lines := strings.Split(strings.TrimRight(r.out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 students:\n%s", r.out)
	}
	rows := map[string]string{}
	for _, l := range lines[1:] {
		rows[strings.Fields(l)[0]] = l
	}
	if f := strings.Fields(rows["alice"]); len(f) < 4 || f[1] != "graded" || f[2] != "3/4" ||
		!strings.Contains(rows["alice"], long[:feedbackWidth-1]+"…") || strings.Contains(rows["alice"], "more") {
		t.Errorf("alice: %q", rows["alice"])
	}
	if !strings.Contains(rows["bob"], "grading failed") || !strings.Contains(rows["bob"], "?[31mthe grader crashed after 2 s?[0m") || strings.Contains(rows["bob"], "last log") {
		t.Errorf("bob: %q", rows["bob"])
	}
	if f := strings.Fields(rows["carol"]); len(f) != 4 || f[1] != "pending" || f[2] != "-" || f[3] != "-" {
		t.Errorf("carol: %q", rows["carol"])
	}
	if _, ok := rows["dan"]; ok {
		t.Errorf("dan was not collected, yet is listed:\n%s", r.out)
	}

	r = e.run("grades", "cs101-a", "-o", "csv")
	r.want(t, exitOK)
	recs, err := csv.NewReader(strings.NewReader(r.out)).ReadAll()
	if err != nil || r.out != "student,score,max\nalice,3,4\nbob,,\ncarol,,\n" || len(recs) != 4 {
		t.Errorf("-o csv: %v\n%s", err, r.out)
	}

	r = e.run("grades", "cs101-a", "--run", runB, "-o", "json")
	r.want(t, exitOK)
	var book api.Gradebook
	if err := json.Unmarshal([]byte(r.out), &book); err != nil || book.RunID != runB || book.Attempt != 1 || len(book.Items) != 3 ||
		len(book.Items[0].Tests) != 2 || book.Items[0].Feedback != "\n"+long+"\nmore" || book.Items[1].Reason == "" {
		t.Fatalf("-o json: %v\n%s", err, r.out)
	}

	// Grading again: the next attempt, every student pending.
	r = e.run("regrade", "cs101-a", "--run", runB, "-o", "json")
	r.want(t, exitOK)
	if err := json.Unmarshal([]byte(r.out), &book); err != nil || book.Attempt != 2 || len(book.Items) != 3 || book.Items[0].State != api.GradePending {
		t.Fatalf("regrade -o json: %v\n%s", err, r.out)
	}
	e.run("grades", "cs101-a").want(t, exitOK, "attempt 2: 0 graded, 0 grading failed, 3 pending")
	e.run("regrade", "cs101-a").want(t, exitOK, "grading attempt 3 started")
	e.run("regrade", "cs101-a", "--run", "20270101T000000Z-000000").want(t, exitRefused, "not_found")
}

func TestFirstLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"ok", "ok"},
		{"\n\n  first \nsecond", "first"},
		{"a\r\nb", "a"},
		{"tab\there", "tab here"},
		{"\x1b]0;title\x07bell", "?]0;title?bell"},
		{"\u202eevil", "?evil"},
		{strings.Repeat("é", 70), strings.Repeat("é", 9) + "…"},
		{strings.Repeat("x", 10), strings.Repeat("x", 10)},
	} {
		max := 60
		if strings.HasPrefix(c.in, "é") {
			max = 10
		}
		if got := firstLine(c.in, max); got != c.want {
			t.Errorf("firstLine(%q, %d) = %q, want %q", c.in, max, got, c.want)
		}
	}
}

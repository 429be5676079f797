package client_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/client"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
)

// gradedPolicy has the built-in policy's sandbox template, without a
// grader, and "graded", the same with one.
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

// grade records a student's outcome of an attempt as the controller's
// grader does: in the grading, and as a grade record beside the manifest.
func grade(t *testing.T, st *store.Store, art *artifacts.Store, class, run, student string, attempt int, g *api.Grade, reason string) {
	t.Helper()
	ctx := context.Background()
	r := api.GradingStudent{State: api.GradeFailed, Attempt: attempt, Reason: reason}
	rec := api.GradeRecord{SchemaVersion: 1, ClassID: class, RunID: run, StudentID: student, Attempt: attempt,
		State: api.GradeFailed, Reason: reason, Image: "homeroom/grader-file:dev", StartedAt: time.Now(), FinishedAt: time.Now()}
	if g != nil {
		r = api.GradingStudent{State: api.GradeGraded, Attempt: attempt, Score: &g.Score, MaxScore: &g.MaxScore}
		rec.State, rec.Reason, rec.Grade = api.GradeGraded, "", g
	}
	if _, err := art.PutJSON(ctx, api.GradeAttemptKey(class, run, student, attempt), rec); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordGrade(ctx, api.GradingID(class, run), student, r); err != nil {
		t.Fatal(err)
	}
}

// A run graded by its template's grader comes as a gradebook, in JSON and
// as CSV; grading again starts the next attempt; a run never graded, or
// whose template has no grader, is refused with the API's code.
func TestGrades(t *testing.T) {
	pol, err := policy.Parse([]byte(gradedPolicy))
	if err != nil {
		t.Fatal(err)
	}
	url, st, art := newServerWith(t, pol)
	c := newClient(t, url, adminToken)
	ctx := context.Background()
	started := time.Date(2026, 11, 29, 13, 50, 50, 0, time.UTC)

	// Run A was made with sandbox, which has no grader.
	collected(t, art, "cs101-a", runA, "alice", map[string]string{"hello.py": "print(1)\n"})
	if _, err := art.WriteRunIndex(ctx, "cs101-a", runA, []string{"alice"}, started, started.Add(time.Minute), artifacts.RunInfo{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Grades(ctx, "cs101-a", runA)
	apiError(t, err, http.StatusNotFound, "not_graded")
	apiError(t, c.GradesCSV(ctx, "cs101-a", runA, &bytes.Buffer{}), http.StatusNotFound, "not_graded")
	_, err = c.Regrade(ctx, "cs101-a", runA)
	apiError(t, err, http.StatusConflict, "no_grader")
	_, err = c.Grades(ctx, "cs101-a", "20270101T000000Z-000000")
	apiError(t, err, http.StatusNotFound, "not_found")
	_, err = c.Regrade(ctx, "cs101-a", "20270101T000000Z-000000")
	apiError(t, err, http.StatusNotFound, "not_found")

	// Run B was made with graded; carol was not collected.
	collectedAs(t, art, "cs101-a", runB, "alice", "graded", map[string]string{"answer.txt": "42\n"})
	collectedAs(t, art, "cs101-a", runB, "bob", "graded", map[string]string{"answer.txt": "41\n"})
	if _, err := art.WriteRunIndex(ctx, "cs101-a", runB, []string{"alice", "bob", "carol"}, started, started.Add(time.Minute), artifacts.RunInfo{}); err != nil {
		t.Fatal(err)
	}
	book, err := c.Regrade(ctx, "cs101-a", runB)
	if err != nil {
		t.Fatal(err)
	}
	if book.ClassID != "cs101-a" || book.RunID != runB || book.Attempt != 1 || len(book.Items) != 2 ||
		book.Items[0].Student != "alice" || book.Items[1].Student != "bob" {
		t.Fatalf("the first attempt: %+v", book)
	}
	for _, it := range book.Items {
		if it.State != client.GradePending || it.Score != nil || it.Feedback != "" {
			t.Errorf("a new attempt's item: %+v", it)
		}
	}

	grade(t, st, art, "cs101-a", runB, "alice", 1, &api.Grade{Score: 3, MaxScore: 4, Feedback: "Good.\n<b>not markup</b>",
		Tests: []api.GradeTest{{Name: "answer", Score: 3, MaxScore: 3, Message: "ok"}, {Name: "name", Score: 0, MaxScore: 1, Message: "missing"}}}, "")
	grade(t, st, art, "cs101-a", runB, "bob", 1, nil, "the grader ran out of time (60 s)")
	book, err = c.Grades(ctx, "cs101-a", runB)
	if err != nil {
		t.Fatal(err)
	}
	a, b := book.Items[0], book.Items[1]
	if a.State != client.GradeGraded || a.Score == nil || *a.Score != 3 || a.MaxScore == nil || *a.MaxScore != 4 ||
		a.Feedback != "Good.\n<b>not markup</b>" || len(a.Tests) != 2 || a.Tests[1].Name != "name" || a.Tests[1].Message != "missing" {
		t.Errorf("alice: %+v", a)
	}
	if b.State != client.GradeFailed || b.Score != nil || !strings.Contains(b.Reason, "out of time") {
		t.Errorf("bob: %+v", b)
	}

	var csv bytes.Buffer
	if err := c.GradesCSV(ctx, "cs101-a", runB, &csv); err != nil {
		t.Fatal(err)
	}
	if got := csv.String(); got != "student,score,max\nalice,3,4\nbob,,\n" {
		t.Errorf("CSV:\n%s", got)
	}

	// Grading again: the next attempt, every student pending again.
	if book, err = c.Regrade(ctx, "cs101-a", runB); err != nil || book.Attempt != 2 || len(book.Items) != 2 || book.Items[0].State != client.GradePending {
		t.Fatalf("regrade: %v %+v", err, book)
	}
	if book, err = c.Grades(ctx, "cs101-a", runB); err != nil || book.Attempt != 2 || book.Items[0].State != client.GradePending || book.Items[0].Feedback != "" {
		t.Fatalf("grades of attempt 2: %v %+v", err, book)
	}
	csv.Reset()
	if err := c.GradesCSV(ctx, "cs101-a", runB, &csv); err != nil || csv.String() != "student,score,max\nalice,,\nbob,,\n" {
		t.Errorf("CSV of attempt 2: %v\n%s", err, csv.String())
	}

	// An autosave is not graded.
	const runC = "20261201T090000Z-c0ffee"
	collectedAs(t, art, "cs101-a", runC, "alice", "graded", map[string]string{"answer.txt": "42\n"})
	if _, err := art.WriteRunIndex(ctx, "cs101-a", runC, []string{"alice"}, started, started.Add(time.Minute), artifacts.RunInfo{Kind: artifacts.RunKindAutosave}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Regrade(ctx, "cs101-a", runC)
	apiError(t, err, http.StatusConflict, "not_gradable")
}

// GradesCSV asks for CSV and streams what comes; an answer that is not CSV
// is an error, and so is a body cut off.
func TestGradesCSVAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/csv" || !strings.HasSuffix(r.URL.Path, "/runs/"+runA+"/grades") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/api/v1/classes/json/runs/" + runA + "/grades":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"items": []}`))
		case "/api/v1/classes/cut/runs/" + runA + "/grades":
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Write([]byte("student,score,max\nalice,"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		default:
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Write([]byte("student,score,max\nalice,1,2\n"))
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, adminToken)
	var buf bytes.Buffer
	if err := c.GradesCSV(context.Background(), "ok", runA, &buf); err != nil || buf.String() != "student,score,max\nalice,1,2\n" {
		t.Errorf("CSV: %v %q", err, buf.String())
	}
	if err := c.GradesCSV(context.Background(), "json", runA, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "not text/csv") {
		t.Errorf("JSON for CSV: %v", err)
	}
	var ae *client.Error
	if err := c.GradesCSV(context.Background(), "cut", runA, &bytes.Buffer{}); err == nil || errors.As(err, &ae) {
		t.Errorf("a body cut off: %v", err)
	}
}

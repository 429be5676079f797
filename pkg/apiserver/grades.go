package apiserver

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/store"
)

// runForGrades reads the path's class and run and checks that the caller
// may read the run: what getRun allows.
func (s *Server) runForGrades(c echo.Context) (id, run string, idx *artifacts.RunIndex, err error) {
	id, seen, err := s.artifactClass(c)
	if err != nil {
		return "", "", nil, err
	}
	run = c.Param("run")
	if err := validRunID(run); err != nil {
		return "", "", nil, err
	}
	notFound := apiError(http.StatusNotFound, "not_found",
		fmt.Sprintf("run %q of class %q has no index: unknown, or its Down has not completed", run, id))
	if err := s.authorizeRun(c, id, run, seen, notFound); err != nil {
		return "", "", nil, err
	}
	idx, err = s.artifacts.GetRunIndex(c.Request().Context(), id, run)
	if errors.Is(err, artifacts.ErrNotFound) {
		return "", "", nil, notFound
	}
	if err != nil {
		return "", "", nil, fmt.Errorf("get run index: %w", err)
	}
	if !who(c).teaches(idx.Subject) {
		return "", "", nil, s.authorizeRun(c, id, run, seen, notFound)
	}
	return id, run, idx, nil
}

// regrade asks for the next grading attempt of a run, with the grader the
// policy has now for the run's template (after a grader was fixed, or
// added). Earlier attempts' grades are kept.
func (s *Server) regrade(c echo.Context) error {
	id, run, idx, err := s.runForGrades(c)
	if err != nil {
		return err
	}
	if idx.KindOrDown() != artifacts.RunKindDown {
		return apiError(http.StatusConflict, "not_gradable", fmt.Sprintf("run %q is an autosave; only a Down's runs are graded", run))
	}
	ctx := c.Request().Context()
	var students []string
	for _, st := range idx.Students {
		if st.Outcome != artifacts.OutcomeMissing {
			students = append(students, st.StudentID)
		}
	}
	if len(students) == 0 {
		return apiError(http.StatusConflict, "not_gradable", fmt.Sprintf("run %q collected no student's work", run))
	}
	m, err := s.artifacts.GetManifest(ctx, id, run, students[0])
	if err != nil {
		return fmt.Errorf("read a manifest of the run: %w", err)
	}
	tmpl, ok := s.policy.Template(m.Template)
	if !ok || tmpl.Grader == nil {
		return apiError(http.StatusConflict, "no_grader",
			fmt.Sprintf("the policy has no grader for template %q, which run %q was made with", m.Template, run))
	}
	g, err := s.store.Regrade(ctx, api.Grading{ClassID: id, RunID: run, Subject: idx.Subject, Template: m.Template,
		Attempt: 1, Students: students}, who(c).name)
	if err != nil {
		return err
	}
	book, err := s.gradebook(ctx, g)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, book)
}

// getGrades serves a run's gradebook: JSON, or CSV (student, score, max)
// for a gradebook import when the client accepts text/csv before JSON.
func (s *Server) getGrades(c echo.Context) error {
	id, run, _, err := s.runForGrades(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	g, err := s.store.GetGrading(ctx, id, run)
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, "not_graded",
			fmt.Sprintf("run %q of class %q has not been graded: its template had no grader (POST …/grade grades it)", run, id))
	}
	if err != nil {
		return err
	}
	book, err := s.gradebook(ctx, g)
	if err != nil {
		return err
	}
	if wantsCSV(c.Request().Header.Get("Accept")) {
		return writeGradesCSV(c, book)
	}
	return c.JSON(http.StatusOK, book)
}

// gradebook joins a grading's outcomes with the feedback in each student's
// grade record of the current attempt.
func (s *Server) gradebook(ctx context.Context, g *api.Grading) (*api.Gradebook, error) {
	book := &api.Gradebook{ClassID: g.ClassID, RunID: g.RunID, Attempt: g.Attempt, Items: make([]api.GradebookItem, len(g.Students))}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(8)
	for i, student := range g.Students {
		eg.Go(func() error {
			it := api.GradebookItem{Student: student, State: api.GradePending, Attempt: g.Attempt}
			r, ok := g.Results[student]
			if ok && r.Attempt >= g.Attempt {
				it.State, it.Reason, it.Score, it.MaxScore = r.State, r.Reason, r.Score, r.MaxScore
				var rec api.GradeRecord
				err := s.artifacts.GetJSON(ctx, api.GradeAttemptKey(g.ClassID, g.RunID, student, r.Attempt), &rec)
				switch {
				case err == nil && rec.Grade != nil:
					it.Feedback, it.Tests = rec.Grade.Feedback, rec.Grade.Tests
				case err != nil && !errors.Is(err, artifacts.ErrNotFound):
					return fmt.Errorf("read the grade of %s: %w", student, err)
				}
			}
			book.Items[i] = it
			return nil
		})
	}
	return book, eg.Wait()
}

// wantsCSV reports whether Accept ranks text/csv above JSON (or names only
// CSV); browsers and the CLI's default get JSON.
func wantsCSV(accept string) bool {
	best, bestQ := "", -1.0
	for _, part := range strings.Split(accept, ",") {
		media, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		media = strings.ToLower(strings.TrimSpace(media))
		if (media == "text/csv" || media == "application/json") && q > bestQ {
			best, bestQ = media, q
		}
	}
	return best == "text/csv" && bestQ > 0
}

// writeGradesCSV writes student, score, max: the columns a gradebook
// import takes. A student without a grade has empty score and max. No
// free text goes in (feedback could start a spreadsheet formula).
func writeGradesCSV(c echo.Context, book *api.Gradebook) error {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s-grades.csv"`, book.ClassID, book.RunID))
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write([]string{"student", "score", "max"})
	for _, it := range book.Items {
		row := []string{it.Student, "", ""}
		if it.State == api.GradeGraded && it.Score != nil && it.MaxScore != nil {
			row[1] = strconv.FormatFloat(*it.Score, 'f', -1, 64)
			row[2] = strconv.FormatFloat(*it.MaxScore, 'f', -1, 64)
		}
		_ = w.Write(row)
	}
	w.Flush()
	return w.Error()
}

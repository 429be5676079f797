package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

// A run's grading is opened once, counted open until closed, regraded as
// the next attempt, and never takes a late result of an earlier attempt
// over a newer one.
func TestGradingLifecycle(t *testing.T) {
	ctx := context.Background()
	s := testenv.Store(t)
	g := api.Grading{ClassID: "c1", RunID: "20261130T100000Z-abcdef", Subject: "cs", Template: "sandbox", Students: []string{"amy", "ben"}}
	if err := s.OpenGrading(ctx, g); err != nil {
		t.Fatal(err)
	}
	// Opened again after a crash: nothing changes.
	if err := s.OpenGrading(ctx, g); err != nil {
		t.Fatal(err)
	}
	open, err := s.OpenGradings(ctx)
	if err != nil || !slices.Equal(open, []string{"c1/20261130T100000Z-abcdef"}) {
		t.Fatalf("open = %v, %v", open, err)
	}
	got, err := s.GetGrading(ctx, "c1", g.RunID)
	if err != nil || got.Attempt != 1 || !slices.Equal(got.Pending(), []string{"amy", "ben"}) {
		t.Fatalf("grading = %+v, %v", got, err)
	}
	score, max := 2.0, 2.0
	if err := s.RecordGrade(ctx, got.ID, "amy", api.GradingStudent{State: api.GradeGraded, Attempt: 1, Score: &score, MaxScore: &max}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordGrade(ctx, got.ID, "ben", api.GradingStudent{State: api.GradeFailed, Attempt: 1, Reason: "timed out"}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetGrading(ctx, "c1", g.RunID)
	if graded, failed := got.Counts(); graded != 1 || failed != 1 || len(got.Pending()) != 0 {
		t.Fatalf("after attempt 1: %+v", got)
	}

	again, err := s.Regrade(ctx, g, "teacher1")
	if err != nil || again.Attempt != 2 || again.RequestedBy != "teacher1" || len(again.Pending()) != 2 {
		t.Fatalf("regrade = %+v, %v", again, err)
	}
	score2 := 1.0
	if err := s.RecordGrade(ctx, again.ID, "amy", api.GradingStudent{State: api.GradeGraded, Attempt: 2, Score: &score2, MaxScore: &max}); err != nil {
		t.Fatal(err)
	}
	// A grader of attempt 1 that reports late does not replace attempt 2.
	if err := s.RecordGrade(ctx, again.ID, "amy", api.GradingStudent{State: api.GradeGraded, Attempt: 1, Score: &score, MaxScore: &max}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetGrading(ctx, "c1", g.RunID)
	if r := got.Results["amy"]; r.Attempt != 2 || *r.Score != 1 {
		t.Fatalf("amy = %+v", r)
	}
	if !slices.Equal(got.Pending(), []string{"ben"}) {
		t.Fatalf("pending = %v", got.Pending())
	}

	if err := s.CloseGrading(ctx, got.ID); err != nil {
		t.Fatal(err)
	}
	if open, _ := s.OpenGradings(ctx); len(open) != 0 {
		t.Fatalf("open after close = %v", open)
	}
	// A regrade of a run never graded opens its first attempt.
	fresh := api.Grading{ClassID: "c1", RunID: "20261130T110000Z-abcdef", Template: "sandbox", Students: []string{"amy"}}
	first, err := s.Regrade(ctx, fresh, "teacher1")
	if err != nil || first.Attempt != 1 || first.RequestedBy != "teacher1" {
		t.Fatalf("first regrade = %+v, %v", first, err)
	}
	if _, err := s.GetGrading(ctx, "c1", "20261130T120000Z-abcdef"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown grading: %v", err)
	}
	if err := s.RecordGrade(ctx, first.ID, "a.b", api.GradingStudent{Attempt: 1}); err == nil {
		t.Fatal("a student id with a dot was taken as a field path")
	}
}

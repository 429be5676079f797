package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/store"
)

// Gradings is what a pass needs of the store for grading: a Down run of a
// template with a grader opens the run's grading when it completes, and a
// Down class reports it in its Graded condition. A store without it (a
// test's fake) grades nothing.
type Gradings interface {
	OpenGrading(ctx context.Context, g api.Grading) error
	GetGrading(ctx context.Context, classID, runID string) (*api.Grading, error)
}

// Acquire takes one of the controller's Docker step slots for work done
// beside the passes (grading); release gives it back.
func (r *Reconciler) Acquire(ctx context.Context) (release func(), err error) {
	if err := r.slots.acquire(ctx); err != nil {
		return nil, err
	}
	return r.slots.release, nil
}

// openGrading records that the run's collected students are to be graded,
// when the class's template has a grader. It is called before the run is
// recorded complete, so a crash in between opens it again (a no-op).
func (e *executor) openGrading(ctx context.Context, classID, subject string, run *api.DownRun, idx *artifacts.RunIndex) error {
	gs, ok := e.r.store.(Gradings)
	if !ok || e.tmpl == nil || e.tmpl.Grader == nil || idx == nil {
		return nil
	}
	g := api.Grading{ClassID: classID, RunID: run.ID, Subject: subject, Template: e.tmpl.Name, Attempt: 1,
		RequestedAt: e.r.now(), RequestedBy: "controller"}
	for _, s := range idx.Students {
		if s.Outcome != artifacts.OutcomeMissing {
			g.Students = append(g.Students, s.StudentID)
		}
	}
	if len(g.Students) == 0 {
		return nil
	}
	if err := gs.OpenGrading(ctx, g); err != nil {
		return fmt.Errorf("open grading: %w", err)
	}
	return nil
}

// grading returns the grading of the class's last completed run, nil when
// there is none (no grader, or a run not complete yet).
func (r *Reconciler) grading(ctx context.Context, c *api.Class) (*api.Grading, error) {
	gs, ok := r.store.(Gradings)
	run := c.Status.Run
	if !ok || run == nil || run.CompletedAt == nil {
		return nil, nil
	}
	g, err := gs.GetGrading(ctx, c.ID, run.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return g, err
}

// gradedCondition says how the grading of the last run stands.
func gradedCondition(g *api.Grading, now time.Time) api.Condition {
	graded, failed := g.Counts()
	n := len(g.Students)
	c := api.Condition{Type: api.ConditionGraded, LastTransitionTime: now}
	switch {
	case graded+failed < n:
		c.Status, c.Reason = "False", "Grading"
		c.Message = fmt.Sprintf("%d graded, %d failed, %d pending of %d students (attempt %d)", graded, failed, n-graded-failed, n, g.Attempt)
	case failed > 0:
		c.Status, c.Reason = "False", "GradingFailed"
		c.Message = fmt.Sprintf("%d of %d students graded; grading failed for %d (attempt %d)", graded, n, failed, g.Attempt)
	default:
		c.Status, c.Reason = "True", "Graded"
		c.Message = fmt.Sprintf("%d of %d students graded (attempt %d)", graded, n, g.Attempt)
	}
	return c
}

package grading

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"go.uber.org/zap"

	"github.com/homeroom/homeroom/pkg/api"
)

// idleStore has no grading open, or the ones in open; each has the
// students and attempt of grading (none: nobody left to grade).
type idleStore struct {
	Store
	open    []string
	grading api.Grading
}

func (s *idleStore) OpenGradings(context.Context) ([]string, error) { return s.open, nil }
func (s *idleStore) GradingByID(_ context.Context, id string) (*api.Grading, error) {
	gr := s.grading
	gr.ID = id
	return &gr, nil
}
func (s *idleStore) CloseGrading(context.Context, string) error { s.open = nil; return nil }

// countingDocker counts the graders listed; it holds none.
type countingDocker struct {
	Docker
	lists int
}

func (d *countingDocker) ListGraders(context.Context) ([]container.Summary, error) {
	d.lists++
	return nil, nil
}

// A controller at rest passes on every store change; with no grading open
// those passes must not ask the daemon anything but a sweep now and then,
// or a converged class costs a Docker call more a pass.
func TestPassWithNothingOpenAsksTheDaemonOnlyToSweep(t *testing.T) {
	st, d := &idleStore{}, &countingDocker{}
	g := New(st, d, nil, nil, nil, Options{SweepEvery: time.Hour}, zap.NewNop())
	ctx := context.Background()
	for i := range 5 {
		open, err := g.Pass(ctx)
		if err != nil || open {
			t.Fatalf("pass %d with nothing open: open %v, %v", i, open, err)
		}
	}
	if d.lists != 1 {
		t.Errorf("5 passes with no grading open listed graders %d times; want 1 (the first sweep)", d.lists)
	}

	// A grading that opens is looked at by the next pass, graders and all.
	st.open = []string{"c/r"}
	if _, err := g.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if d.lists != 2 {
		t.Errorf("a pass with a grading open listed graders %d times in all; want 2", d.lists)
	}
	if st.open != nil {
		t.Error("a grading with nobody left to grade was not closed")
	}

	// While a grading stays open, its graders are listed once an attempt:
	// alice is in flight, and the passes her grader's end brings need not
	// ask the daemon what this controller started.
	st.open, st.grading = []string{"c/r2"}, api.Grading{Attempt: 1, Students: []string{"alice"}}
	g.begin("c/r2/alice", 0)
	for range 5 {
		open, err := g.Pass(ctx)
		if err != nil || !open {
			t.Fatalf("pass with a grading open: open %v, %v", open, err)
		}
	}
	if d.lists != 3 {
		t.Errorf("5 passes over one open attempt listed graders %d times in all; want 3 (once for it)", d.lists)
	}
	st.grading.Attempt = 2 // a regrade: graders of attempt 1 may be left
	if _, err := g.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if d.lists != 4 {
		t.Errorf("a pass over a regraded attempt listed graders %d times in all; want 4", d.lists)
	}
	g.end("c/r2/alice")
	st.open = nil

	// A sweep is due again after SweepEvery.
	g.opts.SweepEvery = time.Nanosecond
	if _, err := g.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if d.lists != 5 {
		t.Errorf("a pass after SweepEvery listed graders %d times in all; want 5", d.lists)
	}
}

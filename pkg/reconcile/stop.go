package reconcile

import (
	"context"
	"errors"
)

// ErrStopped ends a pass between two steps when its controller is shutting
// down or has lost leadership: the step in flight finishes, no new one
// starts, and whoever acts next resumes from the checkpoints.
var ErrStopped = errors.New("pass stopped between steps")

type stopKey struct{}

// WithStop attaches a check the executor makes before every step.
func WithStop(ctx context.Context, stop func() bool) context.Context {
	return context.WithValue(ctx, stopKey{}, stop)
}

func stopped(ctx context.Context) bool {
	stop, _ := ctx.Value(stopKey{}).(func() bool)
	return stop != nil && stop()
}

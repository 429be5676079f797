package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/homeroom/homeroom/pkg/api"
)

// AnyVersion, as the version of a precondition, asks only that the class
// exists (HTTP's "If-Match: *"). Versions start at 1, so it is never one.
const AnyVersion int64 = -1

// ErrPreconditionFailed is wrapped by a conditional write that found the
// class at another version than the caller's, or found no class: the caller
// decided on something that is no longer there. Nothing was written.
var ErrPreconditionFailed = errors.New("precondition failed")

// PreconditionError says what a conditional write found instead of what
// its caller expected.
type PreconditionError struct {
	ID string
	// Want is the version the caller expected, AnyVersion for any.
	Want int64
	// Current is the version stored when the write was refused; 0 when the
	// class does not exist.
	Current int64
}

func (e *PreconditionError) Error() string {
	if e.Current == 0 {
		return fmt.Sprintf("class %q does not exist: %v", e.ID, ErrPreconditionFailed)
	}
	return fmt.Sprintf("class %q is at version %d, not %d: %v", e.ID, e.Current, e.Want, ErrPreconditionFailed)
}

func (e *PreconditionError) Unwrap() error { return ErrPreconditionFailed }

// IfVersion is a check for the conditional writes (PutSpecIf and the like)
// that lets the write through only when the class as stored is at version
// (or, for AnyVersion, exists). Those writes run their check on the very
// version they write over (the update's filter holds it), so a write that
// passes it cannot overwrite a change made after that version: it loses the
// race, reads again, and is refused here.
func IfVersion(id string, version int64) func(*api.Class) error {
	return func(c *api.Class) error {
		switch {
		case c == nil:
			return &PreconditionError{ID: id, Want: version}
		case version != AnyVersion && c.Version != version:
			return &PreconditionError{ID: id, Want: version, Current: c.Version}
		}
		return nil
	}
}

// AllOf is a check made of checks, run in order until one refuses; nil ones
// are skipped.
func AllOf(checks ...func(*api.Class) error) func(*api.Class) error {
	return func(c *api.Class) error {
		for _, check := range checks {
			if check == nil {
				continue
			}
			if err := check(c); err != nil {
				return err
			}
		}
		return nil
	}
}

// PutSpecIfVersion is PutSpecIf that also writes only over the class at
// version (AnyVersion: over the class as it is, if it exists). It never
// creates a class: a class that does not exist fails the precondition. check
// runs first, so that a caller it refuses learns nothing of the version. A
// refused precondition is a *PreconditionError (errors.Is
// ErrPreconditionFailed) and writes nothing; re-sending the spec the class
// already has, at that version, writes nothing either and succeeds.
func (s *Store) PutSpecIfVersion(ctx context.Context, id string, spec api.ClassSpec, version int64, check func(*api.Class) error) (*api.Class, error) {
	c, _, err := s.PutSpecIf(ctx, id, spec, AllOf(check, IfVersion(id, version)))
	return c, err
}

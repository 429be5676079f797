package store_test

import (
	"errors"
	"testing"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

var errRefused = errors.New("refused")

// TestConditionalWrites: the checks of PutSpecIf and SetDesiredPhaseIf see
// the class as stored (nil when new) and refuse without writing anything,
// audit record included.
func TestConditionalWrites(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := t.Context()
	var seen []*api.Class
	record := func(c *api.Class) error {
		if c != nil {
			cp := *c // the caller goes on changing c
			c = &cp
		}
		seen = append(seen, c)
		return nil
	}
	refuse := func(*api.Class) error { return errRefused }

	if _, _, err := s.PutSpecIf(ctx, "c", spec(), refuse); !errors.Is(err, errRefused) {
		t.Fatalf("refused create: %v", err)
	}
	if _, err := s.Get(ctx, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused create wrote: %v", err)
	}
	c, created, err := s.PutSpecIf(ctx, "c", spec(), record)
	if err != nil || !created || len(seen) != 1 || seen[0] != nil {
		t.Fatalf("create: %v %v, check saw %v", created, err, seen)
	}
	changed := spec()
	changed.Students = []string{"zed"}
	if _, _, err := s.PutSpecIf(ctx, "c", changed, refuse); !errors.Is(err, errRefused) {
		t.Fatalf("refused update: %v", err)
	}
	mustGetEqual(t, s, c)
	if _, err := s.SetDesiredPhaseIf(ctx, "c", api.PhaseUp, refuse); !errors.Is(err, errRefused) {
		t.Fatalf("refused Up: %v", err)
	}
	mustGetEqual(t, s, c)
	seen = nil
	up, err := s.SetDesiredPhaseIf(ctx, "c", api.PhaseUp, record)
	if err != nil || up.DesiredPhase != api.PhaseUp || len(seen) != 1 || seen[0].Version != c.Version {
		t.Fatalf("Up: %+v %v, check saw %v", up, err, seen)
	}
	// The check runs even when there is nothing to change.
	if _, err := s.SetDesiredPhaseIf(ctx, "c", api.PhaseUp, refuse); !errors.Is(err, errRefused) {
		t.Errorf("refused repeated Up: %v", err)
	}
	entries, _, err := s.ListAudit(ctx, store.AuditQuery{})
	if err != nil || len(entries) != 2 || entries[0].Action != api.AuditClassUp || entries[1].Action != api.AuditClassCreate {
		t.Errorf("audit after refusals: %+v %v", entries, err)
	}

	versions, err := s.VersionsOf(ctx, []string{"c", "nope"})
	if err != nil || len(versions) != 1 || versions["c"] != up.Version {
		t.Errorf("VersionsOf = %v, %v", versions, err)
	}
	if v, err := s.VersionsOf(ctx, nil); err != nil || len(v) != 0 {
		t.Errorf("VersionsOf(nil) = %v, %v", v, err)
	}
}

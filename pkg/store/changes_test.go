package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
)

// Every write a controller must act on is counted; its own status writes
// are not.
func TestChangesCountClassWrites(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	count := func() int64 {
		t.Helper()
		n, err := s.Changes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := count()
	step := func(what string, counted bool, write func() error) {
		t.Helper()
		if err := write(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := count()
		if counted && got <= n || !counted && got != n {
			t.Errorf("%s: change count %d -> %d", what, n, got)
		}
		n = got
	}
	spec := api.ClassSpec{Subject: "cs", Template: "sandbox", Students: []string{"al"}}
	step("create", true, func() error { _, _, err := s.PutSpec(ctx, "chg", spec); return err })
	step("up", true, func() error { _, err := s.SetDesiredPhase(ctx, "chg", api.PhaseUp); return err })
	step("an Up again, which changes nothing", false, func() error { _, err := s.SetDesiredPhase(ctx, "chg", api.PhaseUp); return err })
	c, err := s.Get(ctx, "chg")
	if err != nil {
		t.Fatal(err)
	}
	step("a status write", false, func() error {
		_, err := s.UpdateStatus(ctx, "chg", c.Version, api.ClassStatus{Phase: api.PhaseUp})
		return err
	})
	step("down", true, func() error { _, err := s.SetDesiredPhase(ctx, "chg", api.PhaseDown); return err })
	step("delete", true, func() error { return s.Delete(ctx, "chg", nil) })
}

// A status write is counted apart, soon after it, for long polls.
func TestStatusWritesAreCountedApart(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	c, _, err := s.PutSpec(ctx, "st", api.ClassSpec{Subject: "cs", Template: "sandbox", Students: []string{"al"}})
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.AllChanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateStatus(ctx, "st", c.Version, api.ClassStatus{Phase: api.PhaseDown}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		after, err := s.AllChanges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after.Statuses > before.Statuses && after.Classes == before.Classes {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts %+v after a status write, were %+v", after, before)
		}
	}
}
